import Foundation
import SparseModels

/// A served model: its config, the loaded model and simple counters.
public final class Endpoint: @unchecked Sendable {
    public let config: EndpointConfig
    public let model: any InferenceModel
    /// The dynamic batcher, when batching is on and the model is batch-first.
    var scheduler: BatchScheduler?
    private let lock = NSLock()
    private var successes = 0
    private var failures = 0

    public init(config: EndpointConfig, model: any InferenceModel) {
        self.config = config
        self.model = model
    }

    public var name: String { config.name }
    public var version: String { config.version }

    /// Stored weights over dense-equivalent weights (1 for a dense model).
    public var density: Double { ModelLoader.summary(of: model)?.density ?? 1 }

    /// Per-layer storage facts: operator, parameters, bytes, density, relative error.
    public func compressionJSON() -> JSON {
        let layers = ModelLoader.summary(of: model)?.layers.filter { $0.storage != nil } ?? []
        return .object([
            ("method", .string(config.compression.method)),
            ("density", .number(double: density, integer: nil)),
            ("layers", .array(layers.map { l in
                .object([
                    ("name", .string(l.name)), ("storage", .string(l.storage ?? "")),
                    ("parameters", .number(double: Double(l.parameterCount), integer: Int64(l.parameterCount))),
                    ("bytes", .number(double: Double(l.byteCount), integer: Int64(l.byteCount))),
                    ("density", .number(double: l.density ?? 1, integer: nil)),
                    ("relative_error", .number(double: l.relativeError ?? 0, integer: nil)),
                ])
            })),
        ])
    }

    /// Platform string reported in model metadata, e.g. `sparseserve_mlp`.
    public var platform: String { "sparseserve_\(model.architecture)" }

    func record(success: Bool) {
        lock.lock(); defer { lock.unlock() }
        if success { successes += 1 } else { failures += 1 }
    }

    /// (successful, failed) inference counts since start.
    public var counts: (success: Int, failure: Int) {
        lock.lock(); defer { lock.unlock() }
        return (successes, failures)
    }

    /// Metadata in the v2 model-metadata shape.
    public func metadataJSON() -> JSON {
        func tensors(_ specs: [TensorSpec]) -> JSON {
            .array(specs.map { s in
                .object([("name", .string(s.name)), ("datatype", .string(s.datatype.rawValue)),
                         ("shape", .array(s.shape.map { .number(double: Double($0), integer: Int64($0)) }))])
            })
        }
        return .object([
            ("name", .string(name)),
            ("versions", .array([.string(version)])),
            ("platform", .string(platform)),
            ("inputs", tensors(model.inputs)),
            ("outputs", tensors(model.outputs)),
            ("compression", compressionJSON()),
        ])
    }

    /// The Triton model-configuration shape (`GET /v2/models/{m}/config`) that perf_analyzer reads:
    /// with `max_batch_size` > 0 the dims leave out the batch dimension.
    public func modelConfigJSON() -> JSON {
        func int(_ v: Int) -> JSON { .number(double: Double(v), integer: Int64(v)) }
        let batchFirst = (model.inputs + model.outputs).allSatisfy { $0.shape.first == -1 }
        let maxBatch = batchFirst ? max(1, config.batching.maxBatchSize) : 0
        func tensors(_ specs: [TensorSpec]) -> JSON {
            .array(specs.map { s in
                .object([("name", .string(s.name)), ("data_type", .string("TYPE_" + (s.datatype == .bytes ? "STRING" : s.datatype.rawValue))),
                         ("dims", .array((batchFirst ? Array(s.shape.dropFirst()) : s.shape).map(int)))])
            })
        }
        var pairs: [(String, JSON)] = [
            ("name", .string(name)), ("platform", .string(platform)), ("backend", .string("sparseserve")),
            ("version_policy", .object([("specific", .object([("versions", .array([.string(version)]))]))])),
            ("max_batch_size", int(maxBatch)),
            ("input", tensors(model.inputs)), ("output", tensors(model.outputs)),
            ("parameters", .object([
                ("compression", .object([("string_value", .string(config.compression.method))])),
                ("compression_report", .object([("string_value", .string(String(decoding: JSONWriter.encode(compressionJSON()), as: UTF8.self)))])),
            ])),
        ]
        if scheduler != nil {
            pairs.append(("dynamic_batching", .object([
                ("preferred_batch_size", .array(config.batching.preferredBatchSizes.map(int))),
                ("max_queue_delay_microseconds", int(config.batching.maxQueueDelayMicroseconds)),
                ("default_queue_policy", .object([("max_queue_size", int(config.batching.maxQueueSize))])),
            ])))
        }
        return .object(pairs)
    }
}
