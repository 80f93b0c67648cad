import Foundation
import HTTPServer
import SparseJSON
import SparseModels

/// How TEI's inference routes become requests of the shared pipeline (tokenized here, batched
/// with `/v1/embeddings` and v2 requests of the same endpoint) and how results are written back.
enum TEICodecs {
    /// Most tokens (rows × longest input) one `/embed_all` request may hold: its answer is a
    /// vector per token, about 4 KB of JSON each for a 384-wide model.
    static let embedAllMaxTokens = 16_384

    /// The text encoder behind `model`, or a 424 naming why it cannot serve TEI.
    static func encoder(_ model: any InferenceModel, name: String) throws -> any TextEncodingModel {
        guard let encoder = model as? any TextEncodingModel, (try? OpenAIEmbeddings.signature(model, name: name)) != nil else {
            throw ProtocolError(424, "model '\(name)' is not a text encoder the TEI routes can serve")
        }
        return encoder
    }

    /// `/embed` and `/`: one sentence vector per input, L2-normalised unless `normalize` is false.
    static func embed(_ request: TEIRequests.Embed, config: EndpointConfig) -> ProtocolCodec {
        ProtocolCodec(decode: { model in
            try sentenceRequest(request.inputs, normalize: request.normalize, truncation: request.truncation, model: model, config: config)
        }, encode: { endpoint, _, results in
            let vectors = try sentenceVectors(results, endpoint: endpoint, count: request.inputs.count, normalize: request.normalize)
            var w = JSONWriter(reservingCapacity: vectors.count * 12 + 16)
            writeRows(vectors, count: request.inputs.count, into: &w)
            return .json(status: 200, w.bytes)
        }, error: TEIErrors.pipeline)
    }

    /// `/similarity`: the cosine of the source sentence's vector with each sentence's.
    static func similarity(_ request: TEIRequests.Similarity, config: EndpointConfig) -> ProtocolCodec {
        let texts = [request.source] + request.sentences
        return ProtocolCodec(decode: { model in
            try sentenceRequest(texts.map { .text($0) }, normalize: true, truncation: request.truncation, model: model, config: config)
        }, encode: { endpoint, _, results in
            let v = try sentenceVectors(results, endpoint: endpoint, count: texts.count, normalize: true)
            let d = v.count / texts.count
            let scores = (1..<texts.count).map { i in (0..<d).reduce(Float(0)) { $0 + v[$1] * v[i * d + $1] } }
            var w = JSONWriter(reservingCapacity: scores.count * 12 + 2)
            w.raw("[")
            for (i, s) in scores.enumerated() {
                if i > 0 { w.raw(",") }
                w.number(s)
            }
            w.raw("]")
            return .json(status: 200, w.bytes)
        }, error: TEIErrors.pipeline)
    }

    /// `/embed_all`: every token's last hidden state, `[[[float]]]` (input, token, width).
    static func embedAll(_ request: TEIRequests.Embed, config: EndpointConfig) -> ProtocolCodec {
        ProtocolCodec(decode: { model in
            guard let states = try encoder(model, name: config.name) as? any TokenStatesModel else {
                throw ProtocolError(424, "model '\(config.name)' cannot report token states")
            }
            let sequences = try TextInputs.sequences(request.inputs, model: states, endpoint: config, truncation: request.truncation,
                                                     parameter: "inputs")
            let width = sequences.map(\.count).max() ?? 1
            guard sequences.count * width <= embedAllMaxTokens else {
                throw ProtocolError(413, "/embed_all answers at most \(embedAllMaxTokens) token vectors (inputs × longest input); "
                                    + "this request needs \(sequences.count * width): send fewer or shorter inputs")
            }
            var inference = InferenceRequest(id: nil, inputs: [tokenIDsInputName: TextInputs.padded(sequences, width: width).tensor],
                                             requestedOutputs: nil)
            inference.tokenCount = sequences.reduce(0) { $0 + $1.count }
            inference.forward = tokenStatesForward(states)
            return inference
        }, encode: { _, inference, results in
            guard let ids = inference.inputs[tokenIDsInputName], case .int32(let flat) = ids.storage,
                  let out = results[tokenStatesOutput], case .fp32(let values) = out.storage, out.shape.count == 3 else {
                throw ProtocolError(500, "token states missing from the model's answer")
            }
            let (n, width, h) = (out.shape[0], out.shape[1], out.shape[2])
            var w = JSONWriter(reservingCapacity: values.count * 12 + 16)
            w.raw("[")
            for i in 0..<n {
                if i > 0 { w.raw(",") }
                let length = flat[(i * width)..<((i + 1) * width)].prefix { $0 >= 0 }.count
                writeRows(Array(values[(i * width * h)..<((i * width + length) * h)]), count: length, into: &w)
            }
            w.raw("]")
            return .json(status: 200, w.bytes)
        }, error: TEIErrors.pipeline)
    }

    static let tokenStatesOutput = "token_states"

    /// Runs `[n, width]` token ids through `model` and returns `[n, width, hidden]` states (zero rows
    /// for padding), so that requests of equal width batch.
    static func tokenStatesForward(_ model: any TokenStatesModel) -> ForwardVariant {
        ForwardVariant(name: "tei.token_states") { inputs in
            let (sequences, width) = try unpadded(inputs)
            let h = model.hiddenSize
            let packed = try model.tokenStates(sequences)
            var out = [Float](repeating: 0, count: sequences.count * width * h)
            var offset = 0
            for (i, ids) in sequences.enumerated() {
                out.replaceSubrange((i * width * h)..<((i * width + ids.count) * h), with: packed[offset..<(offset + ids.count * h)])
                offset += ids.count * h
            }
            return [tokenStatesOutput: Tensor(shape: [sequences.count, width, h], storage: .fp32(out))]
        }
    }

    /// Sentence vectors pooled without normalisation (for `normalize: false` on a normalising model).
    static func unnormalizedForward(_ model: any TokenStatesModel, output: String) -> ForwardVariant {
        ForwardVariant(name: "tei.unnormalized") { inputs in
            let (sequences, _) = try unpadded(inputs)
            let values = try model.pooledEmbeddings(sequences, normalize: false)
            return [output: Tensor(shape: [sequences.count, model.hiddenSize], storage: .fp32(values))]
        }
    }

    /// The sequences of a padded `input_ids` tensor and its width.
    static func unpadded(_ inputs: [String: Tensor]) throws -> ([[Int32]], Int) {
        guard let ids = inputs[tokenIDsInputName], case .int32(let flat) = ids.storage, ids.shape.count == 2, ids.shape[1] > 0 else {
            throw InvalidInputError("input '\(tokenIDsInputName)' must be INT32 [n, length]")
        }
        let width = ids.shape[1]
        return ((0..<ids.shape[0]).map { Array(flat[($0 * width)..<(($0 + 1) * width)].prefix { $0 >= 0 }) }, width)
    }
}

extension TEICodecs {
    /// The pipeline request for sentence vectors of `items`: the model's own forward pass (shared
    /// batches with every other protocol), or pooling without normalisation when `normalize` is
    /// false on a model that normalises.
    static func sentenceRequest(_ items: [TextInput], normalize: Bool, truncation: TextInputs.Truncation, model: any InferenceModel,
                                config: EndpointConfig) throws -> InferenceRequest {
        let text = try encoder(model, name: config.name)
        let output = try OpenAIEmbeddings.signature(model, name: config.name).output
        let sequences = try TextInputs.sequences(items, model: text, endpoint: config, truncation: truncation, parameter: "inputs")
        let (ids, tokens) = TextInputs.padded(sequences, width: TextInputs.tokenLimit(text, config))
        var request = InferenceRequest(id: nil, inputs: [tokenIDsInputName: ids], requestedOutputs: [output])
        request.tokenCount = tokens
        if !normalize && normalizes(model) {
            guard let states = text as? any TokenStatesModel else {
                throw ProtocolError(424, "model '\(config.name)' normalises its embeddings and cannot give them unnormalised")
            }
            request.forward = unnormalizedForward(states, output: output)
        }
        return request
    }

    /// Whether the model L2-normalises its sentence vectors itself (unknown models: no).
    static func normalizes(_ model: any InferenceModel) -> Bool {
        (model as? any TokenStatesModel)?.normalizesEmbeddings ?? false
    }

    /// The `[count × d]` sentence vectors of a finished request, L2-normalised when asked for and
    /// the model has not done it.
    static func sentenceVectors(_ results: [String: Tensor], endpoint: Endpoint, count: Int, normalize: Bool) throws -> [Float] {
        let sig = try OpenAIEmbeddings.signature(endpoint.model, name: endpoint.name)
        guard let out = results[sig.output], case .fp32(var values) = out.storage, out.shape == [count, sig.width] else {
            throw ProtocolError(500, "model did not produce '\(sig.output)' as FP32 [\(count), \(sig.width)]")
        }
        if normalize && !normalizes(endpoint.model) {
            for i in 0..<count {
                let row = (i * sig.width)..<((i + 1) * sig.width)
                let norm = values[row].reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { for k in row { values[k] /= norm } }
            }
        }
        return values
    }

    /// `[[v, ...], ...]`: `values` as `count` rows.
    static func writeRows(_ values: [Float], count: Int, into w: inout JSONWriter) {
        let d = count == 0 ? 0 : values.count / count
        w.raw("[")
        for i in 0..<count {
            w.raw(i == 0 ? "[" : ",[")
            for k in 0..<d {
                if k > 0 { w.raw(",") }
                w.number(values[i * d + k])
            }
            w.raw("]")
        }
        w.raw("]")
    }
}
