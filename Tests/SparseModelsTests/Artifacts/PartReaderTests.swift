import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// Reading one stored layer's parts: dtype and shape checked before the values are read, errors
/// naming the file, the tensor and what the layer needed; integers read little-endian.
final class PartReaderTests: XCTestCase {
    private func reader() throws -> PartReader {
        var writer = SafeTensorsWriter()
        try writer.add("fc.nm.values", floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        try writer.add("fc.nm.bias", floats: [0.5, -0.5], shape: [2])
        try writer.add("fc.nm.indices", dtype: .u16, shape: [3], bytes: Data([0x01, 0x00, 0x00, 0x01, 0xFF, 0xFF]))
        try writer.add("fc.nm.flat", floats: [1, 2], shape: [1, 2])
        let file = try SafeTensors(data: writer.serialized(), source: "art/model.safetensors")
        return PartReader(file: file, prefix: "fc.nm", what: "nm", outputFeatures: 2, inputFeatures: 3)
    }

    func testReadsCheckedParts() throws {
        let r = try reader()
        XCTAssertEqual(try r.floats("values", [2, 3]), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try r.floats("bias", nil), [0.5, -0.5], "nil shape: any 1-D tensor")
        XCTAssertEqual(try r.words("indices", .u16, [3], as: UInt16.self), [1, 256, 0xFFFF], "little-endian")
        XCTAssertEqual(try r.words("indices", .u16, nil, as: Int16.self), [1, 256, -1])
    }

    func testRefusalsNameFileTensorAndExpectation() throws {
        let r = try reader()
        assertError(try r.floats("values", [3, 2]),
                    contains: ["art/model.safetensors", "tensor 'fc.nm.values'", "shape is [2, 3], expected [3, 2] for a 2×3 nm layer"])
        assertError(try r.floats("indices", [3]), contains: ["tensor 'fc.nm.indices'", "dtype is U16, a nm layer stores indices as F32"])
        assertError(try r.words("values", .u8, nil, as: UInt8.self), contains: ["dtype is F32, a nm layer stores values as U8"])
        assertError(try r.floats("flat", nil), contains: ["tensor 'fc.nm.flat'", "must be 1-D, has shape [1, 2]"])
        assertError(try r.floats("scales", nil), contains: ["art/model.safetensors", "fc.nm.scales"])
    }
}
