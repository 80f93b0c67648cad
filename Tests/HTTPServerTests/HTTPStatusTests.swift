import XCTest
@testable import HTTPServer

/// Reason phrases (exact for known codes, by class otherwise) and which statuses carry no body.
final class HTTPStatusTests: XCTestCase {
    func testReasonPhrases() {
        XCTAssertEqual(HTTPStatus.reasonPhrase(200), "OK")
        XCTAssertEqual(HTTPStatus.reasonPhrase(413), "Content Too Large")
        XCTAssertEqual(HTTPStatus.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTPStatus.reasonPhrase(503), "Service Unavailable")
        for (code, phrase) in [(199, "Informational"), (299, "Success"), (399, "Redirection"), (499, "Client Error"),
                               (599, "Server Error"), (418, "Client Error")] {
            XCTAssertEqual(HTTPStatus.reasonPhrase(code), phrase, "\(code)")
        }
    }

    /// Every phrase is non-empty and safe on a status line (no CR, LF or control characters).
    func testPhrasesAreStatusLineSafe() {
        for code in 100..<600 {
            let phrase = HTTPStatus.reasonPhrase(code)
            XCTAssertFalse(phrase.isEmpty, "\(code)")
            XCTAssertTrue(phrase.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }, "\(code): \(phrase)")
        }
    }

    func testBodylessStatuses() {
        XCTAssertEqual((100..<600).filter(HTTPStatus.forbidsBody), Array(100..<200) + [204, 304])
    }
}
