import Foundation
import SparseKernels

/// Bi-level ℓ1,∞ projection (Perez & Barlaud): the per-group maxima v_g = max |w| of a weight's
/// columns (inputs) or rows (neurons) are projected onto the ℓ1 ball of radius η, and every entry
/// is clipped to its group's new bound. Groups whose bound falls to 0 vanish, so the layer can be
/// compacted: dropped inputs are skipped by gathering the kept ones, dropped neurons output the
/// constant activation(bias).
public enum L1InfProjection {
    public enum Groups: String, Sendable { case columns, rows }

    /// Projects a row-major rows × columns weight; `radius` η, or `radiusRatio` ρ with η = ρ·Σ v_g.
    public static func project(_ w: [Float], rows: Int, columns: Int, groups: Groups, radius: Double?, radiusRatio: Double?) -> [Float] {
        let count = groups == .columns ? columns : rows
        var maxima = [Double](repeating: 0, count: count)
        for r in 0..<rows { for c in 0..<columns {
            let g = groups == .columns ? c : r
            maxima[g] = max(maxima[g], Double(abs(w[r * columns + c])))
        } }
        let eta = radius ?? (radiusRatio ?? 0.5) * maxima.reduce(0, +)
        let bounds = projectOntoL1Ball(maxima, radius: eta)
        var out = w
        for r in 0..<rows { for c in 0..<columns {
            let bound = Float(bounds[groups == .columns ? c : r])
            out[r * columns + c] = max(-bound, min(bound, w[r * columns + c]))
        } }
        return out
    }

    /// Euclidean projection of a non-negative vector onto {u ≥ 0, Σ u ≤ η} (sort-based threshold).
    public static func projectOntoL1Ball(_ v: [Double], radius eta: Double) -> [Double] {
        guard v.reduce(0, +) > eta else { return v }
        guard eta > 0 else { return v.map { _ in 0 } }
        let sorted = v.sorted(by: >)
        var cumulative = 0.0, theta = 0.0
        for (k, value) in sorted.enumerated() {
            cumulative += value
            let t = (cumulative - eta) / Double(k + 1)
            if value - t > 0 { theta = t } else { break }
        }
        return v.map { max(0, $0 - theta) }
    }
}

/// A dense layer that runs only on the inputs (columns) or outputs (rows) an ℓ1,∞ projection kept.
final class CompactedDense: LinearOperator, @unchecked Sendable {
    let inputFeatures: Int
    let outputFeatures: Int
    let keptInputs: [Int]?
    let keptOutputs: [Int]?
    let inner: DenseWeights
    /// Pre-activation value of every dropped neuron (its bias).
    let droppedBias: [(index: Int, value: Float)]
    let storage: String

    /// Builds from projected weights, dropping all-zero columns or rows.
    init(projected w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?, groups: L1InfProjection.Groups) {
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        if groups == .columns {
            let kept = (0..<inputFeatures).filter { c in (0..<outputFeatures).contains { w[$0 * inputFeatures + c] != 0 } }
            let keep = kept.isEmpty ? [0] : kept
            var small = [Float](repeating: 0, count: outputFeatures * keep.count)
            for r in 0..<outputFeatures { for (k, c) in keep.enumerated() { small[r * keep.count + k] = w[r * inputFeatures + c] } }
            inner = DenseWeights(weights: small, outputFeatures: outputFeatures, inputFeatures: keep.count, bias: bias)
            keptInputs = keep
            keptOutputs = nil
            droppedBias = []
            storage = "l1inf: \(keep.count)/\(inputFeatures) inputs kept, dense"
        } else {
            let kept = (0..<outputFeatures).filter { r in (0..<inputFeatures).contains { w[r * inputFeatures + $0] != 0 } }
            let keep = kept.isEmpty ? [0] : kept
            var small = [Float](repeating: 0, count: keep.count * inputFeatures)
            for (k, r) in keep.enumerated() { for c in 0..<inputFeatures { small[k * inputFeatures + c] = w[r * inputFeatures + c] } }
            inner = DenseWeights(weights: small, outputFeatures: keep.count, inputFeatures: inputFeatures, bias: bias.map { b in keep.map { b[$0] } })
            keptInputs = nil
            keptOutputs = keep
            let keptSet = Set(keep)
            droppedBias = (0..<outputFeatures).filter { !keptSet.contains($0) }.map { ($0, bias?[$0] ?? 0) }
            storage = "l1inf: \(keep.count)/\(outputFeatures) neurons kept, dense"
        }
    }

    var parameterCount: Int { inner.parameterCount + droppedBias.count }
    var byteCount: Int { inner.byteCount + droppedBias.count * 4 }

    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, activation: Activation, isa: InstructionSet) {
        if let kept = keptInputs {
            let gathered = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * kept.count))
            defer { gathered.deallocate() }
            for r in 0..<rows { for (k, c) in kept.enumerated() { gathered[r * kept.count + k] = x[r * inputFeatures + c] } }
            inner.apply(gathered, rows: rows, into: y, activation: activation, isa: isa)
            return
        }
        let kept = keptOutputs!
        let small = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * kept.count))
        defer { small.deallocate() }
        inner.apply(x, rows: rows, into: small, activation: activation, isa: isa)
        var constants = droppedBias.map(\.value)
        activation.apply(to: &constants, isa: isa)
        for r in 0..<rows {
            for (k, o) in kept.enumerated() { y[r * outputFeatures + o] = small[r * kept.count + k] }
            for (d, entry) in droppedBias.enumerated() { y[r * outputFeatures + entry.index] = constants[d] }
        }
    }
}
