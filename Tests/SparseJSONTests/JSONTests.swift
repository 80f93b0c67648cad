import XCTest
@testable import SparseJSON

final class JSONTests: XCTestCase {
    func testParsesScalarsAndStructures() throws {
        let v = try JSON.parse(#"{"a": [1, -2, 3.5, 1e3, true, false, null, "x\n\u00e9\ud83d\ude00"], "b": {}}"#)
        guard let a = v["a"]?.arrayValue else { return XCTFail("no array") }
        XCTAssertEqual(a[0], .number(double: 1, integer: 1))
        XCTAssertEqual(a[1].integerValue, -2)
        XCTAssertEqual(a[2].doubleValue, 3.5)
        XCTAssertNil(a[2].integerValue)
        XCTAssertEqual(a[3].doubleValue, 1000)
        XCTAssertNil(a[3].integerValue, "an exponent makes a number non-integral")
        XCTAssertEqual(a[4], .bool(true))
        XCTAssertEqual(a[5], .bool(false))
        XCTAssertEqual(a[6], .null)
        XCTAssertEqual(a[7].stringValue, "x\né😀")
        XCTAssertEqual(v["b"], .object([]))
    }

    func testExactInt64Extremes() throws {
        let v = try JSON.parse("[9223372036854775807, -9223372036854775808, 9223372036854775808]")
        XCTAssertEqual(v.arrayValue?[0].integerValue, Int64.max)
        XCTAssertEqual(v.arrayValue?[1].integerValue, Int64.min)
        XCTAssertNil(v.arrayValue?[2].integerValue, "beyond Int64 stays a double only")
    }

    func testPythonNonFiniteTokens() throws {
        let v = try JSON.parse("[NaN, Infinity, -Infinity]")
        XCTAssertTrue(v.arrayValue![0].doubleValue!.isNaN)
        XCTAssertEqual(v.arrayValue![1].doubleValue, .infinity)
        XCTAssertEqual(v.arrayValue![2].doubleValue, -.infinity)
    }

    func testRejectsMalformedDocuments() {
        let bad = ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"abc", "\"\\x\"", "[1 2]", "{\"a\" 1}",
                   "tru", "\"\u{01}\"", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "1 2", "+1", ".5"]
        for text in bad {
            XCTAssertThrowsError(try JSON.parse(text), "accepted \(text.debugDescription)")
        }
        XCTAssertThrowsError(try JSON.parse([0x22, 0xFF, 0x22]), "invalid UTF-8 inside a string")
    }

    func testDepthLimit() {
        XCTAssertThrowsError(try JSON.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
        XCTAssertNoThrow(try JSON.parse(String(repeating: "[", count: 50) + String(repeating: "]", count: 50)))
    }

    func testErrorCarriesOffset() {
        do {
            _ = try JSON.parse("[1, 2, x]")
            XCTFail("should throw")
        } catch let e as JSONParseError {
            XCTAssertEqual(e.offset, 7)
        } catch { XCTFail("\(error)") }
    }

    func testWriterRoundTrip() throws {
        let value = JSON.object([
            ("s", .string("q\"uote\\ \n\t\u{01} é")),
            ("n", .array([.number(double: 0.1, integer: nil), .number(double: 42, integer: 42), .null, .bool(true)])),
        ])
        let bytes = JSONWriter.encode(value)
        XCTAssertEqual(try JSON.parse(bytes), value)
        var w = JSONWriter()
        w.number(Float.nan)
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), "null")
    }

    /// Quote, backslash, control characters, DEL and U+2028/U+2029 are escaped; other text is kept.
    func testWriterEscapes() {
        XCTAssertEqual(JSONWriter.quoted("a\"b\\c\n\u{1}\u{7F}"), #""a\"b\\c\n\u0001\u007f""#)
        XCTAssertEqual(JSONWriter.quoted("x\u{2028}y\u{2029}z"), #""x\u2028y\u2029z""#)
        XCTAssertEqual(JSONWriter.quoted("é\u{2027}€"), "\"é\u{2027}€\"")
        XCTAssertEqual(try JSON.parse(JSONWriter.quoted("a\u{2028}b")), .string("a\u{2028}b"))
    }

    /// Number arrays parsed into typed buffers give the same values and the same errors as boxed ones.
    func testTypedNumberArrays() throws {
        let documents = [
            "[1, 2.5, -3e2, 9223372036854775807, 9223372036854775808, -0, NaN, Infinity, -Infinity]",
            #"{"a": [[1, 2], [3, 4]], "b": [1, "x", 2], "c": ["x", 1], "d": [], "e": [true, 1]}"#,
            "[[[0.1]], [0.2, [0.3]], 7]",
        ]
        for text in documents {
            let typed = try JSON.parse(Array(text.utf8), typedNumberArrays: true)
            XCTAssertEqual(typed, try JSON.parse(text), text)
            XCTAssertEqual(JSONWriter.encode(typed), JSONWriter.encode(try JSON.parse(text)), text)
        }
        guard case .numbers(let run) = try JSON.parse(Array("[1, 2, 3.5, 4]".utf8), typedNumberArrays: true) else {
            return XCTFail("an all-number array is not typed")
        }
        XCTAssertEqual(run.doubles, [1, 2, 3.5, 4])
        XCTAssertEqual((0..<4).map { run.integer(at: $0) }, [1, 2, nil, 4])
        guard case .numbers(let large) = try JSON.parse(Array("[0.5, 9007199254740993, -9223372036854775808]".utf8), typedNumberArrays: true) else {
            return XCTFail("an all-number array is not typed")
        }
        XCTAssertEqual(large.integer(at: 1), 9_007_199_254_740_993, "beyond 2^53 the exact value is kept")
        XCTAssertEqual(large.integer(at: 2), Int64.min)
        for bad in ["[1, 2,]", "[1 2]", "[1, -]", "[1, 01]", "[1,"] {
            var typedError = "", boxedError = ""
            XCTAssertThrowsError(try JSON.parse(Array(bad.utf8), typedNumberArrays: true), bad) { typedError = "\($0)" }
            XCTAssertThrowsError(try JSON.parse(bad), bad) { boxedError = "\($0)" }
            XCTAssertEqual(typedError, boxedError, bad)
        }
    }

    func testNumberArraysAreReservedAtTheirCount() throws {
        let text = "[" + (0..<200).map { "\($0).5" }.joined(separator: ", ") + "]"
        guard case .numbers(let run) = try JSON.parse(Array(text.utf8), typedNumberArrays: true) else {
            return XCTFail("an all-number array is not typed")
        }
        XCTAssertEqual(run.count, 200)
        XCTAssertTrue((200..<204).contains(run.doubles.capacity), "allocated at its count (\(run.doubles.capacity)), not grown by doubling")
        XCTAssertEqual(run.doubles.last, 199.5)
        let lists = ["[NaN, -Infinity, 1e5, 2E-3]", "[ 1 ,\n2\t]", "[1, 2, [3]]", "[1, \"x\", 2]", "[[1, 2], [3, 4, 5]]"]
        for text in lists {  // counted ahead or not, the same values as boxed parsing
            XCTAssertEqual(try JSON.parse(Array(text.utf8), typedNumberArrays: true), try JSON.parse(text), text)
        }
    }
}
