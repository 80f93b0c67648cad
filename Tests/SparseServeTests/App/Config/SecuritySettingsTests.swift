import Foundation
import HTTPServer
import Logging
import XCTest
@testable import SparseServe

/// The security settings: parsing and validation, the model root, posted-config ceilings, the
/// request gate's decisions from heads alone, text bounds and metric series removal.
final class SecuritySettingsTests: XCTestCase {
    let adminKey = "admin-key-0123456789abcdef", key = "infer-key-0123456789abcdef"

    func parse(_ server: String) throws -> ServiceConfig {
        try ServiceConfig.parse(Array(#"{"server": \#(server), "endpoints": [{"name": "d", "model": "/m"}]}"#.utf8), baseDirectory: "/")
    }

    /// A folder holding `models/digits`, removed when the test finishes.
    func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "sparse-security-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path + "/models/digits", withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testDefaultsAreClosed() throws {
        let s = try parse("{}").server
        XCTAssertFalse(s.security.admin.enabled)
        XCTAssertEqual(s.security.hostAllowlist(bind: "127.0.0.1"), ["localhost", "127.0.0.1", "::1"])
        XCTAssertNil(s.security.hostAllowlist(bind: "0.0.0.0"))
        XCTAssertEqual(s.security.perClientLimit(s), 256)
        XCTAssertEqual(s.security.firstRequestTimeoutSeconds, 5)
    }

    func testAdminNeedsAKeyAndAModelRoot() throws {
        let folder = try temporaryFolder()
        XCTAssertThrowsError(try parse(#"{"admin": {"enabled": true, "modelRoot": "\#(folder)"}}"#)) {
            XCTAssertTrue("\($0)".contains("server.admin.apiKeys"), "\($0)")
        }
        XCTAssertThrowsError(try parse(#"{"admin": {"enabled": true, "apiKeys": ["\#(adminKey)"]}}"#)) {
            XCTAssertTrue("\($0)".contains("modelRoot"), "\($0)")
        }
        XCTAssertThrowsError(try parse(#"{"admin": {"enabled": true, "apiKeys": ["\#(adminKey)"], "modelRoot": "/no/such/dir"}}"#))
        XCTAssertThrowsError(try parse(#"{"maxBodyBytes": 1000, "maxTotalBodyBytes": 999}"#))
        let ok = try parse(#"{"admin": {"enabled": true, "apiKeys": ["\#(adminKey)"], "modelRoot": "\#(folder)/models"}}"#)
        XCTAssertEqual(ok.server.security.admin.apiKeys, [adminKey])
    }

    func testKeyFilesSkipCommentsAndBlankLines() throws {
        let folder = try temporaryFolder()
        try "# rotated\n\n\(key)\n  \(adminKey)  \n".write(toFile: folder + "/keys", atomically: true, encoding: .utf8)
        let s = try parse(#"{"apiKeys": ["first-key-0123456789abc"], "apiKeysFile": "\#(folder)/keys"}"#).server
        XCTAssertEqual(s.apiKeys, ["first-key-0123456789abc", key, adminKey])
        try "short\n".write(toFile: folder + "/bad", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try parse(#"{"apiKeysFile": "\#(folder)/bad"}"#))
        XCTAssertThrowsError(try parse(#"{"apiKeysFile": "\#(folder)/missing"}"#))
    }

    func testModelRootConfinesEveryPathWithOneError() throws {
        let folder = try temporaryFolder()
        try FileManager.default.createSymbolicLink(atPath: folder + "/models/escape", withDestinationPath: "/etc")
        var admin = AdminSettings()
        admin.modelRoot = SecuritySettings.realPath(folder + "/models")
        XCTAssertEqual(try admin.confine("digits"), admin.modelRoot! + "/digits")
        XCTAssertEqual(try admin.confine(admin.modelRoot! + "/digits/"), admin.modelRoot! + "/digits")
        var messages = Set<String>()
        for path in ["/etc", "/etc/passwd", "../../etc", "escape", "escape/..", "missing", "", "digits/../..", folder] {
            XCTAssertThrowsError(try admin.confine(path), path) { error in
                messages.insert("\(error)".replacingOccurrences(of: "'\(path)'", with: "'…'"))
            }
        }
        XCTAssertEqual(messages.count, 1, "\(messages)")
    }

    func testPostedConfigsStayUnderTheServerCeilings() throws {
        let server = try parse(#"{"maxBodyBytes": 4096, "maxQueueSize": 300}"#).server
        let admin = AdminSettings()
        var e = EndpointConfig(name: "x", modelPath: "/m")
        XCTAssertNoThrow(try admin.checkCeilings(e, server: server))
        e.maxBodyBytes = 4097
        XCTAssertThrowsError(try admin.checkCeilings(e, server: server)) { XCTAssertTrue("\($0)".contains("maxBodyBytes")) }
        e.maxBodyBytes = nil
        e.batching.maxQueueSize = 301
        XCTAssertThrowsError(try admin.checkCeilings(e, server: server)) { XCTAssertTrue("\($0)".contains("maxQueueSize")) }
    }

    func testHostNames() {
        XCTAssertEqual(RequestGate.hostName("LocalHost:8000"), "localhost")
        XCTAssertEqual(RequestGate.hostName("[::1]:8000"), "::1")
        XCTAssertEqual(RequestGate.hostName("127.0.0.1"), "127.0.0.1")
        XCTAssertEqual(RequestGate.hostName("::1"), "::1")
    }

    func testGateDecidesFromTheHeadAlone() throws {
        let folder = try temporaryFolder()
        let text = #"{"server": {"apiKeys": ["\#(key)"], "cors": {"allowOrigins": ["https://app.example"]},"#
            + #""admin": {"enabled": true, "apiKeys": ["\#(adminKey)"], "modelRoot": "\#(folder)/models"}},"#
            + #""endpoints": [{"name": "d", "model": "/m", "maxBodyBytes": 1000}]}"#
        let service = InferenceService(config: try ServiceConfig.parse(Array(text.utf8), baseDirectory: "/"),
                                       logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let gate = RequestGate(service: service)
        func decide(_ method: String, _ target: String, _ headers: [(String, String)]) -> Int {
            var all = HTTPHeaders(headers)
            if !headers.contains(where: { $0.0 == "Host" }) { all.add(name: "Host", value: "127.0.0.1:8000") }
            switch gate.decide(HTTPRequest(method: method, target: target, headers: all)) {
            case .accept(let limit): return limit
            case .reject(let response): return -response.status
            }
        }
        let bearer = [("Authorization", "Bearer \(key)")], admin = [("Authorization", "Bearer \(adminKey)"), ("Content-Type", "application/json")]
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", bearer), 1000)
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", []), -401)
        XCTAssertEqual(decide("POST", "/v1/embeddings", []), -401)
        XCTAssertEqual(decide("GET", "/v2/models/d/ready", []), -401)
        XCTAssertGreaterThan(decide("GET", "/v2/health/ready", []), 0)
        XCTAssertEqual(decide("GET", "/v2/health/ready", [("Host", "attacker.example")]), -421)
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", bearer + [("Origin", "https://evil.example")]), -403)
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", bearer + [("Origin", "https://app.example")]), 1000)
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", bearer + [("Origin", "http://127.0.0.1:8000")]), 1000)
        XCTAssertGreaterThan(decide("POST", "/v2/repository/models/d/unload", admin), 0)
        XCTAssertEqual(decide("POST", "/v2/repository/models/d/unload", bearer + [("Content-Type", "application/json")]), -401)
        XCTAssertEqual(decide("POST", "/v2/repository/models/d/unload", [("Authorization", "Bearer \(adminKey)")]), -415)
        XCTAssertEqual(decide("POST", "/v2/models/d/infer", [("Authorization", "Bearer \(adminKey)")]), -401)
    }

    func testLongTextIsRefusedOrCutBeforeTokenizing() throws {
        let text = Array(String(repeating: "é", count: 5000).utf8)  // 10000 bytes
        XCTAssertThrowsError(try TextInputs.boundedText(text, limit: 100, truncate: false, name: "input[0]", model: "m")) {
            XCTAssertEqual(($0 as? ProtocolError)?.status, 422)
        }
        let cut = try TextInputs.boundedText(text, limit: 100, truncate: true, name: "input[0]", model: "m")
        XCTAssertLessThanOrEqual(cut.count, 6400)
        XCTAssertNotNil(String(validating: cut, as: UTF8.self), "cut at a character boundary")
        XCTAssertEqual(try TextInputs.boundedText(Array("short".utf8), limit: 100, truncate: false, name: "", model: ""), Array("short".utf8))
    }

    func testSeriesOfAModelCanBeRemoved() {
        let metrics = ServerMetrics()
        metrics.series("gone").record(rows: 1, queue: 0.1, compute: 0, total: 0.1, failure: nil)
        metrics.series("kept").record(rows: 1, queue: 0.1, compute: 0, total: 0.1, failure: nil)
        metrics.removeModel("gone", keepLoadedAtZero: false)
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        XCTAssertFalse(text.contains(#"model="gone""#))
        XCTAssertTrue(text.contains(#"model="kept""#))
    }
}
