import HTTPServer
import SparseJSON
import SparseModels

/// The Open Inference Protocol (v2) routes: server and model metadata, health, inference,
/// statistics and model configuration (repository routes: `V2RepositoryRoutes.swift`).
struct V2Routes: Sendable {
    let service: InferenceService
    var repository: ModelRepository { service.repository }

    /// Protocol extensions this server really implements (advertised by `GET /v2`).
    static let extensions = ["binary_tensor_data", "statistics", "model_repository", "model_configuration"]

    func serverMetadata() -> HTTPResponse {
        json(.object([
            ("name", .string("sparse-serve")),
            ("version", .string(InferenceService.version)),
            ("extensions", .array(Self.extensions.map { .string($0) })),
        ]))
    }

    func live() -> HTTPResponse { json(.object([("live", .bool(true))])) }

    func ready() -> HTTPResponse {
        let ready = service.isReady
        return json(.object([("ready", .bool(ready))]), status: ready ? 200 : 503)
    }

    func modelMetadata(_ model: String, _ version: String?) throws -> HTTPResponse {
        json(try repository.endpoint(named: model, version: version).metadataJSON())
    }

    func modelReady(_ model: String, _ version: String?) throws -> HTTPResponse {
        let endpoint = try repository.endpoint(named: model, version: version)
        let ready = service.isReady
        return json(.object([("name", .string(endpoint.name)), ("ready", .bool(ready))]), status: ready ? 200 : 503)
    }

    func modelConfig(_ model: String, _ version: String?) throws -> HTTPResponse {
        json(try repository.endpoint(named: model, version: version).modelConfigJSON())
    }

    func statistics(_ model: String?, _ version: String?) throws -> HTTPResponse {
        let list = try model.map { [try repository.endpoint(named: $0, version: version)] } ?? service.endpoints
        return json(V2Statistics.json(list, metrics: service.metrics))
    }

    /// Runs one v2 inference request: decode (and tokenize, for text encoders) on a compute
    /// thread, run alone or batched, encode the requested outputs.
    func infer(_ model: String, _ version: String?, _ http: HTTPRequest, _ respond: @escaping Responder) throws {
        let endpoint = try repository.endpoint(named: model, version: version)
        var headerLength: Int?
        if let value = http.headers["inference-header-content-length"] {
            guard let n = Int(value), n >= 0, n <= http.body.count else {
                throw ProtocolError(400, "Inference-Header-Content-Length '\(value)' must be an integer between 0 and the body length \(http.body.count)")
            }
            headerLength = n
        }
        let body = http.body, config = endpoint.config, length = headerLength
        let codec = ProtocolCodec(decode: { model in
            var request = try V2Codec.decodeRequest(body, headerLength: length, inputs: model.inputs, outputs: model.outputs)
            // Text encoders get their texts tokenized here, where the endpoint's limits apply. (The
            // cast last: a failed one cost ~2 100 instructions on every digits request by callgrind.)
            if let spec = model.inputs.first, model.inputs.count == 1, spec.datatype == .bytes,
               let encoder = model as? any TextEncodingModel, let texts = request.inputs[spec.name], case .bytes(let items) = texts.storage {
                let (ids, tokens) = try TextInputs.tokenIDs(items.map { .text($0) }, model: encoder, endpoint: config,
                                                            truncate: request.truncate, parameter: spec.name)
                request.inputs = [tokenIDsInputName: ids]
                request.tokenCount = tokens  // the batch token budget counts them
            }
            return request
        }, encode: V2Codec.response)
        service.pipeline.run(endpoint: endpoint, codec: codec, clientGone: http.isClientGone, respond: respond)
    }

    func json(_ value: JSON, status: Int = 200) -> HTTPResponse { .json(status: status, JSONWriter.encode(value)) }
}

/// The statistics extension's `model_stats` (counts and cumulative nanoseconds), from the metrics.
enum V2Statistics {
    static func json(_ list: [Endpoint], metrics: ServerMetrics) -> JSON {
        func n(_ v: Double) -> JSON { .number(double: v.rounded(), integer: Int64(v.rounded())) }
        func stat(_ count: Double, _ seconds: Double) -> JSON { .object([("count", n(count)), ("ns", n(seconds * 1e9))]) }
        return .object([("model_stats", .array(list.map { e in
            let t = metrics.statistics(e.name)
            return .object([
                ("name", .string(e.name)), ("version", .string(e.version)),
                ("inference_count", n(Double(t.rows))),
                ("execution_count", n(Double(t.successes))),
                ("inference_stats", .object([
                    ("success", stat(Double(t.successes), t.totalSeconds)),
                    ("fail", stat(Double(t.failures), 0)),
                    ("queue", stat(Double(t.timed), t.queueSeconds)),
                    ("compute_infer", stat(Double(t.timed), t.computeSeconds)),
                ])),
            ])
        }))])
    }
}
