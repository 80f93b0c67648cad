import Foundation
import HTTPServer
import Logging
import SparseKernels
import SparseModels
import SparseJSON

/// The running application: the model repository, the compute queue and the HTTP server, with a
/// lifecycle of `start` (listen) → `loadEndpoints` (ready) → `drain`.
public final class InferenceService: @unchecked Sendable {
    public static let version = "0.1.0"

    public let config: ServiceConfig
    public let logger: Logger
    public let compute: ComputeQueue
    public let metrics = ServerMetrics()
    public let repository: ModelRepository
    private let state = NSLock()
    private var draining = false
    private var loaded = false
    private var servers: [HTTPServer] = []

    /// Sets up the compute queue and the repository; models load in `loadEndpoints()`.
    public init(config: ServiceConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        if let kernelThreads = config.server.kernelThreads { KernelPool.configureShared(threads: kernelThreads) }
        compute = ComputeQueue(threads: config.server.threads, maxQueueSize: config.server.maxQueueSize)
        repository = ModelRepository(configs: config.endpoints, compute: compute, metrics: metrics, logger: logger)
        let queue = compute
        metrics.queueDepth.collect { Double(queue.queuedCount) }
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
            repository.load(e.name, config: e) { error in
                if let error { logger.error("config reload: endpoint not reloaded", metadata: ["endpoint": "\(e.name)", "error": "\(error)"]) }
            }
        }
    }

    /// The endpoint config for a repository `load` request: `parameters.config` (an endpoint object,
    /// or that object as a JSON string, as Triton clients send it) replaces the current config; without
    /// it the current config is reloaded. Relative model paths resolve against the config file's folder.
    func endpointConfig(forLoad name: String, body: [UInt8]) throws -> EndpointConfig? {
        guard !body.isEmpty else { return nil }
        let json = try JSON.parse(body)
        guard json.objectValue != nil else { throw ProtocolError(400, "load request body must be a JSON object") }
        guard var given = json["parameters"]?["config"] else { return nil }
        if let text = given.stringValue { given = try JSON.parse(text) }
        guard given.objectValue != nil else {
            throw ProtocolError(400, "parameters.config must be an endpoint config object (or that object as a JSON string)")
        }
        var merged = given.objectValue ?? []
        if !merged.contains(where: { $0.0 == "name" }) { merged.append(("name", .string(name))) }
        if !merged.contains(where: { $0.0 == "model" }), let current = repository.entry(name)?.config.modelPath {
            merged.append(("model", .string(current)))
        }
        let config = try ServiceConfig.parseEndpoint(.object(merged), path: "parameters.config", baseDirectory: self.config.baseDirectory)
        guard config.name == name else {
            throw ProtocolError(400, "parameters.config.name '\(config.name)' does not match the model in the URL '\(name)'")
        }
        return config
    }

    /// The endpoints currently loaded, in config order.
    public var endpoints: [Endpoint] { repository.loadedEndpoints }

    /// True once listening with every endpoint loaded, and until draining begins.
    public var isReady: Bool {
        state.lock(); defer { state.unlock() }
        return !servers.isEmpty && loaded && !draining
    }

    /// Checks `Authorization: Bearer <key>` for a request to `model` (nil = not a model route):
    /// the server's keys always count, the endpoint's keys count for its own routes. With no keys
    /// configured for the request, it is allowed. Every key is compared in constant time.
    func isAuthorized(_ header: String?, model: String?) -> Bool {
        let endpointKeys = model.flatMap { repository.entry($0)?.config.apiKeys } ?? []
        let keys = config.server.apiKeys + endpointKeys
        guard !keys.isEmpty else { return true }
        guard let header, header.lowercased().hasPrefix("bearer ") else { return false }
        let given = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var match = false
        for key in keys {
            let k = Array(key.utf8)
            var diff = UInt8(k.count == given.count ? 0 : 1)
            for i in 0..<k.count { diff |= k[i] ^ (i < given.count ? given[i] : 0) }
            if diff == 0 { match = true }
        }
        return match
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or nil when CORS is off or
    /// the origin is not allowed.
    func corsOrigin(for origin: String?) -> String? {
        guard let cors = config.server.cors, let origin else { return nil }
        if cors.allowOrigins.contains("*") { return "*" }
        return cors.allowOrigins.contains(origin) ? origin : nil
    }

    public func endpoint(named name: String, version: String?) throws -> Endpoint {
        guard let entry = repository.entry(name) else {
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

    /// Protocol extensions this server really implements (advertised by `GET /v2`).
    static let extensions = ["binary_tensor_data", "statistics", "model_repository", "model_configuration"]

    func serverMetadata() -> JSON {
        .object([
            ("name", .string("sparse-serve")),
            ("version", .string(InferenceService.version)),
            ("extensions", .array(InferenceService.extensions.map { .string($0) })),
        ])
    }

    /// How one protocol (v2, OpenAI embeddings) turns a body into a request and results into a
    /// response; `error` builds its error body.
    struct Codec: Sendable {
        var decode: @Sendable (any InferenceModel) throws -> InferenceRequest
        var encode: @Sendable (Endpoint, InferenceRequest, [String: Tensor]) throws -> HTTPResponse
        var error: @Sendable (Int, String) -> HTTPResponse = { .error(status: $0, $1) }
    }

    /// Runs one v2 inference request: decode on a compute thread, then either run it alone or hand
    /// it to the endpoint's batcher; the response is encoded on the compute thread that ran it.
    func infer(endpoint: Endpoint, request http: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let headerLength: Int?
        if let value = http.headers["inference-header-content-length"] {
            guard let n = Int(value), n >= 0, n <= http.body.count else {
                return respond(.error(status: 400, "Inference-Header-Content-Length '\(value)' must be an integer between 0 and the body length \(http.body.count)"))
            }
            headerLength = n
        } else {
            headerLength = nil
        }
        let body = http.body
        let config = endpoint.config
        let codec = Codec(decode: { model in
            var request = try InferenceCodec.decodeRequest(body, headerLength: headerLength, inputs: model.inputs, outputs: model.outputs)
            // Text encoders get their texts tokenized here, where the endpoint's limits apply.
            if let encoder = model as? any TextEncodingModel, let spec = model.inputs.first, model.inputs.count == 1,
               spec.datatype == .bytes, let texts = request.inputs[spec.name], case .bytes(let items) = texts.storage {
                let (ids, _) = try TextInputs.tokenIDs(items.map { .text($0) }, model: encoder, endpoint: config,
                                                       truncate: request.truncate, parameter: spec.name)
                request.inputs = [tokenIDsInputName: ids]
            }
            return request
        }, encode: InferenceService.encodeV2)
        run(endpoint: endpoint, codec: codec, clientGone: http.isClientGone, respond: respond)
    }

    /// The shared path of every protocol: admission, decode, batching or direct run, encode, metrics.
    func run(endpoint: Endpoint, codec: Codec, clientGone: @escaping @Sendable () -> Bool,
             respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let arrived = DispatchTime.now().uptimeNanoseconds
        let metrics = self.metrics
        let logger = self.logger
        let accepted = compute.submit(lane: endpoint.name) {
            let model = endpoint.model
            let request: InferenceRequest
            do {
                request = try codec.decode(model)
            } catch {
                return InferenceService.answer(endpoint, nil, .failure(error), arrived: arrived, started: arrived, codec: codec,
                                               metrics: metrics, logger: logger, respond: respond)
            }
            let rows = request.inputs.values.first?.shape.first ?? 1
            guard let scheduler = endpoint.scheduler else {
                let started = DispatchTime.now().uptimeNanoseconds
                let result = Result { try model.infer(request.inputs) }
                return InferenceService.answer(endpoint, request, result, arrived: arrived, started: started, codec: codec,
                                               metrics: metrics, logger: logger, respond: respond)
            }
            let signature = request.inputs.mapValues { Array($0.shape.dropFirst()) }
            let deadline = request.timeoutMicroseconds.map { arrived + UInt64($0) * 1000 }
            let item = PendingInference(request: request, rows: rows, signature: signature, arrived: arrived, deadline: deadline,
                                        isCancelled: clientGone) { result in
                let started = DispatchTime.now().uptimeNanoseconds
                InferenceService.answer(endpoint, request, result, arrived: arrived, started: started, codec: codec,
                                        metrics: metrics, logger: logger, respond: respond)
            }
            if !scheduler.enqueue(item) {
                metrics.inferenceRequests.add(1, endpoint.name, "failure")
                metrics.inferenceFailures.add(1, endpoint.name, "rejected")
                var response = codec.error(scheduler.config.rejectStatus,
                                           "model '\(endpoint.name)' is overloaded: \(scheduler.config.maxQueueSize) requests are already queued")
                response.headers.set(name: "Retry-After", value: "1")
                respond(response)
            }
        }
        if !accepted {
            metrics.inferenceRequests.add(1, endpoint.name, "failure")
            metrics.inferenceFailures.add(1, endpoint.name, "rejected")
            var response = codec.error(503, "server is overloaded: \(compute.maxQueueSize) requests are already queued")
            response.headers.set(name: "Retry-After", value: "1")
            respond(response)
        }
    }

    /// The v2 response: requested outputs as JSON or binary tensors.
    @Sendable static func encodeV2(_ endpoint: Endpoint, _ request: InferenceRequest, _ results: [String: Tensor]) throws -> HTTPResponse {
        let names = request.requestedOutputs ?? endpoint.model.outputs.map(\.name)
        var outputs: [(String, Tensor)] = []
        for name in names {
            guard let t = results[name] else { throw ProtocolError(500, "model did not produce output '\(name)'") }
            outputs.append((name, t))
        }
        let encoded = InferenceCodec.encodeResponse(modelName: endpoint.name, modelVersion: endpoint.version,
                                                    id: request.id, outputs: outputs, binary: request.wantsBinary)
        var response: HTTPResponse
        if let jsonLength = encoded.jsonLength {
            response = HTTPResponse(status: 200, body: encoded.body)
            response.headers.set(name: "Content-Type", value: "application/octet-stream")
            response.headers.set(name: "Inference-Header-Content-Length", value: String(jsonLength))
        } else {
            response = .json(status: 200, encoded.body)
        }
        return response
    }

    /// Encodes a finished inference (or its error), records metrics and responds.
    static func answer(_ endpoint: Endpoint, _ request: InferenceRequest?, _ result: Result<[String: Tensor], Error>,
                       arrived: UInt64, started: UInt64, codec: Codec, metrics: ServerMetrics, logger: Logger,
                       respond: @Sendable (HTTPResponse) -> Void) {
        func finish(_ outcome: String, reason: String? = nil) {
            let now = DispatchTime.now().uptimeNanoseconds
            metrics.inferenceQueueSeconds.observe(Double(started - arrived) / 1e9, endpoint.name)
            metrics.inferenceComputeSeconds.observe(Double(now - started) / 1e9, endpoint.name)
            metrics.inferenceTotalSeconds.observe(Double(now - arrived) / 1e9, endpoint.name)
            metrics.inferenceRequests.add(1, endpoint.name, outcome)
            if let reason { metrics.inferenceFailures.add(1, endpoint.name, reason) }
        }
        do {
            let results: [String: Tensor]
            do {
                results = try result.get()
            } catch let error as InvalidInputError {
                throw ProtocolError(400, error.description)
            }
            guard let request else { throw ProtocolError(500, "internal error: result without a request") }
            var response = try codec.encode(endpoint, request, results)
            endpoint.record(success: true)
            metrics.inferenceRows.add(Double(request.inputs.values.first?.shape.first ?? 0), endpoint.name)
            finish("success")
            response.compressionMinimumBytes = endpoint.config.gzipMinimumBytes
            respond(response)
        } catch let error as ProtocolError {
            endpoint.record(success: false)
            finish("failure", reason: error.reason)
            respond(codec.error(error.status, error.message))
        } catch let error as InvalidInputError {
            endpoint.record(success: false)
            finish("failure", reason: "invalid_input")
            respond(codec.error(400, error.description))
        } catch {
            endpoint.record(success: false)
            finish("failure", reason: "internal")
            logger.error("inference failed", metadata: ["endpoint": "\(endpoint.name)", "error": "\(error)"])
            respond(codec.error(500, "inference failed: \(error)"))
        }
    }

    /// Opens the listening sockets: plaintext on `server.port`, and HTTPS on `server.tls.port`
    /// beside it (or HTTPS alone on `server.port` when `tls.port` is absent). Returns their URLs.
    @discardableResult
    public func start() throws -> [String] {
        var http = HTTPServerConfiguration()
        let s = config.server
        http.host = s.host
        http.port = s.port
        http.ioThreads = s.ioThreads
        http.maxConnections = s.maxConnections
        http.maxBodyBytes = s.maxBodyBytes
        http.headerReadTimeout = s.headerReadTimeoutSeconds
        http.bodyReadTimeout = s.bodyReadTimeoutSeconds
        http.idleTimeout = s.idleTimeoutSeconds
        http.compressionMinimumBytes = s.gzipEnabled ? s.gzipMinimumBytes : Int.max
        let defaultLimit = s.maxBodyBytes
        let repository = self.repository
        let bodyLimit: @Sendable (String, String) -> Int = { _, path in
            if case .infer(let model, _)? = try? Router.route(path: path), let limit = repository.entry(model)?.config.maxBodyBytes {
                return limit
            }
            return defaultLimit
        }
        var listeners: [(HTTPServerConfiguration, String)] = []
        if let tls = s.tls {
            var secure = http
            secure.tls = TLSConfiguration(certificatePath: tls.certificate, privateKeyPath: tls.privateKey, clientCAPath: tls.clientCA)
            if let port = tls.port {
                secure.port = port
                listeners = [(http, "http"), (secure, "https")]
            } else {
                listeners = [(secure, "https")]
            }
        } else {
            listeners = [(http, "http")]
        }
        let router = Router(service: self)
        var started: [HTTPServer] = []
        var urls: [String] = []
        for (configuration, scheme) in listeners {
            let server = HTTPServer(configuration: configuration, logger: logger, bodyLimit: bodyLimit) { request, respond in
                router.handle(request, respond)
            }
            do {
                try server.start()
            } catch {
                for other in started { other.stop(gracePeriod: 0) }
                throw error
            }
            started.append(server)
            let host = server.boundAddress.contains(":") ? "[\(server.boundAddress)]" : server.boundAddress
            urls.append("\(scheme)://\(host):\(server.boundPort)")
        }
        let all = started
        metrics.openConnections.collect { Double(all.reduce(0) { $0 + $1.activeConnectionCount }) }
        state.lock()
        servers = started
        state.unlock()
        return urls
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

extension InferenceService {
    /// The statistics extension's `model_stats` (counts and cumulative nanoseconds), from the metrics.
    func statisticsJSON(_ list: [Endpoint]) -> JSON {
        func n(_ v: Double) -> JSON { .number(double: v.rounded(), integer: Int64(v.rounded())) }
        func stat(_ count: Double, _ seconds: Double) -> JSON { .object([("count", n(count)), ("ns", n(seconds * 1e9))]) }
        return .object([("model_stats", .array(list.map { e in
            let success = metrics.inferenceRequests.value(e.name, "success")
            let failure = metrics.inferenceRequests.value(e.name, "failure")
            let queue = metrics.inferenceQueueSeconds.histogramTotals(e.name)
            let compute = metrics.inferenceComputeSeconds.histogramTotals(e.name)
            let total = metrics.inferenceTotalSeconds.histogramTotals(e.name)
            return .object([
                ("name", .string(e.name)), ("version", .string(e.version)),
                ("inference_count", n(metrics.inferenceRows.value(e.name))),
                ("execution_count", n(success)),
                ("inference_stats", .object([
                    ("success", stat(success, total.sum)),
                    ("fail", stat(failure, 0)),
                    ("queue", stat(Double(queue.count), queue.sum)),
                    ("compute_infer", stat(Double(compute.count), compute.sum)),
                ])),
            ])
        }))])
    }
}
