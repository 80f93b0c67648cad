import Foundation
import SparseJSON
import XCTest
@testable import SparseServe

/// ModelRepository: endpoint slots and their states through load, failed load, reload and unload,
/// and the status each lookup answers with.
final class ModelRepositoryTests: XCTestCase {
    func repository(_ endpoints: String) throws -> ModelRepository {
        let text = #"{"endpoints": \#(endpoints)}"#
        let config = try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot())
        let compute = ComputeQueue(threads: 1, maxQueueSize: 16)
        addTeardownBlock { compute.shutdown() }
        return ModelRepository(configs: config.endpoints, compute: compute, metrics: ServerMetrics(), logger: silentLogger)
    }

    func state(_ repository: ModelRepository, _ name: String) -> (state: String?, reason: String?) {
        let entry = repository.indexJSON().arrayValue?.first { $0["name"]?.stringValue == name }
        return (entry?["state"]?.stringValue, entry?["reason"]?.stringValue)
    }

    /// Waits for an asynchronous `load` to finish; returns its error.
    func load(_ repository: ModelRepository, _ name: String, _ config: EndpointConfig?) -> (any Error)? {
        final class Outcome: @unchecked Sendable {
            private let lock = NSLock()
            private var stored: (any Error)?
            var error: (any Error)? {
                get { lock.lock(); defer { lock.unlock() }; return stored }
                set { lock.lock(); stored = newValue; lock.unlock() }
            }
        }
        let done = DispatchSemaphore(value: 0), outcome = Outcome()
        repository.load(name, config: config) { error in
            outcome.error = error
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        return outcome.error
    }

    func testLoadAllSkipsAbsentOptionalEndpointsAndReportsFailures() throws {
        let repo = try repository(#"[{"name": "digits", "model": "models/digits-mlp"}, {"name": "spare", "model": "models/absent", "optional": true},"#
                                  + #"{"name": "broken", "model": "models/wordnet"}]"#)
        XCTAssertThrowsError(try repo.loadAll(stopOnError: true)) { XCTAssertTrue("\($0)".contains("endpoint 'broken'"), "\($0)") }
        XCTAssertEqual(try repo.loadAll(stopOnError: false), ["broken"])
        XCTAssertEqual(state(repo, "digits").state, "READY")
        XCTAssertEqual(state(repo, "spare").state, "UNAVAILABLE")
        XCTAssertEqual(state(repo, "spare").reason, ModelRepository.skippedReason)
        XCTAssertTrue(state(repo, "broken").reason?.contains("cannot load model from") == true)
        XCTAssertEqual(repo.loadedEndpoints.map(\.name), ["digits"])
        XCTAssertFalse(repo.allLoaded, "a failed endpoint is missing")
        XCTAssertEqual(statusOf { try repo.endpoint(named: "spare", version: nil) }?.status, 404, "skipped on purpose")
        XCTAssertEqual(statusOf { try repo.endpoint(named: "broken", version: nil) }?.status, 503, "a fault")
        XCTAssertEqual(statusOf { try repo.endpoint(named: "digits", version: "7") }?.message, "model 'digits' has no version '7' (available: 1)")
        XCTAssertEqual(statusOf { try repo.endpoint(named: "other", version: nil) }?.status, 404)
    }

    /// A configured endpoint keeps its slot when unloaded and comes back with a plain load; one
    /// added by load leaves no trace when unloaded.
    func testUnloadAndReload() throws {
        let repo = try repository(#"[{"name": "digits", "model": "models/digits-mlp"}]"#)
        try repo.loadAll()
        try repo.unload("digits")
        XCTAssertEqual(state(repo, "digits").state, "UNAVAILABLE")
        XCTAssertTrue(repo.allLoaded, "unloaded on purpose")
        XCTAssertTrue(statusOf { try repo.endpoint(named: "digits", version: nil) }?.message.contains("/v2/repository/models/digits/load") == true)
        XCTAssertNil(load(repo, "digits", nil))
        XCTAssertEqual(state(repo, "digits").state, "READY")
        var added = EndpointConfig(name: "added", modelPath: packageRoot() + "/models/digits-mlp")
        added.batching.maxBatchSize = 1
        XCTAssertNil(load(repo, "added", added))
        XCTAssertNil(try repo.endpoint(named: "added", version: nil).scheduler, "maxBatchSize 1: no batcher")
        try repo.unload("added")
        XCTAssertEqual(repo.names, ["digits"])
        XCTAssertEqual(statusOf { try repo.unload("added") }?.status, 404)
        XCTAssertEqual((load(repo, "nothing", nil) as? ProtocolError)?.status, 404)
    }

    /// A failed reload keeps the previous model serving; a failed load of a new name is only
    /// remembered in the index as a recent failure.
    func testFailedLoadsKeepWhatServes() throws {
        let repo = try repository(#"[{"name": "digits", "model": "models/digits-mlp"}]"#)
        try repo.loadAll()
        let before = try repo.endpoint(named: "digits", version: nil)
        XCTAssertNotNil(load(repo, "digits", EndpointConfig(name: "digits", modelPath: packageRoot() + "/models/wordnet")))
        XCTAssertTrue(try repo.endpoint(named: "digits", version: nil) === before)
        XCTAssertEqual(state(repo, "digits").state, "READY")
        XCTAssertTrue(state(repo, "digits").reason?.hasPrefix("last load failed, still serving the previous model") == true)
        XCTAssertNotNil(load(repo, "ghost", EndpointConfig(name: "ghost", modelPath: "/nonexistent")))
        XCTAssertEqual(repo.names, ["digits"])
        XCTAssertEqual(state(repo, "ghost").state, "UNAVAILABLE")
        XCTAssertTrue(state(repo, "ghost").reason?.hasPrefix("load failed: cannot load model from '/nonexistent'") == true)
    }
}
