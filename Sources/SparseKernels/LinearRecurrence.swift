/// A diagonal linear recurrence over `steps` time steps,
///
///     h_t = a ⊙ h_{t−1} + B·x_t + b,   h_{−1} = 0,
///
/// as a `LinearOperator` from a time-major input row (`steps × B.inputFeatures`) to the states
/// (`steps × D`, or only the last state, `D`, when `lastOnly`), D = `B.outputFeatures`. Two forms
/// compute the same map:
///
/// - `RecurrenceScan`: one call of `B` (any `LinearOperator`, so N:M/CSR-compressed too) over all
///   steps of all rows, then the scan over time in place — O(T·D·C) work, but T dependent steps.
/// - `LinearRecurrence.lowerTriangular`: the unrolled matrix, block (t, s) = diag(a)^{t−s}·B for
///   s ≤ t and 0 above the diagonal, with the accumulated bias Σ_{s≤t} a^{t−s} b — one GEMM per
///   batch, O(T²·D·C) work; worth it only for short sequences.
public enum LinearRecurrence {
    /// The unrolled recurrence as a dense lower-block-triangular matrix, row-major
    /// `(lastOnly ? D : steps·D) × steps·C`, and its per-output bias (nil when `bias` is nil).
    /// `weight` is B, row-major `D × C`; powers of `a` are accumulated in Double.
    public static func lowerTriangular(weight: [Float], bias: [Float]?, decay: [Float], steps: Int,
                                       lastOnly: Bool) -> (weights: [Float], bias: [Float]?) {
        let d = decay.count, c = weight.count / max(1, d)
        precondition(d > 0 && steps > 0 && weight.count == d * c && (bias?.count ?? d) == d,
                     "lowerTriangular: weight \(weight.count), bias \(bias?.count ?? 0), decay \(d), steps \(steps)")
        let outSteps = lastOnly ? 1 : steps, columns = steps * c
        var w = [Float](repeating: 0, count: outSteps * d * columns)
        var b: [Float]? = bias.map { _ in [Float](repeating: 0, count: outSteps * d) }
        for row in 0..<outSteps {
            let t = lastOnly ? steps - 1 : row
            for o in 0..<d {
                let a = Double(decay[o])
                var power = 1.0  // a^(t − s), for s from t down to 0
                var biasSum = 0.0
                for s in stride(from: t, through: 0, by: -1) {
                    let out = (row * d + o) * columns + s * c
                    for i in 0..<c { w[out + i] = Float(power * Double(weight[o * c + i])) }
                    if let bias { biasSum += power * Double(bias[o]) }
                    power *= a
                }
                b?[row * d + o] = Float(biasSum)
            }
        }
        return (w, b)
    }
}

/// The scan form of a `LinearRecurrence` (see there): `input` is B (`D × C`, any operator; its own
/// bias, if it has one, adds to b), `bias` is b, `decay` is a.
public final class RecurrenceScan: LinearOperator, @unchecked Sendable {
    public let input: any LinearOperator
    public let bias: [Float]?
    public let decay: [Float]
    public let steps: Int
    public let lastOnly: Bool

    public init(input: any LinearOperator, bias: [Float]? = nil, decay: [Float], steps: Int, lastOnly: Bool = false) {
        precondition(steps > 0 && decay.count == input.outputFeatures && (bias?.count ?? decay.count) == decay.count,
                     "RecurrenceScan: \(decay.count) decay values, \(bias?.count ?? 0) biases for \(input.outputFeatures) states, \(steps) steps")
        self.input = input
        self.bias = bias
        self.decay = decay
        self.steps = steps
        self.lastOnly = lastOnly
    }

    public var inputFeatures: Int { steps * input.inputFeatures }
    public var outputFeatures: Int { (lastOnly ? 1 : steps) * input.outputFeatures }
    public var storage: String { "recurrence scan T=\(steps) [\(input.storage)]" }
    public var parameterCount: Int { input.parameterCount + decay.count + (bias?.count ?? 0) }
    public var byteCount: Int { input.byteCount + (decay.count + (bias?.count ?? 0)) * MemoryLayout<Float>.stride }
    public var flopsPerRow: Int { steps * (input.flopsPerRow + 2 * input.outputFeatures) }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let d = input.outputFeatures, c = input.inputFeatures, t = steps
        // u = B·x_t for every step of every row: one call, the steps of a row are its
        // consecutive C-wide slices (row stride C), rows follow at `inputStride`.
        let u = UnsafeMutablePointer<Float>.allocate(capacity: rows * t * d)
        defer { u.deallocate() }
        if inputStride == inputFeatures {
            input.apply(x, rows: rows * t, inputStride: c, into: u, outputStride: d, activation: .none, pool: pool, isa: isa)
        } else {
            for r in 0..<rows {
                input.apply(x + r * inputStride, rows: t, inputStride: c, into: u + r * t * d, outputStride: d,
                            activation: .none, pool: pool, isa: isa)
            }
        }
        let split = pool?.shouldSplit(flops: Double(rows * t * 3 * d), rows: rows) ?? false
        let us = UnsafeSendableMutablePointer(u), ys = UnsafeSendableMutablePointer(y)
        let lastOnly = self.lastOnly, count = lastOnly ? d : t * d
        // a and b side by side (b zero without a bias): one allocation, one code path.
        let coefficients = UnsafeMutablePointer<Float>.allocate(capacity: 2 * d)
        defer { coefficients.deallocate() }
        coefficients.initialize(from: decay, count: d)
        (coefficients + d).initialize(from: bias ?? [Float](repeating: 0, count: d), count: d)
        let ab = UnsafeSendablePointer(coefficients)
        (pool ?? KernelPool.serial).forEachRange(units: rows, split: split) { range in
            for r in range {
                let h = us.pointer + r * t * d, out = ys.pointer + r * outputStride
                RecurrenceScan.scan(h, steps: t, width: d, decay: ab.pointer, bias: ab.pointer + d)
                out.update(from: lastOnly ? h + (t - 1) * d : h, count: count)
                activation.apply(out, count: count, isa: isa)
            }
        }
    }

    /// h[0] += b, then h[t] += b + a ⊙ h[t−1] for t = 1..<steps, in place over `steps × width` values.
    @inline(__always)
    static func scan(_ h: UnsafeMutablePointer<Float>, steps: Int, width: Int, decay a: UnsafePointer<Float>,
                     bias b: UnsafePointer<Float>) {
        for i in 0..<width { h[i] += b[i] }
        var previous = h
        for _ in 1..<max(1, steps) {
            let current = previous + width
            for i in 0..<width { current[i] += b[i] + a[i] * previous[i] }
            previous = current
        }
    }
}
