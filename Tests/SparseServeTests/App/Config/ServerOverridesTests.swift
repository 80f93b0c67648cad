import Foundation
import XCTest
@testable import SparseServe

/// ServerOverrides (`serve --host/--port/--threads/--api-keys-file`): applied alike at start and
/// on SIGHUP, so an unchanged config file re-reads equal to the running settings.
final class ServerOverridesTests: XCTestCase {
    let file = #"{"server": {"host": "0.0.0.0", "port": 8000, "threads": 4}, "endpoints": [{"name": "e", "model": "m"}]}"#

    func read() throws -> ServiceConfig { try ServiceConfig.parse(Array(file.utf8), baseDirectory: "/") }

    func testFlagsOverrideTheFileAndAReReadIsEqual() throws {
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("overrides-keys-\(UUID().uuidString)")
        try "# comment\nkey-from-the-file-0123456789\n".write(to: keys, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: keys) }
        let overrides = ServerOverrides(host: "127.0.0.1", port: 0, threads: 1, apiKeysFile: keys.path)
        let started = try overrides.applied(to: read())
        XCTAssertEqual(started.server.host, "127.0.0.1")
        XCTAssertEqual(started.server.port, 0)
        XCTAssertEqual(started.server.threads, 1)
        XCTAssertEqual(started.server.apiKeys, ["key-from-the-file-0123456789"])
        // what SIGHUP compares: the file read again, with the same flags
        XCTAssertEqual(try overrides.applied(to: read()).server, started.server)
        XCTAssertNotEqual(try read().server, started.server, "without the flags the settings differ (the old comparison)")
        // a rotated key file is a change of server settings
        try "another-key-0123456789abcdef\n".write(to: keys, atomically: true, encoding: .utf8)
        XCTAssertNotEqual(try overrides.applied(to: read()).server, started.server)
    }

    func testNoFlagsLeaveTheFileAsIs() throws {
        XCTAssertEqual(try ServerOverrides().applied(to: read()), try read())
    }

    func testAnUnreadableKeyFileNamesTheFlag() throws {
        XCTAssertThrowsError(try ServerOverrides(apiKeysFile: "/nonexistent/keys").applied(to: read())) { error in
            XCTAssertEqual((error as? ConfigError)?.field, "--api-keys-file")
        }
    }
}
