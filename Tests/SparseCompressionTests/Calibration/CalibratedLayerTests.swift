import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// One layer compressed from its calibration statistics: which methods it takes (the rest are the
/// weight-only compressor's), the mask each saliency chooses, the packed form running like the
/// operator the calibration pass continues with, and GPTQ rounding that keeps the mask.
/// (How much each saliency and the refit gain on the outputs: DataAwareFitTests.)
final class CalibratedLayerTests: XCTestCase {
    struct Fixture {
        let rows: Int, features: Int, tokens: Int
        let w: [Float], bias: [Float], x: [Float]
        let statistics: InputStatistics
    }

    /// A `rows × features` layer and calibration inputs with unequal, correlated features (the
    /// cross term too, so the refit runs).
    func fixture(rows: Int = 16, features: Int = 32, tokens: Int = 256, seed: UInt64 = 81) throws -> Fixture {
        var random = SeededRandom(seed: seed)
        let x = DataAwareFitTests.inputs(tokens: tokens, features: features, random: &random)
        let w = random.array(rows * features), bias = random.array(rows)
        let s = try DataAwareFitTests.statistics(x, tokens: tokens, features: features, dense: x)
        return Fixture(rows: rows, features: features, tokens: tokens, w: w, bias: bias, x: x, statistics: s)
    }

    func compress(_ f: Fixture, _ method: LayerCompression, _ options: CalibrationOptions = CalibrationOptions(),
                  bias: Bool = true) throws -> CalibratedLayer.Result? {
        try CalibratedLayer.compress(weights: f.w, bias: bias ? f.bias : nil, outputs: f.rows, inputs: f.features, method: method,
                                     statistics: f.statistics, options: options)
    }

    /// `op`'s outputs on the first `tokens` calibration inputs.
    func outputs(_ op: any LinearOperator, _ f: Fixture, tokens: Int = 32) -> [Float] {
        op.apply(Matrix(rows: tokens, columns: f.features, values: Array(f.x.prefix(tokens * f.features)))).values
    }

    /// The weight any operator multiplies by (rows × features), read off its outputs on the unit
    /// vectors minus its outputs on zero (the bias).
    func weights(of op: any LinearOperator) -> [Float] {
        let n = op.inputFeatures, m = op.outputFeatures
        var probe = [Float](repeating: 0, count: (n + 1) * n)
        for j in 0..<n { probe[j * n + j] = 1 }
        let y = op.apply(Matrix(rows: n + 1, columns: n, values: probe)).values
        return (0..<m * n).map { i in y[(i % n) * m + i / n] - y[n * m + i / n] }
    }

    func testRoundsInt8DenseNMAndCSRWithGPTQOnly() {
        let gptq = CalibrationOptions(), nearest = CalibrationOptions(rounding: .nearest)
        let int8 = WeightQuantization.int8(.channel)
        for method in [LayerCompression.dense, .nm(n: 2, m: 4), .transposableNM(n: 2, m: 4), .csr(density: 0.5)] {
            XCTAssertTrue(CalibratedLayer.rounds(.quantized(method, int8), gptq), "\(method)")
            XCTAssertTrue(CalibratedLayer.rounds(.quantized(method, .int8Dynamic), gptq), "\(method)")
            XCTAssertTrue(CalibratedLayer.rounds(.pinned(.quantized(method, .int8(.group(16)))), gptq), "\(method) pinned")
            XCTAssertFalse(CalibratedLayer.rounds(.quantized(method, int8), nearest), "\(method) nearest")
            XCTAssertFalse(CalibratedLayer.rounds(.quantized(method, .bf16), gptq), "\(method) bf16 rounds to nearest even")
            XCTAssertFalse(CalibratedLayer.rounds(method, gptq), "\(method) unquantized")
        }
        for method in [LayerCompression.blast(blocks: 2, rank: 2, parameterRatio: nil, iterations: 5),
                       .l1inf(groups: .rows, radius: nil, radiusRatio: 0.5)] {
            XCTAssertFalse(CalibratedLayer.rounds(.quantized(method, int8), gptq), "\(method)")
        }
    }

    func testTopMaskKeepsTheLargestScoresEarlierFirstOnTies() {
        XCTAssertEqual(CalibratedLayer.topMask([0.5, 2, 2, -1, 3], keep: 3), [0, 1, 1, 0, 1])
        XCTAssertEqual(CalibratedLayer.topMask([1, 1, 1], keep: 2), [1, 1, 0])
        XCTAssertEqual(CalibratedLayer.topMask([1, 2], keep: 0), [0, 0])
        XCTAssertEqual(CalibratedLayer.topMask([1, 2], keep: 5), [1, 1])
        XCTAssertEqual(CalibratedLayer.bytes([true, false, true]), [1, 0, 1])
    }

    func testMethodsLeftToTheWeightOnlyCompressor() throws {
        let f = try fixture(rows: 8, features: 16, tokens: 64)
        let magnitude = CalibrationOptions(saliency: .magnitude)
        XCTAssertNil(try compress(f, .dense))
        XCTAssertNil(try compress(f, .quantized(.dense, .bf16)))
        XCTAssertNil(try compress(f, .quantized(.dense, .int8(.channel)), CalibrationOptions(rounding: .nearest)))
        XCTAssertNil(try compress(f, .blast(blocks: 2, rank: 2, parameterRatio: nil, iterations: 5), magnitude))
        XCTAssertNil(try compress(f, .l1inf(groups: .rows, radius: nil, radiusRatio: 0.5), magnitude))
        XCTAssertNotNil(try compress(f, .quantized(.dense, .int8(.channel))), "dense int8 is rounded by GPTQ here")
    }

    /// Without compensation or refit, the mask is the largest |w|·‖x_j‖ (activation) or |w|
    /// (magnitude) and the kept weights are the layer's own.
    func testActivationAndMagnitudeSaliencyKeepTheLargestScores() throws {
        let f = try fixture()
        let norms = (0..<f.features).map { Float(f.statistics.gram[$0 * f.features + $0].squareRoot()) }
        let nm = try XCTUnwrap(try compress(f, .nm(n: 2, m: 4), CalibrationOptions(saliency: .activation, refit: false)))
        let scores = (0..<f.w.count).map { abs(f.w[$0]) * norms[$0 % f.features] }
        let kept = NMWeights.magnitudeKept(scores, outputFeatures: f.rows, inputFeatures: f.features, n: 2, m: 4)
        XCTAssertEqual(try XCTUnwrap(nm.op as? DenseWeights).unpackedWeights(), zip(f.w, kept).map { $1 ? $0 : 0 })
        XCTAssertEqual(nm.packed.bias, f.bias, "no refit: the bias is the layer's")
        XCTAssertEqual(nm.packed.layout, .nm(n: 2, m: 4, transposable: false))

        let csr = try XCTUnwrap(try compress(f, .csr(density: 0.25), CalibrationOptions(saliency: .magnitude, refit: false), bias: false))
        let top = Set(f.w.indices.sorted { abs(f.w[$0]) > abs(f.w[$1]) }.prefix(f.w.count / 4))
        XCTAssertEqual(weights(of: csr.op), f.w.indices.map { top.contains($0) ? f.w[$0] : 0 })
        guard case let .csr(rowStart, columns, values) = csr.packed.form else { return XCTFail("not CSR: \(csr.packed.layout)") }
        XCTAssertEqual(values.count, f.w.count / 4)
        XCTAssertEqual(rowStart.count, f.rows + 1)
        XCTAssertEqual(Int(rowStart.last!), values.count)
        for r in 0..<f.rows {
            let cols = columns[Int(rowStart[r])..<Int(rowStart[r + 1])].map(Int.init)
            XCTAssertEqual(cols, cols.sorted(), "row \(r) columns in order")
            XCTAssertEqual(Set(cols), Set((0..<f.features).filter { top.contains(r * f.features + $0) }), "row \(r)")
        }
        XCTAssertNil(csr.packed.bias)
        XCTAssertFalse(csr.packed.sourceHasBias)
    }

    /// The stored form of every data-aware method runs like the operator calibration goes on with.
    func testPackedFormRunsLikeTheCalibrationOperator() throws {
        let f = try fixture()
        let methods: [(LayerCompression, PackedLayer.Layout)] = [
            (.nm(n: 2, m: 4), .nm(n: 2, m: 4, transposable: false)),
            (.transposableNM(n: 2, m: 4), .nm(n: 2, m: 4, transposable: true)),
            (.csr(density: 0.3), .csr),
            (.blast(blocks: 2, rank: 4, parameterRatio: nil, iterations: 10), .blast(rowBlocks: 2, columnBlocks: 2, rank: 4)),
            (.blast(blocks: 2, rank: nil, parameterRatio: 0.5, iterations: 10),
             .blast(rowBlocks: 2, columnBlocks: 2, rank: LayerCompression.blastRank(2, 0.5, 16, 32))),
            (.l1inf(groups: .columns, radius: nil, radiusRatio: 0.5), .dense),
        ]
        for (method, layout) in methods {
            for options in [CalibrationOptions(), CalibrationOptions(saliency: .activation, refit: false)] {
                let result = try XCTUnwrap(try compress(f, method, options), "\(method)")
                XCTAssertEqual(result.packed.layout, layout, "\(method)")
                XCTAssertEqual([result.packed.outputFeatures, result.packed.inputFeatures], [f.rows, f.features])
                let stored = outputs(try result.packed.makeOperator(), f), running = outputs(result.op, f)
                let scale = running.map(abs).max() ?? 1
                for i in stored.indices {
                    XCTAssertEqual(stored[i], running[i], accuracy: 1e-4 * scale, "\(method) \(options.saliency) output \(i)")
                }
            }
        }
    }

    /// The OBS sweep: exactly n of m per group, pruned weights zero, kept weights compensated (they
    /// move); transposable masks hold per row and column.
    func testHessianPruningKeepsExactMasksAndCompensates() throws {
        let f = try fixture()
        let options = CalibrationOptions(refit: false)
        let nm = try XCTUnwrap(try compress(f, .nm(n: 2, m: 4), options))
        let w = weights(of: nm.op)
        for r in 0..<f.rows {
            for g in stride(from: 0, to: f.features, by: 4) {
                XCTAssertEqual((0..<4).filter { w[r * f.features + g + $0] != 0 }.count, 2, "row \(r) group \(g)")
            }
        }
        let moved = w.indices.filter { w[$0] != 0 && abs(w[$0] - f.w[$0]) > 1e-4 }.count
        XCTAssertGreaterThan(moved, w.count / 4, "the kept weights carry the pruned ones' error")

        let t = try XCTUnwrap(try compress(f, .transposableNM(n: 2, m: 4), options))
        let op = try XCTUnwrap(try t.packed.makeOperator() as? NMWeights)
        XCTAssertNil(PackedLayer.transposableProblem(op.keptMask(), rows: f.rows, columns: f.features, n: 2, m: 4))
    }

    /// A width that m does not divide (a conv window of 6 inputs): the saliency mask per group, the
    /// last group partial, then the same compensation; the pack takes it.
    func testNMOnAWidthThatMDoesNotDivide() throws {
        let f = try fixture(rows: 16, features: 6, tokens: 128)
        let result = try XCTUnwrap(try compress(f, .nm(n: 2, m: 4)))
        let w = weights(of: result.op)
        for r in 0..<f.rows {
            XCTAssertEqual((0..<4).filter { w[r * 6 + $0] != 0 }.count, 2, "row \(r), first group")
            XCTAssertEqual((4..<6).filter { w[r * 6 + $0] != 0 }.count, 2, "row \(r), a group of two keeps both")
        }
        let stored = outputs(try result.packed.makeOperator(), f), running = outputs(result.op, f)
        for i in stored.indices { XCTAssertEqual(stored[i], running[i], accuracy: 1e-4, "output \(i)") }
    }

    /// GPTQ rounding of an N:M layer (int8 weights, int8 dynamic activations: the 2:4 int8 kernel)
    /// keeps the fp32 result's mask and stores int8 values, one scale per row.
    func testGPTQRoundingKeepsTheMask() throws {
        let f = try fixture()
        let fp32 = try XCTUnwrap(try compress(f, .nm(n: 2, m: 4)))
        let int8 = try XCTUnwrap(try compress(f, .quantized(.nm(n: 2, m: 4), .int8Dynamic)))
        XCTAssertEqual(int8.packed.layout, .quantized(.nm(n: 2, m: 4, transposable: false), .int8Dynamic))
        let (wf, wq) = (weights(of: fp32.op), weights(of: int8.op))
        for i in wf.indices where wf[i] == 0 { XCTAssertEqual(wq[i], 0, "weight \(i) pruned in fp32 stays pruned") }
        for r in 0..<f.rows {
            for g in stride(from: 0, to: f.features, by: 4) {
                XCTAssertLessThanOrEqual((0..<4).filter { wq[r * f.features + g + $0] != 0 }.count, 2, "row \(r) group \(g)")
            }
        }
        XCTAssertGreaterThan(wq.filter { $0 != 0 }.count, wq.count / 2 - wq.count / 16, "few kept weights round to 0")
        guard case .quantized(.nm(_, _, _, _, .int8(_, let scales), _)) = int8.packed.form else { return XCTFail("not int8 N:M") }
        XCTAssertEqual(scales.count, f.rows, "one scale per row")
        for r in 0..<f.rows {
            for v in wq[r * f.features ..< (r + 1) * f.features] {
                XCTAssertEqual(v / scales[r], (v / scales[r]).rounded(), accuracy: 2e-3, "row \(r): an int8 level")
            }
        }
        let stored = outputs(try int8.packed.makeOperator(), f), running = outputs(int8.op, f)
        for i in stored.indices { XCTAssertEqual(stored[i], running[i], accuracy: 1e-4, "output \(i)") }
    }
}
