import HTTPServer
import SparseModels
import SparseJSON

extension V2Codec {
    /// The v2 response of an endpoint: the requested outputs as JSON or binary tensors.
    @Sendable static func response(_ endpoint: Endpoint, _ request: InferenceRequest, _ results: [String: Tensor]) throws -> HTTPResponse {
        let names = request.requestedOutputs ?? endpoint.model.outputs.map(\.name)
        var outputs: [(String, Tensor)] = []
        for name in names {
            guard let t = results[name] else { throw ProtocolError(500, "model did not produce output '\(name)'") }
            outputs.append((name, t))
        }
        let encoded = encodeResponse(modelName: endpoint.name, modelVersion: endpoint.version,
                                     id: request.id, outputs: outputs, binary: request.wantsBinary)
        guard let jsonLength = encoded.jsonLength else { return .json(status: 200, encoded.body) }
        var response = HTTPResponse(status: 200, body: encoded.body)
        response.headers.set(name: "Content-Type", value: "application/octet-stream")
        response.headers.set(name: "Inference-Header-Content-Length", value: String(jsonLength))
        return response
    }

    /// Encodes a v2 inference response. Outputs named in `binary` carry
    /// `parameters.binary_data_size` and their bytes follow the JSON header; `model_name` is
    /// always present.
    public static func encodeResponse(modelName: String, modelVersion: String, id: String?, outputs: [(String, Tensor)], binary: (String) -> Bool = { _ in false }) -> EncodedResponse {
        var capacity = 128
        for (_, t) in outputs { capacity += t.elementCount * 12 }
        var w = JSONWriter(reservingCapacity: capacity)
        var blobs: [UInt8] = []
        w.raw("{\"model_name\":"); w.string(modelName)
        w.raw(",\"model_version\":"); w.string(modelVersion)
        if let id { w.raw(",\"id\":"); w.string(id) }
        w.raw(",\"outputs\":[")
        for (n, (name, tensor)) in outputs.enumerated() {
            if n > 0 { w.raw(",") }
            w.raw("{\"name\":"); w.string(name)
            w.raw(",\"datatype\":\""); w.raw(tensor.datatype.rawValue)
            w.raw("\",\"shape\":[")
            w.raw(tensor.shape.map(String.init).joined(separator: ","))
            if binary(name) {
                let start = blobs.count
                appendBinary(tensor.storage, to: &blobs)
                w.raw("],\"parameters\":{\"binary_data_size\":\(blobs.count - start)}}")
            } else {
                w.raw("],\"data\":[")
                writeData(tensor.storage, into: &w)
                w.raw("]}")
            }
        }
        w.raw("]}")
        if outputs.contains(where: { binary($0.0) }) {
            let jsonLength = w.bytes.count
            return EncodedResponse(body: w.bytes + blobs, jsonLength: jsonLength)
        }
        return EncodedResponse(body: w.bytes, jsonLength: nil)
    }

    static func appendBinary(_ storage: TensorStorage, to out: inout [UInt8]) {
        func append<T>(_ values: [T]) { values.withUnsafeBytes { out.append(contentsOf: $0) } }
        switch storage {
        case .fp32(let a): append(a.map { $0.bitPattern.littleEndian })
        case .fp64(let a): append(a.map { $0.bitPattern.littleEndian })
        case .int32(let a): append(a.map { $0.littleEndian })
        case .int64(let a): append(a.map { $0.littleEndian })
        case .uint8(let a): out.append(contentsOf: a)
        case .bool(let a): out.append(contentsOf: a.map { $0 ? 1 : 0 })
        case .bytes(let a):
            for item in a {
                append([UInt32(item.count).littleEndian])
                out.append(contentsOf: item)
            }
        }
    }

    static func writeData(_ storage: TensorStorage, into w: inout JSONWriter) {
        func list<T>(_ items: [T], _ write: (inout JSONWriter, T) -> Void) {
            for (i, v) in items.enumerated() {
                if i > 0 { w.raw(",") }
                write(&w, v)
            }
        }
        switch storage {
        case .fp32(let a): list(a) { $0.number($1) }
        case .fp64(let a): list(a) { $0.number($1) }
        case .int32(let a): list(a) { $0.number($1) }
        case .int64(let a): list(a) { $0.number($1) }
        case .uint8(let a): list(a) { $0.number($1) }
        case .bool(let a): list(a) { $0.raw($1 ? "true" : "false") }
        case .bytes(let a): list(a) { $0.string(String(decoding: $1, as: UTF8.self)) }
        }
    }
}
