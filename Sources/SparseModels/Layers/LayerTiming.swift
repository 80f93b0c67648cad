import Foundation
import SparseKernels

/// Times a layer on its real shape: best of 5 runs at 1 row plus best of 3 at 32 rows, in µs.
enum LayerTiming {
    static func microseconds(_ op: any LinearOperator) -> Double {
        var total = 0.0
        for (rows, runs) in [(1, 5), (32, 3)] {
            let x = [Float](repeating: 0.5, count: rows * op.inputFeatures)
            var y = [Float](repeating: 0, count: rows * op.outputFeatures)
            var best = Double.infinity
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                x.withUnsafeBufferPointer { xs in
                    y.withUnsafeMutableBufferPointer { ys in op.apply(xs.baseAddress!, rows: rows, into: ys.baseAddress!, activation: .none, isa: .current) }
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
            }
            total += best
        }
        return total
    }
}

extension LayerTiming {
    /// Times `compressed` and `dense` (the same weights); the dense one runs when it takes under
    /// 0.9 of the compressed one's time.
    static func choose(_ compressed: any LinearOperator, over dense: any LinearOperator) -> LayerTimingChoice {
        let sparseTime = microseconds(compressed), denseTime = microseconds(dense)
        return LayerTimingChoice(compressedMicroseconds: sparseTime, denseMicroseconds: denseTime, runsDense: denseTime < 0.9 * sparseTime)
    }
}

/// An operator shown under another `storage` description (e.g. with the timing that chose it).
class Relabeled: LinearOperator, @unchecked Sendable {
    let base: any LinearOperator
    let storage: String

    init(_ base: any LinearOperator, storage: String) {
        self.base = base
        self.storage = storage
    }

    /// `chosen` run instead of the compressed operator `instead`, labelled with the timing that chose it.
    convenience init(_ chosen: any LinearOperator, instead compressed: String, timing: LayerTimingChoice) {
        self.init(chosen, storage: Relabeled.timed(chosen.storage, over: compressed, slowerMicroseconds: timing.compressedMicroseconds,
                                                   microseconds: timing.denseMicroseconds))
    }

    /// `chosen`'s description with why it was chosen: "<chosen> (<slower> timed slower: 13 vs 9 µs)".
    static func timed(_ chosen: String, over slower: String, slowerMicroseconds: Double, microseconds: Double) -> String {
        "\(chosen) (\(slower) timed slower: \(Int(slowerMicroseconds.rounded())) vs \(Int(microseconds.rounded())) µs)"
    }

    var inputFeatures: Int { base.inputFeatures }
    var outputFeatures: Int { base.outputFeatures }
    var parameterCount: Int { base.parameterCount }
    var byteCount: Int { base.byteCount }
    var flopsPerRow: Int { base.flopsPerRow }

    /// The base operator's own strided, pool-splitting call (for dense weights: no copies of
    /// strided rows, split by output panels like any dense layer).
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        base.apply(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation, pool: pool, isa: isa)
    }
}

/// The dense form of compressed weights, chosen because it timed faster on this machine.
final class ChosenDense: Relabeled, @unchecked Sendable {
    let dense: DenseWeights

    init(_ dense: DenseWeights, instead compressed: String, sparseMicroseconds: Double, denseMicroseconds: Double) {
        self.dense = dense
        super.init(dense, storage: Relabeled.timed(dense.storage, over: compressed, slowerMicroseconds: sparseMicroseconds,
                                                   microseconds: denseMicroseconds))
    }
}
