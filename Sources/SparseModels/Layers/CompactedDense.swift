import SparseKernels

/// A dense layer that runs on a subset of its inputs and/or outputs, standing for a larger layer
/// whose ℓ1,∞ projection (or a neighbour's) zeroed whole columns or rows:
/// - `gather`: the input columns it reads (nil: all `inputFeatures`, in order);
/// - `scatter`: where its `inner.outputFeatures` results go in an `outputFeatures`-wide output, the
///   other outputs being dropped neurons that output the constant activation(bias).
/// Without `scatter` the output is just `inner`'s (the next layer reads the narrow output).
public final class CompactedDense: LinearOperator, @unchecked Sendable {
    /// Width of the input it is given and of the output it writes.
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// The dense weights (kept outputs × kept inputs) and folded bias that run.
    public let inner: DenseWeights
    public let gather: [Int]?
    public let scatter: Scatter?
    public let storage: String

    /// Kept outputs (`inner`'s rows, in order) and the dropped ones with their pre-activation
    /// constant (the bias).
    public struct Scatter: Sendable {
        public let kept: [Int]
        public let dropped: [Int]
        public let constants: [Float]

        package init(kept: [Int], dropped: [Int], constants: [Float]) {
            self.kept = kept
            self.dropped = dropped
            self.constants = constants
        }
    }

    package init(inner: DenseWeights, inputFeatures: Int, gather: [Int]?, scatter: Scatter?, storage: String) {
        precondition(gather.map { $0.count == inner.inputFeatures && $0.allSatisfy { (0..<inputFeatures).contains($0) } }
                     ?? (inputFeatures == inner.inputFeatures), "CompactedDense: gather does not match the inner layer")
        precondition(scatter.map { $0.kept.count == inner.outputFeatures } ?? true, "CompactedDense: scatter does not match the inner layer")
        self.inner = inner
        self.inputFeatures = inputFeatures
        self.outputFeatures = scatter.map { $0.kept.count + $0.dropped.count } ?? inner.outputFeatures
        self.gather = gather
        self.scatter = scatter
        self.storage = storage
    }

    public var parameterCount: Int { inner.parameterCount + (scatter?.constants.count ?? 0) }
    public var byteCount: Int {
        inner.byteCount + 4 * ((gather?.count ?? 0) + (scatter.map { $0.kept.count + 2 * $0.dropped.count } ?? 0))
    }
    public var flopsPerRow: Int { inner.flopsPerRow }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        precondition(rows >= 0 && inputStride >= 0 && outputStride >= outputFeatures, "\(storage).apply: bad strides")
        guard rows > 0 else { return }
        var source = x, sourceStride = inputStride
        var gathered: UnsafeMutablePointer<Float>?
        defer { gathered?.deallocate() }
        if let gather {
            let g = UnsafeMutablePointer<Float>.allocate(capacity: rows * gather.count)
            for r in 0..<rows {
                let row = x + r * inputStride, out = g + r * gather.count
                for (k, c) in gather.enumerated() { out[k] = row[c] }
            }
            gathered = g
            source = UnsafePointer(g)
            sourceStride = gather.count
        }
        guard let scatter else {
            inner.apply(source, rows: rows, inputStride: sourceStride, into: y, outputStride: outputStride,
                        activation: activation, pool: pool, isa: isa)
            return
        }
        let kept = scatter.kept.count
        let small = UnsafeMutablePointer<Float>.allocate(capacity: rows * kept)
        defer { small.deallocate() }
        inner.apply(source, rows: rows, inputStride: sourceStride, into: small, outputStride: kept,
                    activation: activation, pool: pool, isa: isa)
        var constants = scatter.constants
        activation.apply(to: &constants, isa: isa)
        for r in 0..<rows {
            let out = y + r * outputStride, row = small + r * kept
            for (k, o) in scatter.kept.enumerated() { out[o] = row[k] }
            for (d, o) in scatter.dropped.enumerated() { out[o] = constants[d] }
        }
    }
}
