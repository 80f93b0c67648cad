import Foundation
import SparseKernels
import XCTest
@testable import SparseModels

/// Building a chain of layers through a `LayerCompressor`: dense layers need none, other methods
/// fail per layer without one, failures stay with their layer, and a quantized method is applied
/// to the packed form afterwards with its error measured on the quantized weights.
final class LayerCompressorTests: XCTestCase {
    private struct Refused: Error, CustomStringConvertible { var description: String { "refused" } }

    /// Packs every layer dense (whatever its method) except those named in `refuse`.
    private struct DensePacker: LayerCompressor {
        var refuse: Set<String> = []
        func pack(chain layers: [DenseLinearLayer]) -> [Result<(packed: PackedLayer, relativeError: Double?), any Error>] {
            layers.map { layer in
                if refuse.contains(layer.name) { return .failure(Refused()) }
                return .success((PackedLayer(outputFeatures: layer.outputFeatures, inputFeatures: layer.inputFeatures,
                                             form: .dense(weight: layer.weights), bias: layer.bias), 0.25))
            }
        }
    }

    private func layer(_ name: String, _ method: LayerCompression, seed: Float = 1) -> DenseLinearLayer {
        DenseLinearLayer(name: name, weights: (0..<32).map { Float($0 % 7) * 0.1 * seed - 0.3 }, bias: [0, 1, 2, 3],
                         outputFeatures: 4, inputFeatures: 8, method: method)
    }

    func testWithoutACompressorOnlyDenseLayersBuild() throws {
        let results = BuiltLinearLayer.build([layer("a", .dense), layer("b", .nm(n: 2, m: 4)), layer("c", .pinned(.dense))], compressor: nil, time: false)
        XCTAssertEqual(results.count, 3)
        let a = try results[0].get()
        XCTAssertEqual(a.facts.method, "dense")
        XCTAssertEqual(a.facts.relativeError, 0, "measured against the reference: exact")
        XCTAssertEqual(a.facts.density, 1)
        XCTAssertThrowsError(try results[1].get()) { error in
            XCTAssertTrue("\(error)".contains("compressing as nm 2:4 needs a layer compressor"), "\(error)")
        }
        XCTAssertTrue(try results[2].get().facts.pinned)
        XCTAssertThrowsError(try BuiltLinearLayer(compressing: layer("d", .csr(density: 0.5)), compressor: nil))
    }

    func testFailuresStayWithTheirLayer() throws {
        let results = BuiltLinearLayer.build([layer("a", .dense), layer("b", .dense), layer("c", .dense)],
                                             compressor: DensePacker(refuse: ["b"]), time: false)
        XCTAssertNoThrow(try results[0].get())
        XCTAssertThrowsError(try results[1].get()) { XCTAssertEqual("\($0)", "refused") }
        XCTAssertNoThrow(try results[2].get())
        XCTAssertEqual(try results[0].get().facts.relativeError, 0.25, "the compressor's own error is kept")
    }

    /// The compressor packs fp32; the chain quantizes afterwards and measures the error anew.
    func testQuantizationIsAppliedAfterPacking() throws {
        let built = try BuiltLinearLayer(compressing: layer("q", .quantized(.dense, .bf16)), compressor: DensePacker(), time: false)
        XCTAssertEqual(built.facts.parameters["weights"], .string("bf16"))
        XCTAssertNotEqual(built.facts.relativeError, 0.25, "not the compressor's fp32 error")
        XCTAssertGreaterThan(built.facts.relativeError, 0, "bf16 rounding shows")
        XCTAssertLessThan(built.facts.relativeError, 0.01)
        XCTAssertTrue(built.op.storage.contains("bf16"), built.op.storage)
    }

    func testNoCompressorErrorNamesTheMethod() {
        XCTAssertEqual("\(NoCompressorError(method: .blast(blocks: 2, rank: 3, parameterRatio: nil, iterations: 1)))",
                       "compressing as blast b=2 r=3 needs a layer compressor (SparseCompression's WeightCompressor), and this load has none")
    }
}
