import XCTest
@testable import SparseJSON

/// JSONWriter: compact and indented output of whole values; numbers and non-finite values.
final class JSONWriterTests: XCTestCase {
    let value = JSON.object([("b", .array([.number(double: 1, integer: 1), .string("x\u{2028}")])), ("a", .object([])),
                             ("c", .array([])), ("d", .object([("e", .null), ("f", .bool(false))]))])

    func testCompactOutputKeepsMemberOrder() {
        XCTAssertEqual(String(decoding: JSONWriter.encode(value), as: UTF8.self),
                       #"{"b":[1,"x\u2028"],"a":{},"c":[],"d":{"e":null,"f":false}}"#)
    }

    func testIndentedOutputPutsEachMemberOnItsOwnLine() throws {
        let text = String(decoding: JSONWriter.encode(value, indent: 2), as: UTF8.self)
        XCTAssertEqual(text, """
        {
          "b" : [
            1,
            "x\\u2028"
          ],
          "a" : {},
          "c" : [],
          "d" : {
            "e" : null,
            "f" : false
          }
        }
        """)
        XCTAssertEqual(try JSON.parse(text), value, "the same value, read back")
        XCTAssertEqual(String(decoding: JSONWriter.encode(.string("s"), indent: 4), as: UTF8.self), #""s""#)
    }

    func testNumbers() {
        var w = JSONWriter()
        w.number(0.1 as Float)
        w.raw(",")
        w.number(Double.nan)
        w.raw(",")
        w.number(-Float.infinity)
        w.raw(",")
        w.number(Int64.min)
        w.raw(",")
        w.number(2.5e-8)
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), "0.1,null,null,-9223372036854775808,2.5e-08")
    }
}
