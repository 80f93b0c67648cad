import Tracing
import XCTest
@testable import SparseServe

final class SpanWriterTests: XCTestCase {
    func testAttributesRoundTripAndNestedLengthsGrowPastOneByte() {
        let long = String(repeating: "é", count: 100)  // 200 bytes: a two-byte length
        let bytes = SpanWriter.encoded { w in
            w.attribute("n", int: -3)
            w.attribute("s", string: long)
            w.attribute("d", .double(0.5))
            w.message(9) { kv in kv.string(1, "b"); kv.message(2) { $0.anyValue(.bool(true)) } }
        }
        let decoded = SpanWriter.decodeAttributes(bytes)
        XCTAssertEqual(decoded.map(\.0), ["n", "s", "d", "b"])
        XCTAssertEqual(decoded.map(\.1), [.int64(-3), .string(long), .double(0.5), .bool(true)])
    }

    func testLongStringsAreCutOnACharacterBoundary() {
        let text = String(repeating: "a", count: SpanWriter.maxStringBytes - 1) + "€€"  // € is 3 bytes
        let bytes = SpanWriter.encoded { $0.attribute("k", string: text) }
        guard case .string(let kept)? = SpanWriter.decodeAttributes(bytes).first?.1 else { return XCTFail("no string") }
        XCTAssertEqual(kept, String(repeating: "a", count: SpanWriter.maxStringBytes - 1), "no half character")
    }

    func testWritingPastTheBufferOverflowsInsteadOfWriting() {
        var storage = [UInt8](repeating: 0, count: 16)
        storage.withUnsafeMutableBufferPointer { buffer in
            var w = SpanWriter(buffer)
            w.attribute("key", string: String(repeating: "x", count: 40))
            XCTAssertTrue(w.overflowed)
            XCTAssertLessThanOrEqual(w.count, 16)
        }
    }

    func testASpanTooLargeForTheStackIsWrittenOnTheHeap() {
        var got = 0
        withSpanWriter({ w in for i in 0..<20 { w.attribute("k\(i)", string: String(repeating: "y", count: 500)) } }) { got = $0.count }
        XCTAssertGreaterThan(got, 10_000)
    }
}
