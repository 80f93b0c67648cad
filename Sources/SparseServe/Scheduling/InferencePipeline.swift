import Foundation
import HTTPServer
import Logging
import SparseModels

/// How one protocol (v2, OpenAI embeddings) turns a body into an inference request and results
/// into a response; `error` builds its error body.
struct ProtocolCodec: Sendable {
    var decode: @Sendable (any InferenceModel) throws -> InferenceRequest
    var encode: @Sendable (Endpoint, InferenceRequest, [String: Tensor]) throws -> HTTPResponse
    var error: @Sendable (Int, String) -> HTTPResponse = { .error(status: $0, $1) }
}

/// A forward pass a request runs instead of the model's `infer` (e.g. TEI's per-token states);
/// batched only with requests of the same `name`.
public struct ForwardVariant: Sendable {
    public let name: String
    public let run: @Sendable ([String: Tensor]) throws -> [String: Tensor]
}

/// The shared path of every protocol's inference: admission to the compute queue, decode on a
/// compute thread, then the endpoint's batcher or a direct run, encode, metrics.
struct InferencePipeline: Sendable {
    let compute: ComputeQueue
    let metrics: ServerMetrics
    let logger: Logger

    func run(endpoint: Endpoint, codec: ProtocolCodec, clientGone: @escaping @Sendable () -> Bool, respond: @escaping Responder) {
        let arrived = DispatchTime.now().uptimeNanoseconds
        let pipeline = self, trace = RequestTrace.current
        let accepted = compute.submit(lane: endpoint.name) {
            RequestTrace.bind(trace) {
                pipeline.decodeAndRun(endpoint: endpoint, codec: codec, arrived: arrived, trace: trace, clientGone: clientGone, respond: respond)
            }
        }
        if !accepted {
            reject(endpoint, codec: codec, status: 503, "server is overloaded: \(compute.maxQueueSize) requests are already queued",
                   respond: respond)
        }
    }

    /// On a compute thread: decodes the body, then runs the model directly or through the batcher.
    private func decodeAndRun(endpoint: Endpoint, codec: ProtocolCodec, arrived: UInt64, trace: RequestTrace?,
                              clientGone: @escaping @Sendable () -> Bool, respond: @escaping Responder) {
        let model = endpoint.model
        let begun = DispatchTime.now().uptimeNanoseconds
        trace?.record("queue wait", from: arrived, to: begun) { $0.set("sparseserve.queue", "compute") }
        let request: InferenceRequest
        do {
            request = try codec.decode(model)
            trace?.record("decode", from: begun, to: DispatchTime.now().uptimeNanoseconds)
        } catch {
            trace?.record("decode", from: begun, to: DispatchTime.now().uptimeNanoseconds, error: error)
            return answer(endpoint, nil, .failure(error), arrived: arrived, started: arrived, codec: codec, trace: trace, respond: respond)
        }
        guard let scheduler = endpoint.scheduler else {
            let started = DispatchTime.now().uptimeNanoseconds
            let result = Result { try (request.forward?.run ?? model.infer)(request.inputs) }
            let rows = request.inputs.values.first?.shape.first ?? 1
            trace?.forward(BatchForward(started: started, finished: DispatchTime.now().uptimeNanoseconds, requests: 1, rows: rows,
                                        tokens: request.tokenCount ?? rows), error: result.failure)
            return answer(endpoint, request, result, arrived: arrived, started: started, codec: codec, trace: trace, respond: respond)
        }
        enqueue(request, on: scheduler, endpoint: endpoint, arrived: arrived, codec: codec, trace: trace, clientGone: clientGone,
                respond: respond)
    }

    /// Hands a decoded request to the endpoint's batcher, or answers that its queue is full.
    private func enqueue(_ request: InferenceRequest, on scheduler: BatchScheduler, endpoint: Endpoint, arrived: UInt64,
                         codec: ProtocolCodec, trace: RequestTrace?, clientGone: @escaping @Sendable () -> Bool,
                         respond: @escaping Responder) {
        let rows = request.inputs.values.first?.shape.first ?? 1
        let signature = request.inputs.mapValues { Array($0.shape.dropFirst()) }
        let deadline = request.timeoutMicroseconds.map { arrived + UInt64($0) * 1000 }
        let pipeline = self
        let enqueued = DispatchTime.now().uptimeNanoseconds
        var item = PendingInference(request: request, rows: rows, signature: signature, tokens: request.tokenCount ?? 0, arrived: arrived,
                                    deadline: deadline, isCancelled: clientGone) { result, started in
            pipeline.answer(endpoint, request, result, arrived: arrived, started: started, codec: codec, trace: trace, respond: respond)
        }
        if let trace { (item.trace, item.enqueued) = (trace, enqueued) }
        if !scheduler.enqueue(item) {
            reject(endpoint, codec: codec, status: scheduler.config.rejectStatus,
                   "model '\(endpoint.name)' is overloaded: \(scheduler.config.maxQueueSize) requests are already queued", respond: respond)
        }
    }

    /// A full queue: counted as rejected, answered with `Retry-After: 1`.
    private func reject(_ endpoint: Endpoint, codec: ProtocolCodec, status: Int, _ message: String, respond: Responder) {
        metrics.countRejected(endpoint.name, .rejected)
        var response = codec.error(status, message)
        response.headers.set(name: "Retry-After", value: "1")
        respond(response)
    }

    /// Encodes a finished inference (or its error), records metrics and responds.
    func answer(_ endpoint: Endpoint, _ request: InferenceRequest?, _ result: Result<[String: Tensor], any Error>,
                arrived: UInt64, started: UInt64, codec: ProtocolCodec, trace: RequestTrace?, respond: Responder) {
        var response: HTTPResponse, failure: FailureReason?, rows = 0
        do {
            guard let request else { throw result.failure ?? ProtocolError(500, "internal error: result without a request") }
            let outputs = try result.get()
            let encoding = DispatchTime.now().uptimeNanoseconds
            defer { trace?.record("encode", from: encoding, to: DispatchTime.now().uptimeNanoseconds) }
            response = try codec.encode(endpoint, request, outputs)
            rows = request.inputs.values.first?.shape.first ?? 0
            response.compressionMinimumBytes = endpoint.config.gzipMinimumBytes
        } catch {
            var (status, message, reason) = ResponseErrors.describe(error)
            if !(error is any ResponseError) {
                message = "inference failed: \(error)"
                logger.error("inference failed", metadata: ["endpoint": "\(endpoint.name)", "error": "\(error)"])
            }
            response = codec.error(status, message)
            failure = reason
        }
        endpoint.record(success: failure == nil)
        let now = DispatchTime.now().uptimeNanoseconds
        metrics.series(endpoint.name).record(rows: rows, queue: Double(started - arrived) / 1e9, compute: Double(now - started) / 1e9,
                                             total: Double(now - arrived) / 1e9, failure: failure)
        respond(response)
    }
}

extension Result {
    var failure: Failure? { if case .failure(let error) = self { return error } else { return nil } }
}
