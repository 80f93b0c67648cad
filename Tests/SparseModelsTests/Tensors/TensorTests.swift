import Foundation
import XCTest
@testable import SparseModels

/// Tensor, TensorStorage, DataType and TensorSpec: element sizes and counts, and how a manifest's
/// tensor entry is read.
final class TensorTests: XCTestCase {
    func testDatatypesAndStorage() {
        XCTAssertEqual(DataType.allCases.map(\.rawValue), ["BOOL", "UINT8", "INT32", "INT64", "FP32", "FP64", "BYTES"])
        XCTAssertEqual(DataType.allCases.map(\.byteSize), [1, 1, 4, 8, 4, 8, nil])
        let storages: [TensorStorage] = [.bool([true, false]), .uint8([1, 2]), .int32([1, 2]), .int64([1, 2]), .fp32([1, 2]),
                                         .fp64([1, 2]), .bytes([[1], []])]
        XCTAssertEqual(storages.map(\.datatype), DataType.allCases)
        XCTAssertTrue(storages.allSatisfy { $0.count == 2 })
        let t = Tensor(shape: [2, 1], storage: .bytes([Array("a".utf8), []]))
        XCTAssertEqual(t.datatype, .bytes)
        XCTAssertEqual(t.elementCount, 2)
        XCTAssertNotEqual(t, Tensor(shape: [1, 2], storage: t.storage), "same elements, other shape")
    }

    /// A manifest entry has name, datatype and shape; alternative shapes are the loader's to set.
    func testSpecsAreReadFromManifests() throws {
        let spec = try JSONDecoder().decode(TensorSpec.self, from: Data(#"{"name": "x", "datatype": "FP32", "shape": [-1, 3]}"#.utf8))
        XCTAssertEqual(spec, TensorSpec(name: "x", datatype: .fp32, shape: [-1, 3]))
        XCTAssertEqual(spec.alternativeShapes, [])
        XCTAssertThrowsError(try JSONDecoder().decode(TensorSpec.self, from: Data(#"{"name": "x", "datatype": "FP16", "shape": [1]}"#.utf8)))
        XCTAssertThrowsError(try JSONDecoder().decode(TensorSpec.self, from: Data(#"{"name": "x", "datatype": "FP32"}"#.utf8)))
    }
}
