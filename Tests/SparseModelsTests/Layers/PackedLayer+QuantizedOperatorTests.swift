import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
import SparseCompression

/// The kernels quantized stored forms run on: a dense format is exactly the kernel built from the
/// same weights, and broken values, scales, indices and factor scales are refused naming the part.
final class PackedLayerQuantizedOperatorTests: XCTestCase {
    typealias Q = WeightQuantization

    func pack(_ method: LayerCompression, _ q: Q, _ rows: Int, _ columns: Int, bias: [Float]?) throws -> PackedLayer {
        try PackedLayerQuantizedTests.packed(method, q, rows, columns, bias: bias)
    }

    /// A quantized dense layer is exactly the kernel operator built from the same weights.
    func testDenseFormatsAreTheKernelOperators() throws {
        let (rows, columns) = (40, 66)
        let w = PackedLayerTests.weight(rows, columns), bias = PackedLayerTests.bias(rows)
        let x = Matrix(rows: 7, columns: columns, values: PackedLayerTests.weight(7, columns, seed: 3))
        let kernels: [(Q, any LinearOperator)] = [
            (.int8(.channel), try Int8Weights(weights: w, outputFeatures: rows, inputFeatures: columns, granularity: .channel, bias: bias)),
            (.int8(.group(64)), try Int8Weights(weights: w, outputFeatures: rows, inputFeatures: columns, granularity: .group(64), bias: bias)),
            (.int8Dynamic, try Int8DynamicWeights(weights: w, outputFeatures: rows, inputFeatures: columns, bias: bias)),
            (.bf16, try BF16Weights(weights: w, outputFeatures: rows, inputFeatures: columns, bias: bias)),
        ]
        for (q, kernel) in kernels {
            let op = try pack(.dense, q, rows, columns, bias: bias).makeOperator()
            XCTAssertEqual(op.apply(x, activation: .relu).values, kernel.apply(x, activation: .relu).values, "\(q)")
        }
        let nm = try pack(.nm(n: 2, m: 4), .int8Dynamic, rows, columns, bias: bias).makeOperator()
        let kernel = try NMInt8Weights(magnitudePruning: w, outputFeatures: rows, inputFeatures: columns, bias: bias)
        XCTAssertEqual(nm.apply(x).values, kernel.apply(x).values)
        let source = try NMWeights(magnitudePruning: w, outputFeatures: rows, inputFeatures: columns, n: 2, m: 4, bias: bias)
        for granularity in [Int8Granularity.channel, .group(32)] {
            let weightOnly = try pack(.nm(n: 2, m: 4), .int8(granularity), rows, columns, bias: bias).makeOperator()
            let direct = try NMWeightOnlyInt8Weights(source, granularity: granularity)
            XCTAssertEqual(weightOnly.apply(x, activation: .relu).values, direct.apply(x, activation: .relu).values, "2:4 \(granularity)")
        }
    }

    func testBrokenQuantizedFormsAreRefusedNamingThePart() throws {
        let dense = try pack(.dense, .int8(.channel), 8, 16, bias: nil)
        guard case .quantized(.dense(let q, .int8(let values, let scales))) = dense.form else { return XCTFail() }
        func denseWith(_ v: [Int8] = values, _ s: [Float] = scales, _ scheme: Q? = nil) -> PackedLayer {
            PackedLayer(outputFeatures: 8, inputFeatures: 16, form: .quantized(.dense(scheme ?? q, .int8(values: v, scales: s))), bias: nil)
        }
        for bad: Float in [.nan, 0, -1, .infinity] {
            var s = scales
            s[3] = bad
            assertFormError(denseWith(values, s), part: "scales", contains: ["scale 3 is", "finite and positive"])
        }
        var low = values
        low[5] = -128
        assertFormError(denseWith(low), part: "weight", contains: ["value 5 is -128"])
        assertFormError(denseWith(values, Array(scales.dropLast())), part: "scales", contains: ["7 scales, expected 8"])
        assertFormError(denseWith(values, scales, .bf16), part: "weight", contains: ["do not match bf16"])
        let bf16 = PackedLayer(outputFeatures: 2, inputFeatures: 2, form: .quantized(.dense(.bf16, .bf16(bits: [0x3F80, 0x7F80, 0, 0]))), bias: nil)
        assertFormError(bf16, part: "weight", contains: ["element 1 is not a finite bf16"])

        let nm = try pack(.nm(n: 2, m: 4), .int8Dynamic, 32, 32, bias: nil)
        guard case let .quantized(.nm(n, m, _, scheme, nmValues, words)) = nm.form else { return XCTFail() }
        var repeated = words
        repeated[1] = (repeated[1] & ~3) | (repeated[0] & 3)
        let broken = PackedLayer(outputFeatures: 32, inputFeatures: 32, form: .quantized(.nm(n: n, m: m, transposable: false, scheme, nmValues,
                                                                                              indexWords: repeated)), bias: nil)
        assertFormError(broken, part: "indices", contains: ["used twice"])
        let weightOnly = PackedLayer(outputFeatures: 32, inputFeatures: 32, form: .quantized(.nm(n: n, m: m, transposable: false, .int8(.channel),
                                                                                                  nmValues, indexWords: words)), bias: nil)
        XCTAssertEqual(try weightOnly.makeOperator().storage, "nm 2:4 int8 channel")
        guard case .int8(let nmInt8, let nmScales) = nmValues else { return XCTFail() }
        let grouped = PackedLayer(outputFeatures: 32, inputFeatures: 32, form: .quantized(.nm(n: n, m: m, transposable: false, .int8(.group(16)),
                                                                                               nmValues, indexWords: words)), bias: nil)
        assertFormError(grouped, part: "scales", contains: ["32 scales, expected 64"])
        var zeroScale = nmScales
        zeroScale[7] = 0
        let badNM = PackedLayer(outputFeatures: 32, inputFeatures: 32, form: .quantized(.nm(n: n, m: m, transposable: false, .int8(.channel),
                                                                                             .int8(values: nmInt8, scales: zeroScale), indexWords: words)), bias: nil)
        assertFormError(badNM, part: "scales", contains: ["scale 7 is 0.0"])
        let bf16Scheme = PackedLayer(outputFeatures: 32, inputFeatures: 32, form: .quantized(.nm(n: n, m: m, transposable: false, .bf16,
                                                                                                  nmValues, indexWords: words)), bias: nil)
        assertFormError(bf16Scheme, part: "values", contains: ["no kernel runs 2:4 with bf16"])

        let blast = try pack(.blast(blocks: 2, rank: 3, parameterRatio: nil, iterations: 5), .int8Dynamic, 16, 16, bias: nil)
        guard case let .quantized(.blast(b1, b2, r, bq, u, .int8(vValues, vScales), s)) = blast.form else { return XCTFail() }
        var nanScales = vScales
        nanScales[2] = .nan
        let badV = PackedLayer(outputFeatures: 16, inputFeatures: 16, form: .quantized(.blast(rowBlocks: b1, columnBlocks: b2, rank: r, bq, u: u,
                                                                                              v: .int8(values: vValues, scales: nanScales), s: s)), bias: nil)
        assertFormError(badV, part: "V_scales", contains: ["scale 2 is nan"])
    }
}
