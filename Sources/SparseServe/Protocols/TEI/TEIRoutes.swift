import Foundation
import HTTPServer
import SparseJSON
import SparseModels

/// The TEI-compatible API (text-embeddings-inference's routes and shapes) for one text-encoding
/// endpoint, chosen by `compat.tei`. Authentication (the endpoint's and the server's keys),
/// Host/Origin rules and body limits are `RequestGate`'s, as for v2 inference; inference goes
/// through the shared pipeline (admission, the endpoint's batcher, metrics); tokenizing and
/// decoding run on the compute threads too. Errors are TEI's `{"error", "error_type"}` (`TEIErrors`).
struct TEIRoutes: Sendable {
    let service: InferenceService

    /// The endpoint the TEI routes serve: `compat.tei.model`, else the only loaded text encoder;
    /// nil (no TEI routes) when TEI is off or there is no single text encoder.
    static func endpointName(_ service: InferenceService) -> String? {
        let tei = service.config.compat.tei
        guard tei.enabled else { return nil }
        if let model = tei.model { return model }
        let encoders = service.endpoints.filter { (try? TEICodecs.encoder($0.model, name: $0.name)) != nil }
        return encoders.count == 1 ? encoders[0].name : nil
    }

    func handle(_ operation: TEIOperation, model: String, _ request: HTTPRequest, _ reply: @escaping Responder) {
        let endpoint: Endpoint
        do {
            endpoint = try service.repository.endpoint(named: model, version: nil)
        } catch {
            return reply(TEIErrors.response(503, "model '\(model)' is not loaded: \(ResponseErrors.describe(error).message)"))
        }
        switch operation {
        case .health: return reply(health())
        case .info: return reply(.json(status: 200, JSONWriter.encode(TEIInfo.json(endpoint, service: service))))
        default: break
        }
        if let refusal = JSONTreeCharge.refusal(request) { return reply(refusal) }
        do {
            let config = endpoint.config
            switch operation {
            case .embed, .root: infer(endpoint, TEICodecs.embed(try TEIRequests.embed(request.body), config: config), request, reply)
            case .embedAll: infer(endpoint, TEICodecs.embedAll(try TEIRequests.embed(request.body), config: config), request, reply)
            case .similarity: infer(endpoint, TEICodecs.similarity(try TEIRequests.similarity(request.body), config: config), request, reply)
            case .tokenize:
                let body = try TEIRequests.tokenize(request.body)
                onCompute(endpoint, reply) { try TEITokens.tokenize(body, model: endpoint.model, config: config) }
            case .decode:
                let body = try TEIRequests.decode(request.body)
                onCompute(endpoint, reply) { try TEITokens.decode(body, model: endpoint.model, config: config) }
            case .info, .health: break
            }
        } catch {
            reply(TEIErrors.response(error))
        }
    }

    private func infer(_ endpoint: Endpoint, _ codec: ProtocolCodec, _ request: HTTPRequest, _ reply: @escaping Responder) {
        service.pipeline.run(endpoint: endpoint, codec: codec, clientGone: request.isClientGone, respond: reply)
    }

    /// Runs `work` on the compute threads in the endpoint's lane (a full queue is TEI's 429).
    private func onCompute(_ endpoint: Endpoint, _ reply: @escaping Responder, _ work: @escaping @Sendable () throws -> HTTPResponse) {
        let accepted = service.compute.submit(lane: endpoint.name) {
            do { reply(try work()) } catch { reply(TEIErrors.response(error)) }
        }
        if !accepted {
            var response = TEIErrors.response(429, "server is overloaded: \(service.compute.maxQueueSize) requests are already queued")
            response.headers.set(name: "Retry-After", value: "1")
            reply(response)
        }
    }

    /// 200 with an empty body while the server is ready (the endpoint is loaded), else 503.
    private func health() -> HTTPResponse {
        service.isReady ? HTTPResponse(status: 200) : TEIErrors.response(503, "unhealthy: the server is starting or draining")
    }
}

/// `GET /info`: TEI's `Info` object for the served endpoint.
enum TEIInfo {
    static func json(_ endpoint: Endpoint, service: InferenceService) -> JSON {
        func int(_ v: Int) -> JSON { .number(double: Double(v), integer: Int64(v)) }
        let config = endpoint.config
        let limit = (endpoint.model as? any TextEncodingModel).map { TextInputs.tokenLimit($0, config) } ?? 0
        let pooling = ((endpoint.model as? BertEncoderModel)?.options.pooling ?? .mean).rawValue
        let batchRequests = endpoint.scheduler == nil ? 1 : max(1, config.batching.maxBatchSize)
        return .object([
            ("model_id", .string(endpoint.name)), ("model_sha", .null), ("model_dtype", .string("float32")),
            ("model_type", .object([("embedding", .object([("pooling", .string(pooling))]))])),
            ("max_concurrent_requests", int(service.config.server.maxQueueSize)),
            ("max_input_length", int(limit)),
            // Without a budget a forward pass holds at most maxBatchSize inputs of the limit.
            ("max_batch_tokens", int(config.batching.maxBatchTokens ?? batchRequests * limit)),
            ("max_batch_requests", int(batchRequests)),
            ("max_client_batch_size", int(config.maxInputs)),
            ("auto_truncate", .bool(false)),
            ("tokenization_workers", int(service.compute.threadCount)),
            ("version", .string(InferenceService.version)), ("sha", .null), ("docker_label", .null),
        ])
    }
}
