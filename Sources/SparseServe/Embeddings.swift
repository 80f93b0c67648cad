import Foundation
import HTTPServer
import SparseModels

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
        var texts: [String]
        var base64: Bool
        var dimensions: Int?
    }

    static func parse(_ body: [UInt8]) throws -> Request {
        let json: JSON
        do { json = try JSON.parse(body) } catch { throw ProtocolError(400, "malformed JSON body: \(error)") }
        guard json.objectValue != nil else { throw ProtocolError(400, "the body must be a JSON object") }
        guard let model = json["model"]?.stringValue, !model.isEmpty else {
            throw ProtocolError(400, "'model' is required (the endpoint name)")
        }
        guard let input = json["input"] else { throw ProtocolError(400, "'input' is required (a string or an array of strings)") }
        var texts: [String]
        if let one = input.stringValue {
            texts = [one]
        } else if let list = input.arrayValue {
            guard !list.isEmpty else { throw ProtocolError(400, "'input' must not be an empty array") }
            texts = try list.enumerated().map { i, item in
                guard let text = item.stringValue else {
                    throw ProtocolError(400, "'input[\(i)]' must be a string (token arrays are not supported; send text)")
                }
                return text
            }
        } else {
            throw ProtocolError(400, "'input' must be a string or an array of strings, got \(input.kindName)")
        }
        guard texts.count <= 2048 else { throw ProtocolError(400, "at most 2048 inputs per request, got \(texts.count)") }
        if texts.contains(where: \.isEmpty) { throw ProtocolError(400, "'input' strings must not be empty") }
        texts = texts.map { $0 }
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
        return Request(model: model, texts: texts, base64: base64, dimensions: dimensions)
    }

    /// The model's text input and embedding output, or a 400 naming why it is not an embedding model.
    static func signature(_ model: any InferenceModel, name: String) throws -> (input: String, output: String, width: Int) {
        guard model.inputs.count == 1, let input = model.inputs.first, input.datatype == .bytes, input.shape == [-1],
              let output = model.outputs.first(where: { $0.datatype == .fp32 && $0.shape.count == 2 && $0.shape[0] == -1 && $0.shape[1] > 0 }) else {
            throw ProtocolError(400, "model '\(name)' is not a text-embedding model (it needs one BYTES [-1] input and an FP32 [-1, d] output)")
        }
        return (input.name, output.name, output.shape[1])
    }

    static func codec(_ request: Request) -> InferenceService.Codec {
        InferenceService.Codec(decode: { model in
            let sig = try signature(model, name: request.model)
            if let d = request.dimensions, d != sig.width {
                throw ProtocolError(400, "model '\(request.model)' produces \(sig.width)-dimensional embeddings; 'dimensions' \(d) is not supported")
            }
            let tensor = Tensor(shape: [request.texts.count], storage: .bytes(request.texts.map { Array($0.utf8) }))
            return InferenceRequest(id: nil, inputs: [sig.input: tensor], requestedOutputs: [sig.output])
        }, encode: { endpoint, _, results in
            let sig = try signature(endpoint.model, name: endpoint.name)
            guard let out = results[sig.output], case .fp32(let values) = out.storage, out.shape == [request.texts.count, sig.width] else {
                throw ProtocolError(500, "model did not produce '\(sig.output)' as FP32 [\(request.texts.count), \(sig.width)]")
            }
            let tokens = (endpoint.model as? any TokenCountingModel).map { m in request.texts.reduce(0) { $0 + m.tokenCount($1) } } ?? 0
            var w = JSONWriter(reservingCapacity: values.count * 12 + 256)
            w.raw("{\"object\":\"list\",\"data\":[")
            for i in 0..<request.texts.count {
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
