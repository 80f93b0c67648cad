import Foundation
import XCTest
@testable import SparseServe

/// The lifecycle: readiness only between "listening with every endpoint loaded" and drain; a
/// start where nothing loads is an error naming the endpoints; a reload (SIGHUP) unloads what the
/// new file drops and loads what it adds, keeping server settings until a restart.
final class InferenceServiceTests: XCTestCase {
    private func config(_ endpoints: String, server: String = "") throws -> ServiceConfig {
        let text = #"{"server": {"host": "127.0.0.1", "port": 0, "threads": 2\#(server)}, "endpoints": \#(endpoints)}"#
        return try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot())
    }

    private let identity = #"{"name": "identity", "model": "Tests/fixtures/models/identity"}"#

    func testReadinessFollowsTheLifecycle() throws {
        let service = InferenceService(config: try config("[\(identity)]"), logger: silentLogger)
        XCTAssertFalse(service.isReady, "not listening yet")
        let urls = try service.start()
        XCTAssertEqual(urls.count, 1)
        XCTAssertTrue(urls[0].hasPrefix("http://127.0.0.1:"), urls[0])
        XCTAssertFalse(service.isReady, "listening, models not loaded")
        try service.loadEndpoints()
        XCTAssertTrue(service.isReady)
        XCTAssertEqual(service.endpoints.map(\.name), ["identity"])
        service.drain()
        XCTAssertFalse(service.isReady, "draining")
    }

    func testNothingLoadableIsAnErrorNamingTheEndpoints() throws {
        let broken = #"[{"name": "a", "model": "Tests/fixtures/no-such-model"}, {"name": "b", "model": "Tests/fixtures/also-missing"}]"#
        let service = InferenceService(config: try config(broken, server: #", "exitOnModelLoadError": false"#), logger: silentLogger)
        try service.start()
        defer { service.drain() }
        XCTAssertThrowsError(try service.loadEndpoints()) { error in
            XCTAssertTrue("\(error)".contains("no endpoint could be loaded (a, b)"), "\(error)")
        }
        XCTAssertFalse(service.isReady)
    }

    func testOneFailureLeavesTheOthersServingWhenAllowed() throws {
        let mixed = "[\(identity), " + #"{"name": "gone", "model": "Tests/fixtures/no-such-model"}]"#
        let service = InferenceService(config: try config(mixed, server: #", "exitOnModelLoadError": false"#), logger: silentLogger)
        try service.start()
        defer { service.drain() }
        try service.loadEndpoints()
        XCTAssertTrue(service.isReady)
        XCTAssertEqual(service.endpoints.map(\.name), ["identity"])
    }

    func testReloadSwapsEndpoints() throws {
        let service = try startedService(self, endpoints: "[\(identity)]")
        let renamed = #"[{"name": "mirror", "model": "Tests/fixtures/models/identity"}]"#
        service.reload(try config(renamed, server: #", "maxQueueSize": 7"#))
        let deadline = Date().addingTimeInterval(20)
        while service.endpoints.map(\.name) != ["mirror"] && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(service.endpoints.map(\.name), ["mirror"], "identity unloaded, mirror loaded")
        XCTAssertNotEqual(service.config.server.maxQueueSize, 7, "server settings wait for a restart")
    }
}
