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

/// The dense form of compressed weights, chosen because it timed faster on this machine.
final class ChosenDense: LinearOperator, @unchecked Sendable {
    let dense: DenseWeights
    let storage: String
    init(_ dense: DenseWeights, instead compressed: String, sparseMicroseconds: Double, denseMicroseconds: Double) {
        self.dense = dense
        storage = "dense (\(compressed) timed slower: \(Int(sparseMicroseconds.rounded())) vs \(Int(denseMicroseconds.rounded())) µs)"
    }
    var inputFeatures: Int { dense.inputFeatures }
    var outputFeatures: Int { dense.outputFeatures }
    var parameterCount: Int { dense.parameterCount }
    var byteCount: Int { dense.byteCount }
    var flopsPerRow: Int { dense.flopsPerRow }
    /// The dense kernel's own strided, pool-splitting call (no copies of strided rows, split by
    /// output panels like any dense layer).
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        dense.apply(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation, pool: pool,
                    isa: isa)
    }
}
