import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
import SparseCompression

/// Quantized stored forms: every method × weight format packs, round-trips through tensors to the
/// same operator, runs the kernel the format names (the same numbers as that kernel built directly),
/// reports its bytes, and broken forms are refused naming the part.
final class PackedLayerQuantizedTests: XCTestCase {
    typealias Q = WeightQuantization

    static let cases: [(LayerCompression, Q, rows: Int, columns: Int, storage: String)] = [
        (.dense, .int8(.channel), 24, 40, "int8 channel"),
        (.dense, .int8(.group(16)), 33, 50, "int8 group 16"),    // row and group tails
        (.dense, .int8Dynamic, 40, 66, "int8 dynamic"),
        (.dense, .bf16, 24, 41, "bf16"),
        (.nm(n: 2, m: 4), .int8Dynamic, 40, 66, "nm 2:4 int8 dynamic"),
        (.nm(n: 1, m: 4), .int8Dynamic, 17, 32, "nm 2:4 int8 dynamic"),
        (.transposableNM(n: 2, m: 4), .int8Dynamic, 32, 48, "nm 2:4 int8 dynamic"),
        (.nm(n: 3, m: 8), .bf16, 33, 64, "nm 3:8 bf16"),
        (.blast(blocks: 2, rank: 5, parameterRatio: nil, iterations: 20), .int8Dynamic, 32, 48, "blast b=2x2 r=5 int8"),
        (.blast(blocks: 3, rank: 4, parameterRatio: nil, iterations: 20), .bf16, 30, 45, "blast b=3x3 r=4 bf16"),
        (.csr(density: 0.3), .int8Dynamic, 30, 45, "csr int8 dynamic"),
        // weight-only int8 (fp32 activations) on the sparse methods
        (.nm(n: 2, m: 4), .int8(.channel), 40, 66, "nm 2:4 int8 channel"),
        (.nm(n: 4, m: 8), .int8(.group(16)), 33, 70, "nm 4:8 int8 group 16"),   // group and row tails
        (.transposableNM(n: 2, m: 4), .int8(.group(64)), 32, 48, "nm 2:4 int8 group 64"),
        (.blast(blocks: 2, rank: 5, parameterRatio: nil, iterations: 20), .int8(.channel), 32, 48, "blast b=2x2 r=5 int8 weight-only"),
        (.csr(density: 0.3), .int8(.channel), 30, 45, "csr int8 channel"),
    ]

    func pack(_ method: LayerCompression, _ q: Q, _ rows: Int, _ columns: Int, bias: [Float]?) throws -> PackedLayer {
        try Self.packed(method, q, rows, columns, bias: bias)
    }

    /// The test weight of `rows × columns` packed by `method`, then quantized.
    static func packed(_ method: LayerCompression, _ q: Q, _ rows: Int, _ columns: Int, bias: [Float]?) throws -> PackedLayer {
        let w = PackedLayerTests.weight(rows, columns)
        return try method.pack(weights: w, outputFeatures: rows, inputFeatures: columns, bias: bias).packed.quantized(q)
    }

    func testEveryFormatRoundTripsAndRunsItsKernel() throws {
        for (method, q, rows, columns, storage) in Self.cases {
            let w = PackedLayerTests.weight(rows, columns)
            for bias in [PackedLayerTests.bias(rows), nil] {
                let packed = try pack(method, q, rows, columns, bias: bias)
                XCTAssertEqual(packed.method, method.methodName)
                XCTAssertEqual(packed.storedBytes, packed.parts().reduce(0) { $0 + $1.data.count }, "\(method) \(q)")
                let reread = try roundTrip(packed, prefix: "layer.\(packed.method)")
                let a = try packed.makeOperator(), b = try reread.makeOperator()
                XCTAssertEqual(a.storage, storage)
                XCTAssertEqual(b.storage, storage)
                let dense = try XCTUnwrap(packed.denseWeights(a))
                XCTAssertEqual(dense, reread.denseWeights(b), "\(method) \(q)")
                for batch in [1, 5, 40] {
                    let x = Matrix(rows: batch, columns: columns, values: PackedLayerTests.weight(batch, columns, seed: 99))
                    XCTAssertEqual(a.apply(x, activation: .gelu).values, b.apply(x, activation: .gelu).values, "\(method) \(q) batch \(batch)")
                }
                let error = LayerCompression.relativeError(w, dense)
                let fp32 = try method.pack(weights: w, outputFeatures: rows, inputFeatures: columns, bias: bias).packed
                let fp32Error = LayerCompression.relativeError(w, fp32.denseWeights(try fp32.makeOperator())!)
                // Quantization adds at most a small error to the method's own.
                XCTAssertLessThan(error, fp32Error + (q == .bf16 ? 0.005 : 0.02), "\(method) \(q)")
            }
        }
    }

    /// `dequantized()` is the fp32 form of the same structure holding the weights the quantized
    /// kernel multiplies by; quantizing it again (round to nearest) gives back the same weights.
    func testDequantizedIsTheFP32FormOfTheSameWeights() throws {
        for (method, q, rows, columns, _) in Self.cases {
            let bias = PackedLayerTests.bias(rows)
            let packed = try pack(method, q, rows, columns, bias: bias)
            let fp32 = try packed.dequantized()
            XCTAssertNil(fp32.quantizedScheme, "\(method) \(q)")
            XCTAssertEqual(packed.quantizedScheme, q)
            let base = try method.pack(weights: PackedLayerTests.weight(rows, columns), outputFeatures: rows, inputFeatures: columns, bias: bias).packed
            XCTAssertEqual(fp32.layout, base.layout, "\(method) \(q): the method's own structure")
            XCTAssertEqual(fp32.bias, bias)
            let weights = try XCTUnwrap(packed.denseWeights(try packed.makeOperator()))
            let restored = try XCTUnwrap(fp32.denseWeights(try fp32.makeOperator()))
            XCTAssertEqual(restored.count, weights.count)
            for i in weights.indices { XCTAssertEqual(restored[i], weights[i], accuracy: 1e-6 * max(1, abs(weights[i])), "\(method) \(q) [\(i)]") }
            let again = try fp32.quantized(q)
            let requantized = try XCTUnwrap(again.denseWeights(try again.makeOperator()))
            for i in weights.indices { XCTAssertEqual(requantized[i], weights[i], accuracy: 1e-5 * max(1, abs(weights[i])), "\(method) \(q) [\(i)] re-quantized") }
        }
        let plain = try LayerCompression.nm(n: 2, m: 4).pack(weights: PackedLayerTests.weight(8, 16), outputFeatures: 8, inputFeatures: 16, bias: nil).packed
        XCTAssertEqual(try plain.dequantized().layout, plain.layout, "an fp32 layer is returned as it is")
    }

    /// Query, key and value quantized alike stack into one operator (MiniLM's fused projection) that
    /// computes exactly what the three compute: per-row weight scales, per-token activation scales.
    func testStackedQuantizedRowsComputeWhatTheLayersCompute() throws {
        let x = Matrix(rows: 9, columns: 48, values: PackedLayerTests.weight(9, 48, seed: 5))
        for q in [Q.int8Dynamic, .int8(.channel), .int8(.group(16)), .bf16] {
            let layers = try (0..<3).map { i in
                try LayerCompression.dense.pack(weights: PackedLayerTests.weight(32, 48, seed: UInt64(10 + i)), outputFeatures: 32, inputFeatures: 48,
                                                bias: i == 1 ? nil : PackedLayerTests.bias(32)).packed.quantized(q)
            }
            let stacked = try XCTUnwrap(PackedLayer.stackingQuantizedDenseRows(layers)).makeOperator()
            let fused = stacked.apply(x).values, parts = try layers.map { try $0.makeOperator().apply(x).values }
            for row in 0..<9 {
                XCTAssertEqual(Array(fused[(row * 96)..<(row * 96 + 96)]), parts.flatMap { Array($0[(row * 32)..<(row * 32 + 32)]) }, "\(q) row \(row)")
            }
        }
        let mixed = [try pack(.dense, .bf16, 8, 16, bias: nil), try pack(.dense, .int8Dynamic, 8, 16, bias: nil)]
        XCTAssertNil(PackedLayer.stackingQuantizedDenseRows(mixed))
    }

    func testStoredBytesPerFormat() throws {
        let (rows, columns) = (64, 128)
        func bytes(_ method: LayerCompression, _ q: Q) throws -> Int { try pack(method, q, rows, columns, bias: nil).storedBytes }
        XCTAssertEqual(try bytes(.dense, .int8(.channel)), rows * columns + 4 * rows)
        XCTAssertEqual(try bytes(.dense, .int8(.group(64))), rows * columns + 4 * rows * 2)
        XCTAssertEqual(try bytes(.dense, .bf16), 2 * rows * columns)
        // 2:4 int8: half the values at 1 byte, 2-bit positions (one 32-bit word per 16 rows and slot), row scales.
        XCTAssertEqual(try bytes(.nm(n: 2, m: 4), .int8Dynamic), rows * columns / 2 + rows * columns / 8 + 4 * rows)
        XCTAssertEqual(try bytes(.blast(blocks: 2, rank: 8, parameterRatio: nil, iterations: 5), .int8Dynamic),
                       8 * (rows + columns) + 4 * (rows + 2 * 8) + 4 * 2 * 2 * 8)
        // weight-only 2:4 with group 64 scales: the same values and positions, two scales per row
        XCTAssertEqual(try bytes(.nm(n: 2, m: 4), .int8(.group(64))), rows * columns / 2 + rows * columns / 8 + 4 * rows * 2)
        // CSR: 1 byte value + 4 byte column per kept weight, row starts, row scales
        let csr = try pack(.csr(density: 0.25), .int8(.channel), rows, columns, bias: nil)
        guard case .quantized(.csr(_, let rowStart, let cols, _)) = csr.form else { return XCTFail("not csr") }
        XCTAssertEqual(csr.storedBytes, cols.count * 5 + rowStart.count * 4 + 4 * rows)
    }

    /// `read` checks the quantized parts' dtypes and shapes (a scale tensor of the wrong shape names it).
    func testReadChecksQuantizedDtypesAndShapes() throws {
        let packed = try pack(.dense, .int8(.group(8)), 16, 32, bias: nil)
        var parts = packed.parts()
        XCTAssertEqual(parts.map(\.name), ["weight", "scales"])
        XCTAssertEqual(parts.map(\.dtype), [.i8, .f32])
        XCTAssertEqual(parts[1].shape, [16, 4])
        func read(_ parts: [PackedLayer.Part]) throws -> PackedLayer {
            var writer = SafeTensorsWriter()
            for p in parts { try writer.add("fc.dense.\(p.name)", dtype: p.dtype, shape: p.shape, bytes: p.data) }
            let file = try SafeTensors(data: writer.serialized(), source: "q.safetensors")
            return try PackedLayer.read(from: file, prefix: "fc.dense", layout: packed.layout, outputFeatures: 16, inputFeatures: 32, hasBias: false)
        }
        XCTAssertNoThrow(try read(parts))
        parts[1].shape = [4, 16]
        assertError(try read(parts), contains: ["q.safetensors", "'fc.dense.scales'", "shape is [4, 16], expected [16, 4]"])
        parts = packed.parts()
        parts[0].dtype = .u8
        assertError(try read(parts), contains: ["'fc.dense.weight'", "dtype is U8", "I8"])
    }

    func testCompositionsWithoutAKernelAreRefused() {
        assertError(try WeightQuantization.int8(.group(64)).check(.csr(density: 0.5), outputs: 8, inputs: 8),
                    contains: ["CSR int8 keeps one scale per output row", "\"channel\""])
        XCTAssertNoThrow(try WeightQuantization.int8Dynamic.check(.csr(density: 0.5), outputs: 8, inputs: 8))
        XCTAssertNoThrow(try WeightQuantization.int8(.channel).check(.csr(density: 0.5), outputs: 8, inputs: 8))
        XCTAssertNoThrow(try WeightQuantization.int8(.channel).check(.nm(n: 2, m: 4), outputs: 8, inputs: 8))
        assertError(try WeightQuantization.int8(.group(6)).check(.nm(n: 2, m: 4), outputs: 8, inputs: 8), contains: ["6 is not a multiple of 4"])
        assertError(try WeightQuantization.int8Dynamic.check(.nm(n: 4, m: 8), outputs: 8, inputs: 8), contains: ["1:4 and 2:4 only"])
        assertError(try WeightQuantization.int8(.group(64)).check(.blast(blocks: 2, rank: 2, parameterRatio: nil, iterations: 1), outputs: 8, inputs: 8),
                    contains: ["per rank component", "\"channel\""])
        assertError(try LayerCompression.quantized(.csr(density: 0.5), .bf16).validate(outputFeatures: 8, inputFeatures: 8), contains: ["CSR"])
        assertError(try LayerCompression.quantized(.l1inf(groups: .rows, radius: nil, radiusRatio: 0.5), .bf16).validate(outputFeatures: 8, inputFeatures: 8),
                    contains: ["ℓ1,∞"])
        XCTAssertNoThrow(try LayerCompression.quantized(.nm(n: 2, m: 4), .bf16).validate(outputFeatures: 8, inputFeatures: 8))
        XCTAssertEqual(LayerCompression.pinned(.quantized(.nm(n: 2, m: 4), .int8Dynamic)).unpinned.method, .nm(n: 2, m: 4))
        XCTAssertEqual(LayerCompression.pinned(.quantized(.dense, .bf16)).quantization, .bf16)
    }
}
