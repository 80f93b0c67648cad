import SparseKernels
import SparseModels

/// Compresses dense weights by their plan's methods, looking at the weights alone: magnitude N:M
/// and CSR masks, TSENOR transposable N:M masks, BLAST fits, ℓ1,∞ projection with compaction of
/// the neighbouring layers. Hand it to `ModelLoader` to compress at load, or to `ArtifactWriter`.
public struct WeightCompressor: LayerCompressor {
    public init() {}

    public func pack(chain layers: [DenseLinearLayer]) -> [Result<(packed: PackedLayer, relativeError: Double?), any Error>] {
        L1InfCompaction.pack(layers)
    }
}

extension LayerCompression {
    /// Compresses a row-major `outputFeatures × inputFeatures` weight on its own into the form its
    /// method stores (what an artifact holds; the operator is built from it). The relative error
    /// comes back when the form cannot give it (ℓ1,∞: the projection's, measured here).
    public func pack(weights w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?) throws -> (packed: PackedLayer, relativeError: Double?) {
        try validate(outputFeatures: outputFeatures, inputFeatures: inputFeatures)
        let form: PackedLayer.Form
        switch unpinned.method {
        case .dense, .pinned, .quantized:  // (unpinned has no quantization: it is applied to the packed form)
            form = .dense(weight: w)
        case let .nm(n, m):
            let mask = NMWeights.magnitudeKept(w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            form = .nm(n: n, m: m, transposable: false, values: values, indexWords: words)
        case let .transposableNM(n, m):
            let mask = try TransposableMask.mask(w, rows: outputFeatures, columns: inputFeatures, n: n, m: m)
            let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            form = .nm(n: n, m: m, transposable: true, values: values, indexWords: words)
        case let .csr(density):
            let op = CSRWeights(magnitudePruning: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, density: density)
            form = .csr(rowStart: op.rowStart, columns: op.columns, values: op.values)
        case let .blast(blocks, rank, ratio, iterations):
            let r = rank ?? Self.blastRank(blocks, ratio, outputFeatures, inputFeatures)
            let fit = try BlastFactorization(fitting: w, rows: outputFeatures, columns: inputFeatures, rowBlocks: blocks,
                                             columnBlocks: blocks, rank: r, iterations: iterations)
            form = .blast(rowBlocks: blocks, columnBlocks: blocks, rank: r, u: fit.u.map(Float.init), v: fit.v.map(Float.init), s: fit.s.map(Float.init))
        case .l1inf:
            // A layer on its own: kept inputs gathered, dropped neurons output activation(bias).
            // (Within a model, L1InfCompaction also shrinks the neighbouring layers.)
            let layer = DenseLinearLayer(name: "", weights: w, bias: bias, outputFeatures: outputFeatures, inputFeatures: inputFeatures, method: self)
            return try L1InfCompaction.pack([layer])[0].get()
        }
        return (PackedLayer(outputFeatures: outputFeatures, inputFeatures: inputFeatures, form: form, bias: bias), nil)
    }

    /// The operator for a row-major `outputFeatures × inputFeatures` weight and the relative
    /// Frobenius error ‖W − Ŵ‖ / ‖W‖ of what it keeps. Unless pinned, a compressed layer is timed
    /// against the dense form of the same weights and the faster one is used (see `BuiltLinearLayer`).
    public func makeOperator(weights w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?) throws -> (any LinearOperator, Double) {
        let dense = DenseLinearLayer(name: "", weights: w, bias: bias, outputFeatures: outputFeatures, inputFeatures: inputFeatures, method: self)
        let layer = try BuiltLinearLayer(compressing: dense, compressor: WeightCompressor())
        return (layer.op, layer.facts.relativeError)
    }
}
