import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// IMF-fixdate formatting for the `Date` header, cached per second.
final class HTTPDate: @unchecked Sendable {
    static let shared = HTTPDate()

    private let lock = NSLock()
    private var cachedSecond: Int = -1
    private var cachedText = ""

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The current time, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    func now() -> String {
        let seconds = time(nil)
        lock.lock()
        defer { lock.unlock() }
        if Int(seconds) != cachedSecond {
            cachedSecond = Int(seconds)
            cachedText = Self.format(seconds)
        }
        return cachedText
    }

    static func format(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
