import Foundation
import XCTest
@testable import HTTPServer

/// IMF-fixdate formatting (RFC 9110 §5.6.7) and the per-second cache.
final class HTTPDateTests: XCTestCase {
    func testFormatsIMFFixdate() {
        XCTAssertEqual(HTTPDate.format(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.format(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPDate.format(951782400), "Tue, 29 Feb 2000 00:00:00 GMT", "leap day")
        XCTAssertEqual(HTTPDate.format(1767225599), "Wed, 31 Dec 2025 23:59:59 GMT")
    }

    /// `now()` agrees with Foundation's clock and formatter, to the second (allowing one tick).
    func testNowMatchesTheClock() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let before = formatter.string(from: Date())
        let now = HTTPDate.shared.now()
        let after = formatter.string(from: Date())
        XCTAssertTrue(now == before || now == after, "\(now) vs \(before) / \(after)")
        XCTAssertEqual(HTTPDate.shared.now().count, 29)
    }
}
