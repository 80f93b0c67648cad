import Foundation
import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// The v2 repository extension: the index (and its ready filter), load and unload through the
/// admin API (off by default), and the endpoint config a load request may carry.
final class V2RepositoryRoutesTests: XCTestCase {
    let adminKey = "admin-key-0123456789abcdef"
    var admin: String { #", "admin": {"enabled": true, "apiKeys": ["\#(adminKey)"], "modelRoot": "models"}"# }

    func names(_ index: JSON) -> [String] { index.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [] }

    func testIndexListsEveryEndpointWithItsStateAndFiltersReadyOnes() throws {
        let service = try startedService(self, endpoints: #"[{"name": "digits", "model": "models/digits-mlp"},"#
                                         + #"{"name": "absent", "model": "models/no-such-model", "optional": true}]"#)
        let routes = V2Routes(service: service)
        let index = try body(try routes.repositoryIndex([]))
        XCTAssertEqual(names(index), ["digits", "absent"])
        XCTAssertEqual(index.arrayValue?.first?["state"]?.stringValue, ModelState.ready.rawValue)
        XCTAssertEqual(index.arrayValue?.first?["version"]?.stringValue, "1")
        XCTAssertNotEqual(index.arrayValue?.last?["state"]?.stringValue, ModelState.ready.rawValue)
        XCTAssertEqual(names(try body(try routes.repositoryIndex(Array(#"{"ready": true}"#.utf8)))), ["digits"])
        XCTAssertEqual(names(try body(try routes.repositoryIndex(Array(#"{"ready": false}"#.utf8)))), ["digits", "absent"])
        XCTAssertEqual(statusOf { try routes.repositoryIndex(Array("{\"ready\":".utf8)) }?.status, 400)
    }

    /// With the admin API off (the default) load and unload are 403 and nothing changes.
    func testLoadAndUnloadAreRefusedWhileTheAdminAPIIsOff() throws {
        let service = try startedService(self)
        let routes = V2Routes(service: service)
        let load = statusOf { try routes.repositoryLoad("digits", []) { _ in XCTFail("answered") } }
        XCTAssertEqual(load?.status, 403)
        XCTAssertTrue(load?.message.contains("admin API") == true)
        XCTAssertEqual(statusOf { try routes.repositoryUnload("digits") }?.status, 403)
        XCTAssertEqual(routes.ready().status, 200)
        XCTAssertNoThrow(try service.repository.endpoint(named: "digits", version: nil))
    }

    /// With the admin API on: load a new endpoint from the model root, reload it with a posted
    /// config (also as a JSON string, as Triton clients send it), unload it.
    func testLoadReloadAndUnloadWithTheAdminAPI() throws {
        let service = try startedService(self, server: admin)
        let routes = V2Routes(service: service)
        let config = #"{"parameters": {"config": {"model": "digits-mlp", "batching": {"maxBatchSize": 4}}}}"#
        let loaded = try response { try routes.repositoryLoad("fresh", Array(config.utf8), $0) }
        XCTAssertEqual(loaded.status, 200, String(decoding: loaded.body, as: UTF8.self))
        XCTAssertEqual(try service.repository.endpoint(named: "fresh", version: nil).config.batching.maxBatchSize, 4)
        let asString = #"{"parameters": {"config": "{\"batching\": {\"maxBatchSize\": 2}}"}}"#
        XCTAssertEqual(try response { try routes.repositoryLoad("fresh", Array(asString.utf8), $0) }.status, 200)
        let reloaded = try service.repository.endpoint(named: "fresh", version: nil).config
        XCTAssertEqual(reloaded.batching.maxBatchSize, 2)
        XCTAssertTrue(reloaded.modelPath.hasSuffix("/models/digits-mlp"), "the current model is kept: \(reloaded.modelPath)")
        XCTAssertEqual(try routes.repositoryUnload("fresh").status, 200)
        XCTAssertEqual(statusOf { try service.repository.endpoint(named: "fresh", version: nil) }?.status, 404)
        let failed = try response { try routes.repositoryLoad("broken", Array(#"{"parameters": {"config": {"model": "wordnet"}}}"#.utf8), $0) }
        XCTAssertEqual(failed.status, 400)
        XCTAssertTrue(String(decoding: failed.body, as: UTF8.self).contains("broken"))
    }

    /// The endpoint config of a load request: checked like the config file, confined to the model
    /// root, named as in the URL.
    func testTheConfigOfALoadRequest() throws {
        let text = #"{"server": {"port": 0\#(admin)}, "endpoints": [{"name": "digits", "model": "models/digits-mlp"}]}"#
        let config = try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot())
        func forLoad(_ body: String, name: String = "digits", current: String? = nil) throws -> EndpointConfig? {
            try InferenceService.endpointConfig(forLoad: name, body: Array(body.utf8), config: config, currentModelPath: current)
        }
        XCTAssertNil(try forLoad(""), "no body: reload the current config")
        XCTAssertNil(try forLoad(#"{"parameters": {}}"#))
        let given = try XCTUnwrap(try forLoad(#"{"parameters": {"config": {"model": "digits-mlp", "maxInputs": 4}}}"#))
        XCTAssertEqual(given.name, "digits")
        XCTAssertEqual(given.maxInputs, 4)
        XCTAssertEqual(given.modelPath, packageRoot() + "/models/digits-mlp")
        XCTAssertEqual(try forLoad(#"{"parameters": {"config": {}}}"#, current: "/kept")?.modelPath, "/kept")
        let withArtifact = try forLoad(#"{"parameters": {"config": {"model": "digits-mlp", "artifact": "digits-2of4"}}}"#)
        XCTAssertEqual(withArtifact?.artifactPath, packageRoot() + "/models/digits-2of4", "an artifact inside the model root is taken")
        let calibrated = try forLoad(#"{"parameters": {"config": {"model": "digits-mlp", "compression": {"method": "nm", "n": 2, "m": 4, "calibration": "default"}}}}"#)
        XCTAssertNotNil(calibrated?.compression.calibration, "the model folder's own calibration set needs no path")
        XCTAssertNil(calibrated?.compression.calibration?.path)
        let inside = try forLoad(#"{"parameters": {"config": {"model": "digits-mlp", "compression": {"method": "nm", "n": 2, "m": 4, "calibration": "digits-mlp/calibration.safetensors"}}}}"#)
        XCTAssertEqual(inside?.compression.calibration?.path, packageRoot() + "/models/digits-mlp/calibration.safetensors", "a file inside the model root (relative paths resolve against it) is taken")
        let refusals: [(String, String)] = [
            ("[1]", "load request body must be a JSON object"),
            (#"{"parameters": {"config": 5}}"#, "parameters.config must be an endpoint config object"),
            (#"{"parameters": {"config": {"model": 5}}}"#, "parameters.config.model must be a string"),
            (#"{"parameters": {"config": {"model": "../Package.swift"}}}"#, "is not available under the model root"),
            (#"{"parameters": {"config": {"model": "/etc"}}}"#, "is not available under the model root"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "artifact": "/etc"}}}"#, "is not available under the model root"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "artifact": "../Package.swift"}}}"#, "is not available under the model root"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "artifact": 1}}}"#, "parameters.config.artifact must be a string"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "compression": {"method": "nm", "n": 2, "m": 4, "calibration": "/etc/passwd"}}}}"#,
             "calibration file '/etc/passwd' is not available under the model root"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "compression": {"method": "nm", "n": 2, "m": 4, "calibration": {"path": "/etc/hostname"}}}}}"#,
             "is not available under the model root"),
            (#"{"parameters": {"config": {"name": "other", "model": "digits-mlp"}}}"#, "does not match the model in the URL 'digits'"),
            (#"{"parameters": {"config": {"model": "digits-mlp", "colour": 1}}}"#, "colour"),
        ]
        for (body, fragment) in refusals {
            let refused = statusOf { try forLoad(body) }
            XCTAssertTrue(refused?.message.contains(fragment) == true || "\(String(describing: refused))".contains(fragment),
                          "\(body): \(String(describing: refused))")
            XCTAssertEqual(refused.map { $0.status / 100 }, 4, body)
        }
    }
}
