import Foundation
import HTTPServer
import Logging
import SparseJSON
import XCTest
@testable import SparseServe

/// The repository root: the folder above this file that holds Package.swift.
func packageRoot(_ file: StaticString = #filePath) -> String {
    var url = URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url.path
}

let silentLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The identity fixture, and the digits MLP batched and run alone.
let identityAndDigits = #"[{"name": "identity", "model": "Tests/fixtures/models/identity"},"#
    + #"{"name": "digits", "model": "models/digits-mlp", "batching": {"maxBatchSize": 8, "maxQueueDelayMicroseconds": 1000}},"#
    + #"{"name": "digits-direct", "model": "models/digits-mlp", "batching": {"maxBatchSize": 1}}]"#

/// A service listening on a loopback port with `endpoints` (a JSON array; relative model paths
/// against the repository root) loaded unless `load` is false. Drained at the end of `test`.
func startedService(_ test: XCTestCase, endpoints: String = identityAndDigits, server: String = "",
                    load: Bool = true) throws -> InferenceService {
    let text = #"{"server": {"host": "127.0.0.1", "port": 0, "threads": 2\#(server)}, "endpoints": \#(endpoints)}"#
    let service = InferenceService(config: try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot()), logger: silentLogger)
    try service.start()
    test.addTeardownBlock { service.drain() }
    if load { try service.loadEndpoints() }
    return service
}

/// Runs `body` with a responder and waits (up to 30 s) for its one response.
func response(_ body: (@escaping Responder) throws -> Void) throws -> HTTPResponse {
    let done = DispatchSemaphore(value: 0)
    let sink = ResponseSink()
    let record = sink.responder
    try body { r in
        record(r)
        done.signal()
    }
    guard done.wait(timeout: .now() + 30) == .success else { throw ProtocolError(504, "no response within 30 s") }
    return sink.all[0]
}

/// A response body as JSON.
func body(_ response: HTTPResponse) throws -> JSON { try JSON.parse(response.body) }

/// The status an error thrown by a route becomes, and its message.
func statusOf(_ body: () throws -> Any) -> (status: Int, message: String)? {
    do {
        _ = try body()
        return nil
    } catch {
        let (status, message, _) = ResponseErrors.describe(error)
        return (status, message)
    }
}

/// A v2 request body with one FP32 input of `shape`.
func v2Body(_ input: String, _ values: [Float], shape: [Int]) -> [UInt8] {
    let data = values.map { "\($0)" }.joined(separator: ","), dims = shape.map(String.init).joined(separator: ",")
    return Array(#"{"inputs": [{"name": "\#(input)", "datatype": "FP32", "shape": [\#(dims)], "data": [\#(data)]}]}"#.utf8)
}

/// Endpoint `name`'s counts in the v2 statistics: successes, failures and rows inferred.
func statistics(_ service: InferenceService, _ name: String) -> (success: Int64, fail: Int64, rows: Int64) {
    let all = V2Statistics.json(service.endpoints, metrics: service.metrics)["model_stats"]?.arrayValue ?? []
    let stats = all.first { $0["name"]?.stringValue == name }
    return (stats?["inference_stats"]?["success"]?["count"]?.integerValue ?? 0,
            stats?["inference_stats"]?["fail"]?["count"]?.integerValue ?? 0,
            stats?["inference_count"]?.integerValue ?? 0)
}
