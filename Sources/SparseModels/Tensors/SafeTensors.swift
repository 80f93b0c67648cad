import Foundation
import SparseJSON

/// Element types a safetensors file can declare.
public enum SafeTensorsDType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
}

/// A safetensors file that cannot be read, or a tensor request it cannot satisfy. The description
/// names the file, the tensor (when one is involved) and the reason.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var tensor: String?
    public var reason: String

    public init(file: String, tensor: String? = nil, reason: String) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(reason)" }
        return "\(file): \(reason)"
    }
}

/// One tensor's header entry.
public struct SafeTensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    /// Byte range inside the data section (after the header).
    public var dataOffsets: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataOffsets.count }
}

/// A validated, memory-mapped safetensors file: 8-byte little-endian header length, a JSON header
/// `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`, then the
/// little-endian tensor data. Every structural rule of the format is checked at init, so the
/// accessors only fail for requests the file cannot satisfy (missing name, wrong type or shape).
public struct SafeTensors: Sendable {
    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderBytes = 100_000_000

    /// Path (or label) used in error messages.
    public let source: String
    /// The `__metadata__` string map (empty if absent).
    public let metadata: [String: String]
    /// Tensors in data order.
    public let tensors: [SafeTensorInfo]
    private let data: Data
    private let dataStart: Int
    private let index: [String: Int]

    /// Maps and validates the file at `path`.
    public init(contentsOf path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafeTensorsError(file: path, reason: "file does not exist")
        }
        guard !isDirectory.boolValue else { throw SafeTensorsError(file: path, reason: "is a directory, not a safetensors file") }
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(file: path, reason: "cannot read file (\(error.localizedDescription))")
        }
        try self.init(data: bytes, source: path)
    }

    /// Validates an in-memory file; `source` names it in errors.
    public init(data: Data, source: String) throws {
        func fail(_ reason: String, _ tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: source, tensor: tensor, reason: reason)
        }
        let size = data.count
        guard size >= 8 else { throw fail("file is \(size) bytes, shorter than the 8-byte header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(Self.maximumHeaderBytes) else {
            throw fail("header length \(headerLength) exceeds the \(Self.maximumHeaderBytes)-byte limit")
        }
        guard headerLength <= UInt64(size - 8) else {
            throw fail("header length \(headerLength) is larger than the \(size - 8) bytes after the length field (truncated file?)")
        }
        guard headerLength >= 2 else { throw fail("header length \(headerLength) is too small for a JSON object") }
        let start = data.startIndex
        let headerBytes = data.subdata(in: start + 8 ..< start + 8 + Int(headerLength))
        let header: RawHeader
        do {
            header = try JSONDecoder().decode(RawHeader.self, from: headerBytes)
        } catch let error as DecodingError {
            throw fail("invalid JSON header: \(error.conciseDescription)")
        } catch {
            throw fail("invalid JSON header: \(error)")
        }

        let dataSize = size - 8 - Int(headerLength)
        var infos: [SafeTensorInfo] = []
        for (name, entry) in header.entries {
            guard !name.isEmpty else { throw fail("empty tensor name") }
            guard let dtype = SafeTensorsDType(rawValue: entry.dtype) else {
                let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail("unknown dtype '\(entry.dtype)' (known: \(known))", name)
            }
            guard entry.shape.allSatisfy({ $0 >= 0 }) else { throw fail("negative dimension in shape \(entry.shape)", name) }
            guard entry.shape.count <= 16 else { throw fail("rank \(entry.shape.count) is absurd (at most 16)", name) }
            var bytes = dtype.byteSize
            for dim in entry.shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
                guard !overflow, product <= dataSize else {
                    throw fail("shape \(entry.shape) of \(dtype.rawValue) needs more bytes than the \(dataSize)-byte data section", name)
                }
                bytes = product
            }
            guard entry.dataOffsets.count == 2 else {
                throw fail("data_offsets must be [begin, end], got \(entry.dataOffsets.count) numbers", name)
            }
            let begin = entry.dataOffsets[0], end = entry.dataOffsets[1]
            guard begin >= 0, begin <= end else { throw fail("data_offsets [\(begin), \(end)] are not an increasing pair", name) }
            guard end <= dataSize else {
                throw fail("data_offsets [\(begin), \(end)] run past the \(dataSize)-byte data section (truncated file?)", name)
            }
            guard end - begin == bytes else {
                throw fail("data_offsets span \(end - begin) bytes but shape \(entry.shape) of \(dtype.rawValue) needs \(bytes)", name)
            }
            infos.append(SafeTensorInfo(name: name, dtype: dtype, shape: entry.shape, dataOffsets: begin..<end))
        }
        // The format requires the tensors to tile the data section exactly, in offset order.
        infos.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        var position = 0
        for info in infos {
            if info.dataOffsets.lowerBound < position {
                throw fail("data_offsets [\(info.dataOffsets.lowerBound), \(info.dataOffsets.upperBound)] overlap the previous tensor (which ends at \(position))", info.name)
            }
            if info.dataOffsets.lowerBound > position {
                throw fail("bytes \(position)..<\(info.dataOffsets.lowerBound) of the data section belong to no tensor", info.name)
            }
            position = info.dataOffsets.upperBound
        }
        guard position == dataSize else {
            throw fail("the data section has \(dataSize) bytes but the tensors cover only \(position)")
        }

        self.source = source
        self.metadata = header.metadata
        self.tensors = infos
        self.data = data
        self.dataStart = 8 + Int(headerLength)
        self.index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// Tensor names in data order.
    public var names: [String] { tensors.map(\.name) }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The header entry of `name`.
    public func info(named name: String) throws -> SafeTensorInfo {
        guard let i = index[name] else {
            let available = names.prefix(20).joined(separator: ", ")
            throw SafeTensorsError(file: source, tensor: name, reason: "no such tensor (the file has: \(available)\(tensors.count > 20 ? ", …" : ""))")
        }
        return tensors[i]
    }

    /// The raw little-endian bytes of `name`.
    public func rawBytes(named name: String) throws -> Data {
        let info = try info(named: name)
        let base = data.startIndex + dataStart
        return data.subdata(in: base + info.dataOffsets.lowerBound ..< base + info.dataOffsets.upperBound)
    }

    /// A floating-point tensor (F32, or F64/F16/BF16 converted) as row-major `Float`s. When `shape`
    /// is given, the tensor's shape must equal it.
    public func tensor(named name: String, shape: [Int]? = nil) throws -> [Float] {
        let info = try checked(name, shape: shape)
        guard info.dtype.isFloatingPoint else {
            throw SafeTensorsError(file: source, tensor: name, reason: "dtype \(info.dtype.rawValue) is not a floating-point type")
        }
        return withBytes(of: info) { raw in
            let count = info.elementCount
            switch info.dtype {
            case .f32:
                return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    #if _endian(little)
                    if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: count * 4) }
                    #else
                    for i in 0..<count { buffer[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                    #endif
                    initialized = count
                }
            case .f64:
                return (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            case .f16:
                return (0..<count).map { halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            default: // .bf16
                return (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }
            }
        }
    }

    /// An integer or BOOL tensor widened to `Int64` (U64 values above `Int64.max` are an error).
    public func int64Tensor(named name: String, shape: [Int]? = nil) throws -> [Int64] {
        let info = try checked(name, shape: shape)
        guard !info.dtype.isFloatingPoint else {
            throw SafeTensorsError(file: source, tensor: name, reason: "dtype \(info.dtype.rawValue) is not an integer type")
        }
        let size = info.dtype.byteSize
        let values: [Int64] = withBytes(of: info) { raw in
            (0..<info.elementCount).map { i in
                let offset = i * size
                switch info.dtype {
                case .i64: return Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self))
                case .u64: return Int64(truncatingIfNeeded: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                case .i32: return Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                case .u32: return Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                case .i16: return Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int16.self)))
                case .u16: return Int64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
                case .i8: return Int64(raw.load(fromByteOffset: offset, as: Int8.self))
                default: return Int64(raw.load(fromByteOffset: offset, as: UInt8.self)) // u8, bool
                }
            }
        }
        if info.dtype == .u64, let bad = values.firstIndex(where: { $0 < 0 }) {
            throw SafeTensorsError(file: source, tensor: name, reason: "U64 element \(bad) does not fit in Int64")
        }
        return values
    }

    private func checked(_ name: String, shape: [Int]?) throws -> SafeTensorInfo {
        let info = try info(named: name)
        if let shape, shape != info.shape {
            throw SafeTensorsError(file: source, tensor: name, reason: "shape is \(info.shape), expected \(shape)")
        }
        return info
    }

    private func withBytes<R>(of info: SafeTensorInfo, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        data.withUnsafeBytes { all in
            body(UnsafeRawBufferPointer(rebasing: all[dataStart + info.dataOffsets.lowerBound ..< dataStart + info.dataOffsets.upperBound]))
        }
    }
}

/// IEEE half → single (exact, including subnormals, infinities and NaN).
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    switch exponent {
    case 0:
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -magnitude : magnitude
    case 31:
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    }
}

/// The header as JSON: tensor entries plus the optional `__metadata__` string map.
private struct RawHeader: Decodable {
    struct Entry: Decodable {
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int]

        enum CodingKeys: String, CodingKey, CaseIterable {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dtype = try c.decode(String.self, forKey: .dtype)
            shape = try c.decode([Int].self, forKey: .shape)
            dataOffsets = try c.decode([Int].self, forKey: .dataOffsets)
        }
    }

    var entries: [(String, Entry)] = []
    var metadata: [String: String] = [:]

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        for key in c.allKeys {
            if key.stringValue == "__metadata__" {
                metadata = try c.decode([String: String].self, forKey: key)
            } else {
                entries.append((key.stringValue, try c.decode(Entry.self, forKey: key)))
            }
        }
    }
}

/// Builds a safetensors file: add tensors (stored in the order added), set metadata, serialise.
public struct SafeTensorsWriter: Sendable {
    public var metadata: [String: String]
    private var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data)] = []

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a tensor from raw little-endian bytes, which must match `shape` and `dtype`.
    public mutating func add(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data) throws {
        guard !name.isEmpty, name != "__metadata__", !entries.contains(where: { $0.name == name }) else {
            throw SafeTensorsError(file: "<writer>", tensor: name, reason: "empty, reserved or duplicate tensor name")
        }
        let expected = shape.reduce(dtype.byteSize, *)
        guard shape.allSatisfy({ $0 >= 0 }), bytes.count == expected else {
            throw SafeTensorsError(file: "<writer>", tensor: name, reason: "\(bytes.count) bytes do not match shape \(shape) of \(dtype.rawValue)")
        }
        entries.append((name, dtype, shape, bytes))
    }

    public mutating func add(_ name: String, floats: [Float], shape: [Int]) throws {
        try add(name, dtype: .f32, shape: shape, bytes: littleEndianBytes(floats.map(\.bitPattern)))
    }

    public mutating func add(_ name: String, int64s: [Int64], shape: [Int]) throws {
        try add(name, dtype: .i64, shape: shape, bytes: littleEndianBytes(int64s))
    }

    /// The JSON header (unpadded): `__metadata__` first, then tensors in the order added.
    public func headerJSON() -> String {
        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(JSONWriter.quoted($0)):\(JSONWriter.quoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for entry in entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            parts.append("\(JSONWriter.quoted(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + entry.bytes.count)]}")
            offset += entry.bytes.count
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// The complete file: length, header padded with spaces to a multiple of 8, data.
    public func serialized() -> Data {
        var header = Array(headerJSON().utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var out = littleEndianBytes([UInt64(header.count)])
        out.append(contentsOf: header)
        for entry in entries { out.append(entry.bytes) }
        return out
    }

    public func write(to path: String) throws {
        do {
            try serialized().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SafeTensorsError(file: path, reason: "cannot write file (\(error.localizedDescription))")
        }
    }
}

/// The values as little-endian bytes.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> Data {
    #if _endian(little)
    return values.withUnsafeBytes { Data($0) }
    #else
    var data = Data(capacity: values.count * MemoryLayout<T>.size)
    for value in values { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
    return data
    #endif
}
