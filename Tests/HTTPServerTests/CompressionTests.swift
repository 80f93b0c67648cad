import XCTest
@testable import HTTPServer

final class CompressionTests: XCTestCase {
    func testNegotiation() {
        XCTAssertEqual(ContentCoding.negotiate(nil), .identity)
        XCTAssertEqual(ContentCoding.negotiate(""), .identity)
        XCTAssertEqual(ContentCoding.negotiate("gzip"), .gzip)
        XCTAssertEqual(ContentCoding.negotiate("deflate, gzip"), .gzip, "ties prefer gzip")
        XCTAssertEqual(ContentCoding.negotiate("gzip;q=0.5, deflate"), .deflate)
        XCTAssertEqual(ContentCoding.negotiate("gzip;q=0, deflate;q=0"), .identity)
        XCTAssertEqual(ContentCoding.negotiate("br"), .identity)
        XCTAssertEqual(ContentCoding.negotiate("*"), .gzip)
        XCTAssertEqual(ContentCoding.negotiate("*;q=0.1, identity;q=0.5"), .identity)
        XCTAssertEqual(ContentCoding.negotiate("identity;q=0, *;q=0"), .identity, "nothing acceptable: identity anyway")
        XCTAssertEqual(ContentCoding.negotiate(" GZIP ; Q=1"), .gzip)
        XCTAssertEqual(ContentCoding.negotiate("x-gzip"), .gzip)
        XCTAssertEqual(ContentCoding.parse("gzip"), .gzip)
        XCTAssertEqual(ContentCoding.parse(" Deflate "), .deflate)
        XCTAssertNil(ContentCoding.parse("br"))
        XCTAssertNil(ContentCoding.parse("gzip, gzip"))
    }

    func testRoundTripsAndFormats() throws {
        let text = Array(String(repeating: "sparse serve ", count: 500).utf8)
        let gz = HTTPCompression.compress(text, coding: .gzip)
        XCTAssertEqual(Array(gz.prefix(2)), [0x1F, 0x8B], "gzip magic")
        let zl = HTTPCompression.compress(text, coding: .deflate)
        XCTAssertEqual(zl[0] & 0x0F, 8, "zlib header (RFC 1950), CM = 8")
        XCTAssertLessThan(gz.count, text.count / 10)
        XCTAssertEqual(try HTTPCompression.decompress(gz, coding: .gzip, limit: text.count), text)
        XCTAssertEqual(try HTTPCompression.decompress(zl, coding: .deflate, limit: text.count), text)
        XCTAssertEqual(try HTTPCompression.decompress([], coding: .identity, limit: 0), [])
        XCTAssertEqual(HTTPCompression.compress([], coding: .gzip).isEmpty, false)
    }

    func testZipBombIsRefusedWithoutInflatingIt() {
        // 100 MB of zeros compress to ~100 KB; the decoder must stop at the cap.
        let zeros = [UInt8](repeating: 0, count: 100 << 20)
        let bomb = HTTPCompression.compress(zeros, coding: .gzip, level: 9)
        XCTAssertLessThan(bomb.count, 200_000)
        XCTAssertThrowsError(try HTTPCompression.decompress(bomb, coding: .gzip, limit: 1 << 20)) { error in
            XCTAssertEqual(error as? CompressionError, .tooLarge(limit: 1 << 20))
        }
    }

    func testCorruptTruncatedAndTrailingData() {
        let data = HTTPCompression.compress(Array("hello hello hello".utf8), coding: .gzip)
        var corrupt = data
        corrupt[corrupt.count / 2] ^= 0xFF
        for bad in [corrupt, Array(data.dropLast(6)), data + [1, 2, 3], [0x1F, 0x8B], Array("plain".utf8)] {
            XCTAssertThrowsError(try HTTPCompression.decompress(bad, coding: .gzip, limit: 1000)) { error in
                guard case .corrupt = error as? CompressionError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try HTTPCompression.decompress(data, coding: .deflate, limit: 1000), "gzip bytes are not zlib")
    }
}
