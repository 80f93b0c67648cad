import Dispatch
import Foundation
import Logging
import SparseCompression
import SparseModels
import SparseJSON

/// Where an endpoint stands in the model repository (the names the v2 repository extension uses).
public enum ModelState: String, Sendable {
    case loading = "LOADING"
    case ready = "READY"
    case unavailable = "UNAVAILABLE"
}

/// The served endpoints by name, with atomic load / reload / unload.
///
/// A (re)load builds the new `Endpoint` completely — model file, warm-up inference, batcher — on the
/// loader queue, then swaps it in under the lock. Requests already holding the old endpoint finish
/// on it; new requests get the new one. A failed load leaves the previous endpoint serving.
public final class ModelRepository: @unchecked Sendable {
    /// One endpoint slot: its config and, when loaded, the running endpoint.
    struct Entry {
        var config: EndpointConfig
        var endpoint: Endpoint?
        var state: ModelState
        var reason: String
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    /// Endpoints of the config file; the others came through the load API and leave no trace
    /// when they fail to load or are unloaded (beyond `recentFailures`).
    private var configured: Set<String> = []
    /// The last failed loads of names that are not served, newest last (index: UNAVAILABLE).
    private var recentFailures: [(name: String, reason: String)] = []
    static let recentFailureLimit = 32
    /// The `model` label of load failures of names that were never served.
    static let unlistedModelLabel = "(unlisted)"
    private let loader = DispatchQueue(label: "sparse-serve.model-loader")
    private let compute: ComputeQueue
    private let metrics: ServerMetrics
    private let logger: Logger

    init(configs: [EndpointConfig], compute: ComputeQueue, metrics: ServerMetrics, logger: Logger) {
        self.compute = compute
        self.metrics = metrics
        self.logger = logger
        for c in configs {
            entries[c.name] = Entry(config: c, endpoint: nil, state: .loading, reason: "not loaded yet")
            order.append(c.name)
            configured.insert(c.name)
        }
    }

    /// Loads every configured endpoint in order, synchronously. With `stopOnError` the first
    /// failure is thrown, naming the endpoint; otherwise failed endpoints stay UNAVAILABLE (with
    /// the reason in the index, logs and metrics) and the names of those that failed are returned.
    @discardableResult
    func loadAll(stopOnError: Bool = true) throws -> [String] {
        var failed: [String] = []
        for name in names {
            guard let config = entry(name)?.config else { continue }
            var isDirectory: ObjCBool = false
            if config.optional && !(FileManager.default.fileExists(atPath: config.resolved.modelPath, isDirectory: &isDirectory) && isDirectory.boolValue) {
                lock.lock()
                entries[name]?.state = .unavailable
                entries[name]?.reason = ModelRepository.skippedReason
                lock.unlock()
                logger.notice("optional endpoint skipped: its model folder is absent", metadata: ["endpoint": "\(name)", "path": "\(config.modelPath)"])
                continue
            }
            do {
                try loader.sync { try install(config) }
            } catch {
                if stopOnError { throw error }
                failed.append(name)
            }
        }
        return failed
    }

    /// Endpoint names in config order (including unloaded ones).
    var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return order
    }

    func entry(_ name: String) -> Entry? {
        lock.lock(); defer { lock.unlock() }
        return entries[name]
    }

    /// The loaded endpoints, in config order.
    var loadedEndpoints: [Endpoint] {
        lock.lock(); defer { lock.unlock() }
        return order.compactMap { entries[$0]?.endpoint }
    }

    /// True when every endpoint that should be serving has been loaded.
    var allLoaded: Bool {
        lock.lock(); defer { lock.unlock() }
        return entries.values.allSatisfy { $0.endpoint != nil || $0.reason == ModelRepository.unloadedReason || $0.reason == ModelRepository.skippedReason }
    }

    static let unloadedReason = "unloaded by request"
    static let skippedReason = "optional endpoint: model folder absent"

    /// Loads (or reloads, with `config` replacing the current one) an endpoint on the loader queue;
    /// `done` gets nil on success or the error. Unknown names need a `config`. `fromConfigFile`
    /// (a SIGHUP reload) keeps the endpoint's slot like the start-up config's.
    func load(_ name: String, config: EndpointConfig?, fromConfigFile: Bool = false, done: @escaping @Sendable (Error?) -> Void) {
        loader.async {
            do {
                guard let config = config ?? self.entry(name)?.config else {
                    throw ProtocolError(404, "unknown model '\(name)'; to add a model, pass its endpoint config in parameters.config")
                }
                self.lock.lock()
                if fromConfigFile { self.configured.insert(name) }
                if self.entries[name] == nil {
                    self.entries[name] = Entry(config: config, endpoint: nil, state: .loading, reason: "loading")
                    self.order.append(name)
                } else {
                    self.entries[name]?.state = .loading
                }
                self.lock.unlock()
                try self.install(config)
                done(nil)
            } catch {
                done(error)
            }
        }
    }

    /// Takes an endpoint out of service; requests already running finish on it, then its model is
    /// freed. Its metric series go (a config-file endpoint keeps `model_loaded 0` and its slot;
    /// one added through the API is forgotten).
    func unload(_ name: String) throws {
        lock.lock()
        guard entries[name] != nil else {
            lock.unlock()
            throw ProtocolError(404, "unknown model '\(name)'")
        }
        let keepSlot = configured.contains(name)
        if keepSlot {
            entries[name]?.endpoint = nil
            entries[name]?.state = .unavailable
            entries[name]?.reason = ModelRepository.unloadedReason
        } else {
            entries[name] = nil
            order.removeAll { $0 == name }
        }
        lock.unlock()
        metrics.removeModel(name, keepLoadedAtZero: keepSlot)
        logger.info("unloaded endpoint", metadata: ["endpoint": "\(name)"])
    }

    /// A failed load of a name with nothing to serve: only `recentFailures` remembers it.
    /// Call with the lock held.
    private func forgetFailedLoad(_ name: String, reason: String) {
        entries[name] = nil
        order.removeAll { $0 == name }
        recentFailures.removeAll { $0.name == name }
        recentFailures.append((name, reason))
        if recentFailures.count > Self.recentFailureLimit { recentFailures.removeFirst(recentFailures.count - Self.recentFailureLimit) }
    }

    /// Builds the endpoint for `config` and swaps it in; on failure the old endpoint keeps serving.
    /// Runs on the loader queue.
    private func install(_ config: EndpointConfig) throws {
        let started = Date()
        do {
            let endpoint = try build(config)
            let previous: Endpoint?
            lock.lock()
            previous = entries[config.name]?.endpoint
            entries[config.name] = Entry(config: config, endpoint: endpoint, state: .ready, reason: "")
            lock.unlock()
            publishMetrics(endpoint)
            logger.info(previous == nil ? "loaded endpoint" : "reloaded endpoint", metadata: [
                "endpoint": "\(config.name)", "architecture": "\(endpoint.model.architecture)",
                "compression": "\(endpoint.compressionMethod)", "path": "\(endpoint.config.modelPath)",
                "ms": "\(Int(Date().timeIntervalSince(started) * 1000))",
            ])
        } catch {
            let reason = "cannot load model from '\(config.resolved.modelPath)': \(error)"
            lock.lock()
            let hasOld = entries[config.name]?.endpoint != nil
            let listed = hasOld || configured.contains(config.name)
            if listed {
                entries[config.name]?.state = hasOld ? .ready : .unavailable
                entries[config.name]?.reason = hasOld ? "last load failed, still serving the previous model: \(reason)" : reason
            } else {
                forgetFailedLoad(config.name, reason: reason)
            }
            lock.unlock()
            metrics.countLoadFailure(listed ? config.name : ModelRepository.unlistedModelLabel)
            logger.error("endpoint failed to load", metadata: ["endpoint": "\(config.name)", "error": "\(reason)"])
            throw ConfigError(field: "endpoint '\(config.name)'", reason: reason)
        }
    }

    /// Loads the model, runs one warm-up inference and attaches a batcher when configured.
    private func build(_ configured: EndpointConfig) throws -> Endpoint {
        let config = configured.resolved
        logSource(configured, loading: config)
        if config.compression.isSpecified && ModelLoader.isArtifact(directory: config.modelPath) {
            throw InvalidInputError("the model is a compressed artifact (made by sparse-serve compress) and keeps the compression it was made with; remove the endpoint's 'compression' block")
        }
        var compressor: any LayerCompressor = WeightCompressor()
        if let options = config.compression.calibration {      // data-aware: calibrate layer by layer first
            logger.info("calibrating", metadata: ["endpoint": "\(config.name)", "options": "\(options)"])
            compressor = try CalibratedCompressor.run(modelDirectory: config.modelPath, plan: config.compression.plan, options: options) {
                self.logger.info("\($0)", metadata: ["endpoint": "\(config.name)"])
            }
        }
        let model = try ModelLoader.load(directory: config.modelPath, compression: config.compression.plan, compressor: compressor)
        if config.compression.plan != .dense && ModelLoader.summary(of: model)?.layers.contains(where: { $0.storage != nil }) != true {
            throw InvalidInputError("compression '\(config.compression.method)' needs a model with linear layers; '\(model.architecture)' has none")
        }
        do {
            _ = try model.infer(ModelRepository.warmUpInputs(model.inputs))
        } catch {
            throw InvalidInputError("warm-up inference failed: \(error)")
        }
        let endpoint = Endpoint(config: config, model: model)
        if config.batching.maxBatchSize > 1 && BatchScheduler.canBatch(model) {
            let scheduler = BatchScheduler(model: model, config: config.batching, compute: compute, lane: config.name)
            let metrics = self.metrics, name = config.name
            scheduler.onBatch = { rows in metrics.recordBatch(rows, model: name) }
            endpoint.scheduler = scheduler
        }
        return endpoint
    }

    /// Says which folder an endpoint with an `artifact` loads: the artifact, or (while it is absent)
    /// the model compressed at load.
    private func logSource(_ configured: EndpointConfig, loading config: EndpointConfig) {
        guard let artifact = configured.artifactPath else { return }
        if config.modelPath == artifact {
            logger.info("serving the compressed artifact", metadata: ["endpoint": "\(configured.name)", "artifact": "\(artifact)"])
        } else {
            logger.notice("artifact absent: compressing the model at load as the endpoint's compression block says (build the artifact with sparse-serve compress to serve it)",
                          metadata: ["endpoint": "\(configured.name)", "artifact": "\(artifact)", "model": "\(configured.modelPath)"])
        }
    }

    private func publishMetrics(_ e: Endpoint) {
        let summary = ModelLoader.summary(of: e.model)
        var queued: (@Sendable () -> Int)?
        if let scheduler = e.scheduler { queued = { scheduler.queuedCount } }
        metrics.publishModel(e.name, ModelFacts(version: e.version, architecture: e.model.architecture, compression: e.compressionMethod,
                                                parameters: Double(summary?.parameterCount ?? 0), bytes: Double(summary?.byteCount ?? 0),
                                                density: e.density, queuedCount: queued))
    }

    /// One batch-1 input per declared input: zeros for numbers, a short text for BYTES.
    static func warmUpInputs(_ specs: [TensorSpec]) -> [String: Tensor] {
        var inputs: [String: Tensor] = [:]
        for spec in specs {
            let shape = spec.shape.map { $0 < 0 ? 1 : $0 }
            let n = shape.reduce(1, *)
            let storage: TensorStorage
            switch spec.datatype {
            case .bool: storage = .bool(Array(repeating: false, count: n))
            case .uint8: storage = .uint8(Array(repeating: 0, count: n))
            case .int32: storage = .int32(Array(repeating: 0, count: n))
            case .int64: storage = .int64(Array(repeating: 0, count: n))
            case .fp32: storage = .fp32(Array(repeating: 0, count: n))
            case .fp64: storage = .fp64(Array(repeating: 0, count: n))
            case .bytes: storage = .bytes(Array(repeating: Array("warm-up".utf8), count: n))
            }
            inputs[spec.name] = Tensor(shape: shape, storage: storage)
        }
        return inputs
    }

    /// The repository extension's index: every endpoint with its version, state and reason.
    func indexJSON() -> JSON {
        lock.lock(); defer { lock.unlock() }
        return .array(order.compactMap { name in
            guard let e = entries[name] else { return nil }
            return .object([
                ("name", .string(name)), ("version", .string(e.config.version)),
                ("state", .string(e.state.rawValue)), ("reason", .string(e.reason)),
            ])
        } + recentFailures.filter { entries[$0.name] == nil }.map { failure in
            .object([("name", .string(failure.name)), ("state", .string(ModelState.unavailable.rawValue)),
                     ("reason", .string("load failed: \(failure.reason)"))])
        })
    }

    /// The loaded endpoint `name` (at `version`, when given): 404 when unknown or deliberately
    /// out of service, 503 when its load failed or is still running.
    func endpoint(named name: String, version: String?) throws -> Endpoint {
        guard let entry = entry(name) else {
            throw ProtocolError(404, "unknown model '\(name)'")
        }
        if let version, version != entry.config.version {
            throw ProtocolError(404, "model '\(name)' has no version '\(version)' (available: \(entry.config.version))")
        }
        guard let endpoint = entry.endpoint else {
            if entry.reason == ModelRepository.unloadedReason || entry.reason == ModelRepository.skippedReason {
                // Deliberately out of service: not a server fault, and retrying will not help.
                throw ProtocolError(404, "model '\(name)' is not loaded (\(entry.reason)); POST /v2/repository/models/\(name)/load to serve it")
            }
            throw ProtocolError(503, "model '\(name)' is not available (\(entry.state.rawValue): \(entry.reason))")
        }
        return endpoint
    }
}
