import SparseModels

/// How an encoder turns token states into sentence embeddings (mean or `[CLS]` pooling, then
/// optional L2 normalisation), with the backward pass of the end-to-end loss on them.
struct SentencePooling {
    var pooling: BertEncoderOptions.Pooling
    var normalize: Bool

    /// One embedding of `states.width` per sequence, row-major; and the norms before normalising.
    func embed(_ states: PackedStates) -> (embeddings: [Float], norms: [Float]) {
        let w = states.width
        var out = [Float](repeating: 0, count: states.spans.count * w), norms = [Float](repeating: 1, count: states.spans.count)
        for (i, s) in states.spans.enumerated() {
            let rows = pooling == .cls ? 1 : s.length
            for r in s.start ..< s.start + rows {
                for c in 0..<w { out[i * w + c] += states.values[r * w + c] / Float(rows) }
            }
            guard normalize else { continue }
            let norm = max(1e-12, out[i * w ..< (i + 1) * w].reduce(0) { $0 + $1 * $1 }.squareRoot())
            norms[i] = norm
            for c in 0..<w { out[i * w + c] /= norm }
        }
        return (out, norms)
    }

    /// Mean over sequences of ‖e − t‖² (2·(1 − cosine) for unit vectors), and d loss / d states.
    func loss(_ states: PackedStates, target: [Float]) -> (loss: Double, gradient: [Float]) {
        let w = states.width, count = states.spans.count
        let (e, norms) = embed(states)
        var gradient = [Float](repeating: 0, count: states.values.count), loss = 0.0
        for (i, s) in states.spans.enumerated() {
            var g = (0..<w).map { 2 * (e[i * w + $0] - target[i * w + $0]) / Float(count) }
            loss += (0..<w).reduce(0.0) { $0 + Double((e[i * w + $1] - target[i * w + $1]) * (e[i * w + $1] - target[i * w + $1])) }
            if normalize {
                // e = p / ‖p‖: dp = (g − e (e·g)) / ‖p‖.
                let eg = (0..<w).reduce(Float(0)) { $0 + e[i * w + $1] * g[$1] }
                for c in 0..<w { g[c] = (g[c] - e[i * w + c] * eg) / norms[i] }
            }
            let rows = pooling == .cls ? 1 : s.length
            for r in s.start ..< s.start + rows {
                for c in 0..<w { gradient[r * w + c] = g[c] / Float(rows) }
            }
        }
        return (loss / Double(count), gradient)
    }
}
