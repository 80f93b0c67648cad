import Foundation
import HTTPServer
import SparseModels
import SparseJSON

/// The OpenAI-compatible `POST /v1/embeddings` route for text-embedding endpoints (a BYTES text
/// input `[-1]` and an FP32 output `[-1, d]`). Errors use OpenAI's shape,
/// `{"error": {"message", "type", "param", "code"}}`, which OpenAI clients read.
enum OpenAIEmbeddings {
    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        let type = status == 401 ? "authentication_error" : status == 404 ? "not_found_error"
            : status == 429 ? "rate_limit_error" : status < 500 ? "invalid_request_error" : "server_error"
        return .json(status: status, JSONWriter.encode(.object([
            ("error", .object([("message", .string(message)), ("type", .string(type)), ("param", .null), ("code", .null)])),
        ])))
    }

    /// What the body asks for, validated before any model work.
    struct Request {
        var model: String
        var inputs: [TextInput]
        var base64: Bool
        var dimensions: Int?
        /// Extension: cut inputs over the token limit instead of refusing them (422).
        var truncate: Bool
    }

    /// Reads `input` (named `name` in errors, answered with `status`): a string, an array of
    /// strings, an array of token ids (one input) or an array of such arrays.
    static func inputs(_ input: JSON, name: String = "input", status: Int = 400) throws -> [TextInput] {
        func tokens(_ list: [JSON], _ name: String) throws -> [Int32] {
            guard !list.isEmpty else { throw ProtocolError(status, "'\(name)' must not be an empty token array") }
            return try list.enumerated().map { j, item in
                guard let v = item.integerValue, v >= 0, v <= Int64(Int32.max) else {
                    throw ProtocolError(status, "'\(name)[\(j)]' must be a non-negative integer token id")
                }
                return Int32(v)
            }
        }
        if let one = input.stringValue {
            guard !one.isEmpty else { throw ProtocolError(status, "'\(name)' must not be an empty string") }
            return [.text(Array(one.utf8))]
        }
        guard let list = input.arrayValue else {
            throw ProtocolError(status, "'\(name)' must be a string, an array of strings or an array of token-id arrays, got \(input.kindName)")
        }
        guard !list.isEmpty else { throw ProtocolError(status, "'\(name)' must not be an empty array") }
        if list.allSatisfy({ $0.integerValue != nil }) { return [.tokens(try tokens(list, name))] }
        return try list.enumerated().map { i, item in
            if let text = item.stringValue {
                guard !text.isEmpty else { throw ProtocolError(status, "'\(name)[\(i)]' must not be an empty string") }
                return .text(Array(text.utf8))
            }
            if let ids = item.arrayValue { return .tokens(try tokens(ids, "\(name)[\(i)]")) }
            throw ProtocolError(status, "'\(name)[\(i)]' must be a string or an array of token ids, got \(item.kindName)")
        }
    }

    static func parse(_ body: [UInt8]) throws -> Request {
        let json: JSON
        do { json = try JSON.parse(body) } catch { throw ProtocolError(400, "malformed JSON body: \(error)") }
        guard json.objectValue != nil else { throw ProtocolError(400, "the body must be a JSON object") }
        guard let model = json["model"]?.stringValue, !model.isEmpty else {
            throw ProtocolError(400, "'model' is required (the endpoint name)")
        }
        guard let input = json["input"] else {
            throw ProtocolError(400, "'input' is required (a string, an array of strings or an array of token-id arrays)")
        }
        let items = try inputs(input)
        var base64 = false
        if let format = json["encoding_format"] {
            switch format.stringValue {
            case "float": base64 = false
            case "base64": base64 = true
            default: throw ProtocolError(400, "'encoding_format' must be 'float' or 'base64'")
            }
        }
        var dimensions: Int?
        if let d = json["dimensions"] {
            guard let n = d.integerValue, n > 0 else { throw ProtocolError(400, "'dimensions' must be a positive integer") }
            dimensions = Int(n)
        }
        var truncate = false
        if let t = json["truncate"] {
            guard let v = t.boolValue else { throw ProtocolError(400, "'truncate' must be true or false") }
            truncate = v
        }
        return Request(model: model, inputs: items, base64: base64, dimensions: dimensions, truncate: truncate)
    }

    /// The model's text input and embedding output, or a 400 naming why it is not an embedding model.
    static func signature(_ model: any InferenceModel, name: String) throws -> (input: String, output: String, width: Int) {
        guard model.inputs.count == 1, let input = model.inputs.first, input.datatype == .bytes, input.shape == [-1],
              let output = model.outputs.first(where: { $0.datatype == .fp32 && $0.shape.count == 2 && $0.shape[0] == -1 && $0.shape[1] > 0 }) else {
            throw ProtocolError(400, "model '\(name)' is not a text-embedding model (it needs one BYTES [-1] input and an FP32 [-1, d] output)")
        }
        return (input.name, output.name, output.shape[1])
    }

    static func codec(_ request: Request, endpoint config: EndpointConfig) -> ProtocolCodec {
        ProtocolCodec(decode: { model in
            let sig = try signature(model, name: request.model)
            if let d = request.dimensions, d != sig.width {
                throw ProtocolError(400, "model '\(request.model)' produces \(sig.width)-dimensional embeddings; 'dimensions' \(d) is not supported")
            }
            guard let encoder = model as? any TextEncodingModel else {
                // A text model the server cannot tokenize for: texts go to it as they are.
                let texts = try request.inputs.enumerated().map { i, item -> [UInt8] in
                    guard case .text(let bytes) = item else {
                        throw ProtocolError(400, "'input[\(i)]': model '\(request.model)' takes text, not token ids")
                    }
                    return bytes
                }
                try TextInputs.checkCount(texts.count, config)
                return InferenceRequest(id: nil, inputs: [sig.input: Tensor(shape: [texts.count], storage: .bytes(texts))],
                                        requestedOutputs: [sig.output])
            }
            let (ids, tokens) = try TextInputs.tokenIDs(request.inputs, model: encoder, endpoint: config, truncate: request.truncate,
                                                        parameter: "input")
            var inference = InferenceRequest(id: nil, inputs: [tokenIDsInputName: ids], requestedOutputs: [sig.output])
            inference.tokenCount = tokens
            return inference
        }, encode: { endpoint, inference, results in
            let sig = try signature(endpoint.model, name: endpoint.name)
            let count = request.inputs.count
            guard let out = results[sig.output], case .fp32(let values) = out.storage, out.shape == [count, sig.width] else {
                throw ProtocolError(500, "model did not produce '\(sig.output)' as FP32 [\(count), \(sig.width)]")
            }
            let tokens = inference.tokenCount ?? 0
            var w = JSONWriter(reservingCapacity: values.count * 12 + 256)
            w.raw("{\"object\":\"list\",\"data\":[")
            for i in 0..<count {
                if i > 0 { w.raw(",") }
                w.raw("{\"object\":\"embedding\",\"index\":\(i),\"embedding\":")
                let row = Array(values[(i * sig.width)..<((i + 1) * sig.width)])
                if request.base64 {
                    let bytes = row.withUnsafeBytes { Data($0) }  // little-endian float32, as OpenAI sends
                    w.string(bytes.base64EncodedString())
                } else {
                    w.raw("[")
                    for (k, v) in row.enumerated() {
                        if k > 0 { w.raw(",") }
                        w.number(v)
                    }
                    w.raw("]")
                }
                w.raw("}")
            }
            w.raw("],\"model\":")
            w.string(endpoint.name)
            w.raw(",\"usage\":{\"prompt_tokens\":\(tokens),\"total_tokens\":\(tokens)}}")
            return .json(status: 200, w.bytes)
        }, error: error)
    }
}

/// `POST /v1/embeddings`: the body names the endpoint, so its keys are checked once it is parsed.
struct OpenAIEmbeddingsRoute: Sendable {
    let service: InferenceService
    let auth: APIKeyAuth

    func handle(_ request: HTTPRequest, _ reply: @escaping Responder) {
        if let refusal = JSONTreeCharge.refusal(request) { return reply(refusal) }
        do {
            let body = try OpenAIEmbeddings.parse(request.body)
            guard auth.isAuthorized(request.headers["authorization"], model: body.model) else {
                return reply(APIKeyAuth.unauthorized(OpenAIEmbeddings.error))
            }
            let endpoint = try service.repository.endpoint(named: body.model, version: nil)
            // The head was read against the largest endpoint limit; this endpoint's own applies.
            let limit = endpoint.config.maxBodyBytes ?? service.config.server.maxBodyBytes
            guard request.body.count <= limit else {
                return reply(OpenAIEmbeddings.error(413, "request body of \(request.body.count) bytes exceeds the limit of \(limit) bytes of model '\(endpoint.name)'"))
            }
            service.pipeline.run(endpoint: endpoint, codec: OpenAIEmbeddings.codec(body, endpoint: endpoint.config),
                                 clientGone: request.isClientGone, respond: reply)
        } catch {
            let (status, message, _) = ResponseErrors.describe(error)
            reply(OpenAIEmbeddings.error(status, message))
        }
    }
}
