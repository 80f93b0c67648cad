import SparseJSON
import XCTest
@testable import SparseServe

/// Reading config objects key by key: typed getters with ranges, field paths in errors, and
/// unknown keys reported with the known ones.
final class StrictObjectTests: XCTestCase {
    private func object(_ text: String, path: String = "server") throws -> StrictObject {
        try StrictObject(try JSON.parse(text), path: path)
    }

    private func error(_ body: () throws -> Any?) -> ConfigError? {
        do { _ = try body(); return nil } catch { return error as? ConfigError }
    }

    func testTypedGetters() throws {
        var o = try object(#"{"host": "::1", "port": 8080, "timeout": 2.5, "zero": 0}"#)
        XCTAssertEqual(try o.string("host"), "::1")
        XCTAssertEqual(try o.integer("port", in: 0...65535), 8080)
        XCTAssertEqual(try o.seconds("timeout"), 2.5)
        XCTAssertEqual(try o.seconds("zero", allowZero: true), 0)
        XCTAssertNil(try o.string("absent"))
        XCTAssertNoThrow(try o.finish())
    }

    func testErrorsNameTheFieldAndProblem() throws {
        var o = try object(#"{"host": 1, "port": 70000, "threads": 1.5, "idle": -1, "zero": 0, "day": 86401, "t": "5"}"#)
        let cases: [(ConfigError?, String, String)] = [
            (error { try o.string("host") }, "server.host", "must be a string, got a number"),
            (error { try o.integer("port", in: 0...65535) }, "server.port", "70000 is out of range 0...65535"),
            (error { try o.integer("threads", in: 1...64) }, "server.threads", "must be an integer, got a number"),
            (error { try o.seconds("idle") }, "server.idle", "-1.0 must be > 0 and at most 86400 seconds"),
            (error { try o.seconds("zero") }, "server.zero", "0.0 must be > 0"),
            (error { try o.seconds("day", allowZero: true) }, "server.day", "must be ≥ 0 and at most 86400 seconds"),
            (error { try o.seconds("t") }, "server.t", "must be a number of seconds, got a string"),
        ]
        for (e, field, reason) in cases {
            XCTAssertEqual(e?.field, field)
            XCTAssertTrue(e?.reason.contains(reason) ?? false, "\(field): \(e?.reason ?? "no error")")
        }
    }

    /// A key never read is unknown; the message lists the keys that were read, sorted.
    func testUnknownKeysAfterFinish() throws {
        var o = try object(#"{"port": 1, "hots": "x", "host": "y"}"#)
        _ = try o.string("host")
        _ = try o.take("port")
        let e = error { try o.finish() }
        XCTAssertEqual(e?.field, "server.hots")
        XCTAssertEqual(e?.reason, "unknown key (known keys here: host, port)")
        var top = try object(#"{"x": 1}"#, path: "")
        _ = try top.take("y")
        XCTAssertEqual(error { try top.finish() }?.field, "x", "a top-level key has no leading dot")
    }

    func testNonObjectsAreRefused() {
        XCTAssertEqual(error { try self.object("[1]", path: "endpoints[0]") }?.reason, "must be an object, got an array")
        XCTAssertEqual(error { try self.object("null", path: "tls") }?.field, "tls")
    }
}
