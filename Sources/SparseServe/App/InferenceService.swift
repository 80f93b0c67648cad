import Foundation
import HTTPServer
import Logging
import SparseKernels
import SparseModels
import SparseJSON
import Tracing

/// The running application and its lifecycle: `start` (listen) → `loadEndpoints` (ready) →
/// `reload` (SIGHUP) → `drain`. It owns the model repository, the compute queue, the inference
/// pipeline and the listeners; requests go through `Router`.
public final class InferenceService: @unchecked Sendable {
    public static let version = "0.1.0"

    public let config: ServiceConfig
    public let logger: Logger
    public let compute: ComputeQueue
    public let metrics: ServerMetrics
    /// Starts a trace per request; nil when tracing is off.
    public let tracing: RequestTracing?
    public let repository: ModelRepository
    /// The inference path every protocol shares (admission, batching, encode, metrics).
    let pipeline: InferencePipeline
    private let state = NSLock()
    private var draining = false
    private var loaded = false
    private var servers: [HTTPServer] = []

    /// Sets up the compute queue and the repository; models load in `loadEndpoints()`.
    public init(config: ServiceConfig, logger: Logger, metrics: ServerMetrics = ServerMetrics(), tracer: (any Tracer)? = nil) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        tracing = tracer.map { RequestTracing(tracer: $0, tagsRequestLog: logger.logLevel <= .debug) }
        if let kernelThreads = config.server.kernelThreads { KernelPool.configureShared(threads: kernelThreads) }
        CompressionLimits.shared = config.server.security.admin.compressionLimits
        compute = ComputeQueue(threads: config.server.threads, maxQueueSize: config.server.maxQueueSize)
        repository = ModelRepository(configs: config.endpoints, compute: compute, metrics: metrics, logger: logger)
        pipeline = InferencePipeline(compute: compute, metrics: metrics, logger: logger)
        let queue = compute
        metrics.sample(MetricCatalog.queueDepth) { Double(queue.queuedCount) }
    }

    /// Loads and warms up every endpoint; readiness turns true when all are in. Throws the first
    /// failure, naming the endpoint.
    public func loadEndpoints() throws {
        let failed = try repository.loadAll(stopOnError: config.server.exitOnModelLoadError)
        if !failed.isEmpty && failed.count == config.endpoints.filter({ !$0.optional }).count {
            throw ConfigError(field: "endpoints", reason: "no endpoint could be loaded (\(failed.joined(separator: ", ")))")
        }
        if !failed.isEmpty {
            logger.warning("serving without the endpoints that failed to load", metadata: ["failed": "\(failed.joined(separator: ","))"])
        }
        state.lock()
        loaded = true
        state.unlock()
    }

    /// Applies a re-read config file (SIGHUP): endpoints that are new or whose settings changed are
    /// (re)loaded with an atomic swap, endpoints no longer listed are unloaded. Server settings
    /// (ports, threads, limits) need a restart; a change there is logged and otherwise ignored.
    public func reload(_ newConfig: ServiceConfig) {
        if newConfig.server != config.server {
            logger.warning("config reload: server settings changed; they take effect only after a restart")
        }
        let wanted = Set(newConfig.endpoints.map(\.name))
        for name in repository.names where !wanted.contains(name) {
            try? repository.unload(name)
        }
        for e in newConfig.endpoints {
            let current = repository.entry(e.name)
            guard current?.config != e || current?.endpoint == nil else { continue }
            let logger = self.logger
            repository.load(e.name, config: e, fromConfigFile: true) { error in
                if let error { logger.error("config reload: endpoint not reloaded", metadata: ["endpoint": "\(e.name)", "error": "\(error)"]) }
            }
        }
    }

    /// The endpoints currently loaded, in config order.
    public var endpoints: [Endpoint] { repository.loadedEndpoints }

    /// True once listening with every endpoint loaded, and until draining begins.
    public var isReady: Bool {
        state.lock(); defer { state.unlock() }
        return !servers.isEmpty && loaded && !draining
    }

    /// Opens the listening sockets (`Listeners`) and returns their URLs.
    @discardableResult
    public func start() throws -> [String] {
        let started = try Listeners.start(config.server, router: Router(service: self), gate: RequestGate(service: self), logger: logger)
        let all = started.map(\.server)
        metrics.sample(MetricCatalog.openConnections) { Double(all.reduce(0) { $0 + $1.activeConnectionCount }) }
        state.lock()
        servers = all
        state.unlock()
        return started.map(\.url)
    }

    /// Re-reads the TLS certificate and key of the HTTPS listener (SIGHUP); on failure the
    /// current ones keep serving and the error is logged.
    public func reloadTLS() {
        state.lock()
        let servers = self.servers
        state.unlock()
        for server in servers {
            do { try server.reloadTLS() } catch {
                logger.error("TLS reload failed; keeping the current certificate", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Graceful stop: readiness turns false, the listener closes, in-flight requests finish within
    /// the grace period, then the compute threads end.
    public func drain() {
        state.lock()
        draining = true
        let servers = self.servers
        state.unlock()
        // Every listener drains at the same time, so the whole stop fits in one grace period.
        let grace = config.server.gracePeriodSeconds
        DispatchQueue.concurrentPerform(iterations: servers.count) { servers[$0].stop(gracePeriod: grace) }
        compute.shutdown()
    }
}
