import Foundation
import SparseModels
import SparseJSON

/// A served model: its config, the loaded model and simple counters.
public final class Endpoint: @unchecked Sendable {
    public let config: EndpointConfig
    public let model: any InferenceModel
    /// The dynamic batcher, when batching is on and the model is batch-first.
    var scheduler: BatchScheduler?
    private let lock = NSLock()
    private var successes = 0
    private var failures = 0
    /// When the model was loaded (OpenAI's `created`).
    public let loadedAt = Date()

    public init(config: EndpointConfig, model: any InferenceModel) {
        self.config = config
        self.model = model
    }

    public var name: String { config.name }
    public var version: String { config.version }

    /// Stored weights over dense-equivalent weights (1 for a dense model).
    public var density: Double { ModelLoader.summary(of: model)?.density ?? 1 }

    /// The endpoint-wide compression method: the config's, or the one an artifact was made with.
    public var compressionMethod: String {
        ModelLoader.summary(of: model)?.artifact?.method ?? config.compression.method
    }

    /// Keys under which artifact metadata records a file (calibration, held-out and training data).
    static let fileKeys: Set<String> = ["source", "file", "trainingFile"]

    /// `json` with every file reduced to its name: artifact metadata records the calibration,
    /// held-out and training files it was made with, and their paths (absolute ones anywhere, any
    /// path under a file key) would tell clients about the server's file system.
    static func withoutPaths(_ json: JSON, fileKey: Bool = false) -> JSON {
        switch json {
        case .string(let s) where s.hasPrefix("/") || (fileKey && s.contains("/")):
            return .string((s as NSString).lastPathComponent)
        case .array(let items): return .array(items.map { withoutPaths($0) })
        case .object(let pairs): return .object(pairs.map { ($0.0, withoutPaths($0.1, fileKey: fileKeys.contains($0.0))) })
        default: return json
        }
    }

    /// What compression did, layer by layer — method and parameters, stored bytes against dense,
    /// density, relative error, N:M mask check, the load-time timing against dense and what runs —
    /// plus totals over the linear layers, and where the compression came from (the endpoint's
    /// config, or an artifact).
    public func compressionJSON() -> JSON {
        func int(_ v: Int) -> JSON { .number(double: Double(v), integer: Int64(v)) }
        func number(_ v: Double) -> JSON { .number(double: v, integer: nil) }
        let summary = ModelLoader.summary(of: model)
        let layers = summary?.layers.filter { $0.storage != nil } ?? []
        var pairs: [(String, JSON)] = [
            ("method", .string(compressionMethod)),
            ("source", .string(summary?.artifact == nil ? "config" : "artifact")),
            ("density", number(density)),
        ]
        if let artifact = summary?.artifact {
            pairs.append(("artifact", .object([
                ("format_version", int(artifact.formatVersion)), ("tool_version", .string(artifact.toolVersion)),
                // The folder's name only: the full path would tell clients about the server's file system.
                ("source_model", .string(URL(fileURLWithPath: artifact.sourceModel).lastPathComponent)),
                ("source_fingerprint", .string(artifact.sourceFingerprint)),
                ("compression", (try? JSON.parse(artifact.compression)) ?? .string(artifact.compression)),
            ] + [("calibration", artifact.calibration), ("quality", artifact.quality), ("recovery", artifact.recovery)].compactMap { key, text in
                text.map { (key, Self.withoutPaths((try? JSON.parse($0)) ?? .string($0))) }
            })))
        }
        if let totals = summary?.compressionTotals {
            pairs += [("dense_bytes", int(totals.denseBytes)), ("stored_bytes", int(totals.storedBytes)), ("compression_ratio", number(totals.ratio))]
        }
        pairs.append(("layers", .array(layers.map { l in
            var entry: [(String, JSON)] = [
                ("name", .string(l.name)), ("shape", .array([int(l.outputFeatures), int(l.inputFeatures)])), ("storage", .string(l.storage ?? "")),
            ]
            if let f = l.compression {
                entry += [
                    ("method", .string(f.method)),
                    ("parameters", .object(f.parameters.keys.sorted().map { key in
                        switch f.parameters[key]! {
                        case .int(let v): return (key, int(v))
                        case .double(let v): return (key, number(v))
                        case .string(let v): return (key, .string(v))
                        case .bool(let v): return (key, .bool(v))
                        }
                    })),
                    ("pinned", .bool(f.pinned)),
                    ("stored_parameters", int(f.storedParameters)), ("bytes", int(f.storedBytes)), ("dense_bytes", int(f.denseBytes)),
                    ("memory_bytes", int(l.byteCount)), ("density", number(f.density)), ("relative_error", number(f.relativeError)),
                    ("mask_check", f.maskCheck.map { .string($0) } ?? .null),
                    ("timing", f.timing.map { t in
                        .object([("compressed_us", number(t.compressedMicroseconds)), ("dense_us", number(t.denseMicroseconds)),
                                 ("runs", .string(t.runsDense ? "dense" : "compressed"))])
                    } ?? .null),
                ]
            } else {
                entry += [("stored_parameters", int(l.parameterCount)), ("bytes", int(l.byteCount)), ("density", number(l.density ?? 1)),
                          ("relative_error", number(l.relativeError ?? 0))]
            }
            return .object(entry)
        })))
        return .object(pairs)
    }

    /// The v2 metadata `parameters`: scalar compression facts (totals), the per-layer report as
    /// a JSON string (Open Inference Protocol parameters hold strings, numbers and booleans) and,
    /// when batching, `max_batch_size` and the token budget `max_batch_tokens`.
    public func metadataParametersJSON() -> JSON {
        func number(_ v: Double) -> JSON { .number(double: v, integer: nil) }
        let summary = ModelLoader.summary(of: model)
        var pairs: [(String, JSON)] = [
            ("compression", .string(compressionMethod)),
            ("compression_source", .string(summary?.artifact == nil ? "config" : "artifact")),
            ("density", number(density)),
        ]
        if let totals = summary?.compressionTotals {
            pairs += [("dense_bytes", .number(double: Double(totals.denseBytes), integer: Int64(totals.denseBytes))),
                      ("stored_bytes", .number(double: Double(totals.storedBytes), integer: Int64(totals.storedBytes))),
                      ("compression_ratio", number(totals.ratio))]
        }
        pairs.append(("compression_report", .string(String(decoding: JSONWriter.encode(compressionJSON()), as: UTF8.self))))
        if scheduler != nil {
            let b = config.batching
            pairs.append(("max_batch_size", .number(double: Double(b.maxBatchSize), integer: Int64(b.maxBatchSize))))
            if let t = b.maxBatchTokens { pairs.append(("max_batch_tokens", .number(double: Double(t), integer: Int64(t)))) }
        }
        return .object(pairs)
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
            ("parameters", metadataParametersJSON()),
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
                ("compression", .object([("string_value", .string(compressionMethod))])),
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
