import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// The data-aware fits against their weight-only counterparts on the loss they minimise,
/// ‖(W − Ŵ) Xᵀ‖ over calibration inputs X with strongly unequal, correlated features.
final class DataAwareFitTests: XCTestCase {
    /// Inputs whose features have scales spread over two orders of magnitude and shared factors.
    static func inputs(tokens: Int, features: Int, random: inout SeededRandom) -> [Float] {
        let scales = (0..<features).map { Float(pow(10, Double($0 % 7) / 3 - 1)) }
        let shared = random.array(tokens * 4)
        return (0..<tokens * features).map { i in
            let (t, f) = (i / features, i % features)
            return scales[f] * (random.next() + 0.8 * shared[t * 4 + f % 4])
        }
    }

    static func outputError(_ w: [Float], _ wHat: [Float], x: [Float], rows: Int, features: Int, tokens: Int) -> Double {
        var total = 0.0
        for t in 0..<tokens {
            for r in 0..<rows {
                var d = 0.0
                for c in 0..<features { d += Double(w[r * features + c] - wHat[r * features + c]) * Double(x[t * features + c]) }
                total += d * d
            }
        }
        return total.squareRoot()
    }

    static func statistics(_ x: [Float], tokens: Int, features: Int, dense: [Float]? = nil) throws -> InputStatistics {
        var s = InputStatistics(features: features, cross: dense != nil)
        try x.withUnsafeBufferPointer { xs in
            if let dense {
                try dense.withUnsafeBufferPointer { try s.add(xs.baseAddress!, dense: $0.baseAddress!, rows: tokens) }
            } else {
                try s.add(xs.baseAddress!, dense: nil, rows: tokens)
            }
        }
        s.finish()
        return s
    }

    /// The H-weighted (whitened) BLAST fit beats the weight-only fit on ‖(W − Ŵ)X‖.
    func testWhitenedBlastBeatsWeightOnlyOnOutputs() throws {
        var random = SeededRandom(seed: 61)
        let (rows, features, tokens) = (48, 64, 400)
        let w = random.array(rows * features), x = Self.inputs(tokens: tokens, features: features, random: &random)
        let s = try Self.statistics(x, tokens: tokens, features: features)
        let plain = try BlastFactorization(fitting: w, rows: rows, columns: features, rowBlocks: 4, columnBlocks: 4, rank: 8, iterations: 40)
        let whitened = try WhitenedBlast.fit(weights: w, rows: rows, columns: features, blocks: 4, rank: 8, iterations: 40, gram: s.gram)
        let ePlain = Self.outputError(w, try plain.makeOperator(bias: nil).denseWeights(), x: x, rows: rows, features: features, tokens: tokens)
        let eWhite = Self.outputError(w, try whitened.makeOperator(bias: nil).denseWeights(), x: x, rows: rows, features: features, tokens: tokens)
        XCTAssertLessThan(eWhite, 0.8 * ePlain, "whitened \(eWhite) vs weight-only \(ePlain)")
    }

    /// Data-aware 2:4 (OBS) beats activation (Wanda) beats magnitude on ‖(W − Ŵ)X‖, and the refit
    /// never makes it worse; masks stay exactly 2:4.
    func testSaliencyOrderingOnOutputs() throws {
        var random = SeededRandom(seed: 62)
        let (rows, features, tokens) = (32, 64, 500)
        let w = random.array(rows * features), x = Self.inputs(tokens: tokens, features: features, random: &random)
        let s = try Self.statistics(x, tokens: tokens, features: features, dense: x)
        var errors: [String: Double] = [:]
        for (saliency, refit) in [(CalibrationOptions.Saliency.magnitude, false), (.activation, false), (.hessian, false), (.hessian, true)] {
            let options = CalibrationOptions(saliency: saliency, refit: refit)
            let result = try XCTUnwrap(CalibratedLayer.compress(weights: w, bias: nil, outputs: rows, inputs: features,
                                                                method: .nm(n: 2, m: 4), statistics: s, options: options))
            let wHat = (result.op as! DenseWeights).unpackedWeights()
            for r in 0..<rows { for g in stride(from: 0, to: features, by: 4) {
                XCTAssertLessThanOrEqual((0..<4).filter { wHat[r * features + g + $0] != 0 }.count, 2)
            } }
            errors["\(saliency)\(refit ? "+refit" : "")"] = Self.outputError(w, wHat, x: x, rows: rows, features: features, tokens: tokens)
        }
        XCTAssertLessThan(errors["activation"]!, errors["magnitude"]!, "\(errors)")
        XCTAssertLessThan(errors["hessian"]!, errors["activation"]!, "\(errors)")
        XCTAssertLessThanOrEqual(errors["hessian+refit"]!, errors["hessian"]! * 1.0001, "\(errors)")
    }
}
