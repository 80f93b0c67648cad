import SparseModels
import SparseJSON

/// The Open Inference Protocol (v2) wire format: requests decoded and checked against the
/// model's tensors (this file and `V2DataDecoder.swift`), responses encoded (`V2ResponseEncoder.swift`).
public enum V2Codec {
    /// Decodes an infer request and validates it against `inputs`/`outputs` before any tensor
    /// storage is allocated. `headerLength` is the `Inference-Header-Content-Length` header of the
    /// binary tensor data extension: nil for a pure JSON body, 0 for a raw binary body holding the
    /// single input, otherwise the length of the JSON part, followed by the binary tensors.
    public static func decodeRequest(_ body: [UInt8], headerLength: Int? = nil, inputs specs: [TensorSpec], outputs outputSpecs: [TensorSpec]) throws -> InferenceRequest {
        try decodeRequest(body, headerLength: headerLength, inputs: specs, outputs: outputSpecs, typedNumberArrays: true)
    }

    /// `decodeRequest`, choosing how `data` arrays are parsed: straight into typed buffers (what
    /// the server does), or as one boxed JSON value per element (kept for the benchmark's baseline).
    package static func decodeRequest(_ body: [UInt8], headerLength: Int?, inputs specs: [TensorSpec], outputs outputSpecs: [TensorSpec],
                                      typedNumberArrays: Bool) throws -> InferenceRequest {
        if headerLength == 0 { return try decodeRawBinary(body, inputs: specs) }
        var (json, binary) = try split(body, headerLength: headerLength, typedNumberArrays: typedNumberArrays)
        var request = try envelope(json)
        request.inputs = try decodeInputs(json["inputs"], specs: specs, binary: &binary)
        guard binary.isEmpty else {
            throw ProtocolError(400, "\(binary.count) binary bytes after the JSON header are not claimed by any input's binary_data_size")
        }
        let allBinary = json["parameters"]?["binary_data_output"]?.boolValue ?? false
        (request.requestedOutputs, request.binaryOutputs) = try decodeOutputs(json["outputs"], specs: outputSpecs, allBinary: allBinary)
        return request
    }

    /// The JSON object of the body and the binary tensor bytes after it.
    private static func split(_ body: [UInt8], headerLength: Int?, typedNumberArrays: Bool) throws -> (JSON, ArraySlice<UInt8>) {
        var jsonPart = body[...], binary: ArraySlice<UInt8> = []
        if let headerLength {
            guard headerLength > 0, headerLength <= body.count else {
                throw ProtocolError(400, "Inference-Header-Content-Length \(headerLength) is outside the body's \(body.count) bytes")
            }
            jsonPart = body[0..<headerLength]
            binary = body[headerLength...]
        }
        guard !jsonPart.isEmpty else { throw ProtocolError(400, "request body is empty; expected a JSON inference request") }
        let json: JSON
        do { json = try JSON.parse(Array(jsonPart), typedNumberArrays: typedNumberArrays) } catch {
            throw ProtocolError(400, "\(error)")
        }
        guard case .object = json else { throw ProtocolError(400, "inference request must be a JSON object, got \(json.kindName)") }
        return (json, binary)
    }

    /// `id` and `parameters` (timeout, truncate) of the request object.
    private static func envelope(_ json: JSON) throws -> InferenceRequest {
        var request = InferenceRequest(id: nil, inputs: [:])
        if let v = json["id"] {
            guard let s = v.stringValue else { throw ProtocolError(400, "'id' must be a string, got \(v.kindName)") }
            request.id = s
        }
        if let p = json["parameters"], p.objectValue == nil {
            throw ProtocolError(400, "'parameters' must be an object, got \(p.kindName)")
        }
        if let t = json["parameters"]?["timeout"] {
            guard let v = t.integerValue, v >= 0, v <= 3_600_000_000 else {
                throw ProtocolError(400, "parameters.timeout must be a whole number of microseconds (0...3600000000)")
            }
            request.timeoutMicroseconds = Int(v)
        }
        if let t = json["parameters"]?["truncate"] {
            guard let v = t.boolValue else { throw ProtocolError(400, "parameters.truncate must be true or false") }
            request.truncate = v
        }
        return request
    }

    /// Every input of `inputs`, checked against the model's specs; binary inputs take their bytes from `binary`.
    private static func decodeInputs(_ inputList: JSON?, specs: [TensorSpec], binary: inout ArraySlice<UInt8>) throws -> [String: Tensor] {
        guard let inputList else { throw ProtocolError(400, "'inputs' is required") }
        guard let items = inputList.arrayValue else { throw ProtocolError(400, "'inputs' must be an array, got \(inputList.kindName)") }
        guard !items.isEmpty else { throw ProtocolError(400, "'inputs' must not be empty") }
        var tensors: [String: Tensor] = [:]
        for (i, item) in items.enumerated() {
            guard case .object = item else { throw ProtocolError(400, "inputs[\(i)] must be an object, got \(item.kindName)") }
            guard let name = item["name"]?.stringValue else { throw ProtocolError(400, "inputs[\(i)].name is required and must be a string") }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw ProtocolError(400, "unexpected input '\(name)'; the model's inputs are: \(specs.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
            guard tensors[name] == nil else { throw ProtocolError(400, "input '\(name)' is given more than once") }
            tensors[name] = try decodeInput(item, spec: spec, binary: &binary)
        }
        for spec in specs where tensors[spec.name] == nil {
            throw ProtocolError(400, "missing input '\(spec.name)'")
        }
        return tensors
    }

    /// One input object: datatype and shape checked, then its `data` or its binary bytes.
    private static func decodeInput(_ item: JSON, spec: TensorSpec, binary: inout ArraySlice<UInt8>) throws -> Tensor {
        let name = spec.name
        guard let dtypeName = item["datatype"]?.stringValue else {
            throw ProtocolError(400, "input '\(name)': 'datatype' is required and must be a string")
        }
        guard let dtype = DataType(rawValue: dtypeName) else {
            throw ProtocolError(400, "input '\(name)': unsupported datatype '\(dtypeName)'")
        }
        guard dtype == spec.datatype else {
            throw ProtocolError(400, "input '\(name)': datatype \(dtypeName) does not match the model's \(spec.datatype.rawValue)")
        }
        let shape = try check(shape: try decodeShape(item["shape"], input: name), against: spec)
        let count = try elementCount(shape, input: name)
        if let p = item["parameters"], p.objectValue == nil {
            throw ProtocolError(400, "input '\(name)': 'parameters' must be an object")
        }
        if let binarySize = item["parameters"]?["binary_data_size"] {
            guard let size = binarySize.integerValue, size >= 0 else {
                throw ProtocolError(400, "input '\(name)': binary_data_size must be a non-negative integer")
            }
            guard item["data"] == nil else {
                throw ProtocolError(400, "input '\(name)': has both binary_data_size and 'data'")
            }
            guard Int64(binary.count) >= size else {
                throw ProtocolError(400, "input '\(name)': binary_data_size \(size) exceeds the \(binary.count) binary bytes left in the body")
            }
            let blob = binary.prefix(Int(size))
            binary = binary.dropFirst(Int(size))
            return Tensor(shape: shape, storage: try decodeBinary(blob, datatype: dtype, count: count, input: name))
        }
        guard let data = item["data"] else { throw ProtocolError(400, "input '\(name)': 'data' is required") }
        let found = try countLeaves(data, input: name)
        guard found == count else {
            throw ProtocolError(400, "input '\(name)': shape \(shape) needs \(count) elements but 'data' has \(found)")
        }
        return Tensor(shape: shape, storage: try decodeData(data, datatype: dtype, count: count, input: name))
    }

    /// The requested output names (nil: all) and which of them go back as binary.
    private static func decodeOutputs(_ outs: JSON?, specs outputSpecs: [TensorSpec],
                                      allBinary: Bool) throws -> (requested: [String]?, binary: Set<String>?) {
        guard let outs else { return (nil, allBinary ? Set(outputSpecs.map(\.name)) : nil) }
        guard let list = outs.arrayValue else { throw ProtocolError(400, "'outputs' must be an array, got \(outs.kindName)") }
        var names: [String] = []
        var binaryNames: Set<String> = []
        for (i, o) in list.enumerated() {
            guard let name = o["name"]?.stringValue else { throw ProtocolError(400, "outputs[\(i)].name is required and must be a string") }
            guard outputSpecs.contains(where: { $0.name == name }) else {
                throw ProtocolError(400, "unknown output '\(name)'; the model's outputs are: \(outputSpecs.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
            guard !names.contains(name) else { throw ProtocolError(400, "output '\(name)' is requested more than once") }
            if let flag = o["parameters"]?["binary_data"] {
                guard let b = flag.boolValue else { throw ProtocolError(400, "output '\(name)': binary_data must be a boolean") }
                if b { binaryNames.insert(name) }
            } else if allBinary {
                binaryNames.insert(name)
            }
            names.append(name)
        }
        return (names.isEmpty ? nil : names, binaryNames)
    }

    /// A raw binary body (`Inference-Header-Content-Length: 0`): the bytes of the model's single
    /// input, batch 1, with every output returned as binary.
    static func decodeRawBinary(_ body: [UInt8], inputs specs: [TensorSpec]) throws -> InferenceRequest {
        guard specs.count == 1, let spec = specs.first else {
            throw ProtocolError(400, "a raw binary request needs a model with exactly one input; this model has \(specs.count)")
        }
        guard let size = spec.datatype.byteSize else {
            throw ProtocolError(400, "raw binary requests are not supported for \(spec.datatype.rawValue) inputs")
        }
        var shape = spec.shape
        if shape.first == -1 { shape[0] = 1 }
        let variable = shape.indices.filter { shape[$0] < 0 }
        guard variable.count <= 1 else {
            throw ProtocolError(400, "a raw binary request needs at most one variable dimension besides the batch; input '\(spec.name)' has shape \(spec.shape)")
        }
        let fixed = shape.filter { $0 >= 0 }.reduce(1, *)
        guard fixed > 0, body.count % (fixed * size) == 0, !body.isEmpty else {
            throw ProtocolError(400, "raw binary body of \(body.count) bytes does not fit input '\(spec.name)' of shape \(spec.shape) and datatype \(spec.datatype.rawValue)")
        }
        if let v = variable.first { shape[v] = body.count / (fixed * size) }
        guard shape.reduce(1, *) * size == body.count else {
            throw ProtocolError(400, "raw binary body of \(body.count) bytes does not match input '\(spec.name)' of shape \(shape)")
        }
        let count = shape.reduce(1, *)
        let tensor = Tensor(shape: shape, storage: try decodeBinary(body[...], datatype: spec.datatype, count: count, input: spec.name))
        return InferenceRequest(id: nil, inputs: [spec.name: tensor], requestedOutputs: nil, binaryOutputs: nil, allOutputsBinary: true)
    }

    /// Little-endian, row-major tensor bytes; BYTES elements are a 4-byte length plus the bytes.
    static func decodeBinary(_ blob: ArraySlice<UInt8>, datatype: DataType, count: Int, input: String) throws -> TensorStorage {
        if let size = datatype.byteSize {
            guard blob.count == count * size else {
                throw ProtocolError(400, "input '\(input)': binary data has \(blob.count) bytes, shape and \(datatype.rawValue) need \(count * size)")
            }
        }
        return try blob.withUnsafeBytes { raw -> TensorStorage in
            func load<T>(_: T.Type) -> [T] {
                (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) }
            }
            switch datatype {
            case .fp32:
                let values = load(UInt32.self).map { Float(bitPattern: UInt32(littleEndian: $0)) }
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw ProtocolError(400, "input '\(input)': element \(bad) is \(values[bad].isNaN ? "NaN" : "infinite"); only finite numbers are accepted")
                }
                return .fp32(values)
            case .fp64:
                let values = load(UInt64.self).map { Double(bitPattern: UInt64(littleEndian: $0)) }
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw ProtocolError(400, "input '\(input)': element \(bad) is \(values[bad].isNaN ? "NaN" : "infinite"); only finite numbers are accepted")
                }
                return .fp64(values)
            case .int32: return .int32(load(Int32.self).map { Int32(littleEndian: $0) })
            case .int64: return .int64(load(Int64.self).map { Int64(littleEndian: $0) })
            case .uint8: return .uint8(Array(raw.bindMemory(to: UInt8.self)))
            case .bool:
                let bytes = Array(raw.bindMemory(to: UInt8.self))
                if let bad = bytes.firstIndex(where: { $0 > 1 }) {
                    throw ProtocolError(400, "input '\(input)': BOOL element \(bad) is \(bytes[bad]); binary BOOL must be 0 or 1")
                }
                return .bool(bytes.map { $0 == 1 })
            case .bytes:
                var items: [[UInt8]] = []
                var offset = 0
                while offset < raw.count {
                    guard offset + 4 <= raw.count else { throw ProtocolError(400, "input '\(input)': truncated BYTES length prefix at byte \(offset)") }
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                    offset += 4
                    guard length <= raw.count - offset else { throw ProtocolError(400, "input '\(input)': BYTES element \(items.count) claims \(length) bytes past the end of its data") }
                    items.append(Array(raw[offset..<offset + length]))
                    offset += length
                    guard items.count <= count else { break }
                }
                guard items.count == count else {
                    throw ProtocolError(400, "input '\(input)': binary BYTES data holds \(items.count) elements, shape needs \(count)")
                }
                return .bytes(items)
            }
        }
    }

    static func decodeShape(_ json: JSON?, input: String) throws -> [Int] {
        guard let json else { throw ProtocolError(400, "input '\(input)': 'shape' is required") }
        guard let dims = json.arrayValue else { throw ProtocolError(400, "input '\(input)': 'shape' must be an array of integers") }
        guard dims.count <= 16 else { throw ProtocolError(400, "input '\(input)': shape has \(dims.count) dimensions (at most 16)") }
        return try dims.map { d in
            guard let v = d.integerValue, v >= 0, v <= Int64(Int32.max) else {
                throw ProtocolError(400, "input '\(input)': shape dimensions must be non-negative integers")
            }
            return Int(v)
        }
    }

    /// Checks a request's shape against the declared one and returns it, or the declared shape
    /// with this batch size when it matches one of the spec's alternative shapes.
    @discardableResult
    static func check(shape: [Int], against spec: TensorSpec) throws -> [Int] {
        func fits(_ want: [Int]) -> Bool { want.count == shape.count && zip(shape, want).allSatisfy { $1 < 0 || $0 == $1 } }
        if !fits(spec.shape), let first = shape.first, spec.alternativeShapes.contains(where: fits) {
            return try check(shape: [first] + spec.shape.dropFirst(), against: spec)
        }
        let also = spec.alternativeShapes.map { " or \($0)" }.joined()
        guard shape.count == spec.shape.count else {
            throw ProtocolError(400, "input '\(spec.name)': shape \(shape) has \(shape.count) dimensions, the model expects \(spec.shape.count) (\(spec.shape))\(also)")
        }
        for (i, (got, want)) in zip(shape, spec.shape).enumerated() where want >= 0 && got != want {
            throw ProtocolError(400, "input '\(spec.name)': shape \(shape) does not match the model's \(spec.shape)\(also) at dimension \(i)")
        }
        if let first = shape.first, first == 0 {
            throw ProtocolError(400, "input '\(spec.name)': batch dimension must be at least 1")
        }
        return shape
    }

    static func elementCount(_ shape: [Int], input: String) throws -> Int {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 31 else { throw ProtocolError(400, "input '\(input)': shape \(shape) is too large") }
            count = p
        }
        return count
    }
}
