import Foundation
import XCTest
@testable import SparseModels

/// Model sizes summed over layers: parameters, bytes, the dense-equivalent density and the
/// compression totals; method parameter values decoded by kind.
final class ModelSummaryTests: XCTestCase {
    private func layer(_ name: String, parameters: Int, bytes: Int, density: Double?, dense: Int? = nil, stored: Int? = nil) -> ModelSummary.Layer {
        var l = ModelSummary.Layer(name: name, type: "linear", inputFeatures: 4, outputFeatures: 4, activation: nil,
                                   parameterCount: parameters, byteCount: bytes)
        l.density = density
        if let dense, let stored {
            l.compression = LayerCompressionFacts(method: "nm", parameters: [:], pinned: false, storedParameters: parameters,
                                                  storedBytes: stored, denseBytes: dense, density: density ?? 1, relativeError: 0)
        }
        return l
    }

    func testTotalsAndDensity() throws {
        // 50 kept of 100 dense, 30 of 30 dense, and a layer without weights (softmax).
        let summary = ModelSummary(architecture: "mlp", name: "m", layers: [
            layer("fc1", parameters: 50, bytes: 300, density: 0.5, dense: 400, stored: 300),
            layer("fc2", parameters: 30, bytes: 120, density: 1, dense: 120, stored: 120),
            layer("softmax", parameters: 0, bytes: 0, density: nil),
        ])
        XCTAssertEqual(summary.parameterCount, 80)
        XCTAssertEqual(summary.byteCount, 420)
        XCTAssertEqual(summary.density, 80.0 / 130.0, accuracy: 1e-12)
        let totals = try XCTUnwrap(summary.compressionTotals)
        XCTAssertEqual(totals.denseBytes, 520)
        XCTAssertEqual(totals.storedBytes, 420)
        XCTAssertEqual(totals.ratio, 520.0 / 420.0, accuracy: 1e-12)
    }

    func testModelsWithoutLinearLayers() {
        let identity = ModelSummary(architecture: "identity", name: nil, layers: [])
        XCTAssertEqual(identity.density, 1, "nothing stored: density 1, not NaN")
        XCTAssertNil(identity.compressionTotals)
        XCTAssertEqual(identity.parameterCount, 0)
        let zeroStored = ModelSummary(architecture: "mlp", name: nil, layers: [layer("fc", parameters: 0, bytes: 0, density: 0, dense: 16, stored: 0)])
        XCTAssertEqual(zeroStored.compressionTotals?.ratio, 1, "no stored bytes: ratio 1, not infinity")
    }

    func testParameterValuesDecodeByKind() throws {
        let values = try JSONDecoder().decode([String: ParameterValue].self, from: Data(#"{"a": 2, "b": 0.25, "c": "x", "d": true}"#.utf8))
        XCTAssertEqual(values, ["a": .int(2), "b": .double(0.25), "c": .string("x"), "d": .bool(true)])
        let encoded = try JSONEncoder().encode(values)
        XCTAssertEqual(try JSONDecoder().decode([String: ParameterValue].self, from: encoded), values)
        XCTAssertEqual(values["a"]?.intValue, 2)
        XCTAssertNil(values["b"]?.intValue)
        XCTAssertNil(values["a"]?.stringValue)
        XCTAssertEqual(values.mapValues(\.description), ["a": "2", "b": "0.25", "c": "x", "d": "true"])
        XCTAssertThrowsError(try JSONDecoder().decode(ParameterValue.self, from: Data("[1]".utf8)))
    }
}
