import Foundation

/// Reads the stored tensors of one layer (`<prefix>.<part>`), checking each part's dtype and
/// shape before its values are read; errors name the file and the tensor.
struct PartReader {
    let file: SafeTensors
    /// `<layer>.<method>`.
    let prefix: String
    /// How the layer is stored, for messages ("nm", "dense int8", …).
    let what: String
    let outputFeatures: Int
    let inputFeatures: Int

    func info(_ part: String, _ dtype: SafeTensorsDType) throws -> SafeTensorInfo {
        let info = try file.info(named: "\(prefix).\(part)")
        guard info.dtype == dtype else {
            throw SafeTensorsError(file: file.source, tensor: info.name, reason: "dtype is \(info.dtype.rawValue), a \(what) layer stores \(part) as \(dtype.rawValue)")
        }
        return info
    }

    /// `shape` nil: any 1-D tensor.
    func check(_ info: SafeTensorInfo, _ shape: [Int]?) throws {
        if let shape {
            guard info.shape == shape else {
                throw SafeTensorsError(file: file.source, tensor: info.name, reason: "shape is \(info.shape), expected \(shape) for a \(outputFeatures)×\(inputFeatures) \(what) layer")
            }
        } else if info.shape.count != 1 {
            throw SafeTensorsError(file: file.source, tensor: info.name, reason: "must be 1-D, has shape \(info.shape)")
        }
    }

    func floats(_ part: String, _ shape: [Int]?) throws -> [Float] {
        let i = try info(part, .f32)
        try check(i, shape)
        return try file.tensor(named: i.name)
    }

    /// Integer (or bf16 bit-pattern) elements of `dtype`, little-endian.
    func words<T: FixedWidthInteger>(_ part: String, _ dtype: SafeTensorsDType, _ shape: [Int]?, as: T.Type) throws -> [T] {
        let i = try info(part, dtype)
        try check(i, shape)
        let raw = try file.rawBytes(named: i.name)
        return raw.withUnsafeBytes { p in
            (0..<i.elementCount).map { T(littleEndian: p.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
        }
    }
}
