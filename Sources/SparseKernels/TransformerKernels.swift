import CSparseKernels

/// Transformer-encoder kernels over row-major float buffers (one row per token): residual add +
/// LayerNorm, multi-head self-attention over a batch of sequences of different lengths, mean
/// pooling. The C kernels run on `isa` (lowered to what the CPU supports).
public enum TransformerKernels {
    /// One sequence of a batch: its rows `start ..< start + length` of the token matrices.
    public struct Sequence: Sendable, Equatable {
        public var start: Int
        public var length: Int
        public init(start: Int, length: Int) {
            self.start = start
            self.length = length
        }
    }

    /// `x[r] = LayerNorm(x[r] + residual[r]) · gamma + beta` for `rows` rows of `columns` values, in
    /// place. `residual`, `gamma` and `beta` may be nil (no residual, 1, 0).
    public static func addLayerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowStride: Int? = nil,
                                    residual: UnsafePointer<Float>? = nil, residualStride: Int? = nil,
                                    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                    isa: InstructionSet = .current) {
        ss_tf_add_layer_norm_isa(isa.cValue, x, rowStride ?? columns, residual, residualStride ?? columns,
                                 rows, columns, gamma, beta, epsilon)
    }

    /// Multi-head self-attention: for every sequence and head h, output columns
    /// `h·d ..< (h+1)·d` of the sequence's rows become `softmax(scale · Q_h K_hᵀ) V_h`, with Q_h,
    /// K_h, V_h the same columns of `query`, `key`, `value`. Only the sequence's own rows take part
    /// (rows between sequences, e.g. padding, are neither read nor written). With a `pool`, the
    /// (sequence, head) pairs are split across its threads by cost (length² each) when the call
    /// is large enough to pay for the hand-off. With `exp`, a piecewise-linear table for exp on
    /// [lo, 0] replaces the exact exp of the softmax (see `ss_pwl_softmax_rows_isa`).
    public static func attention(query: UnsafePointer<Float>, queryStride: Int,
                                 key: UnsafePointer<Float>, keyStride: Int,
                                 value: UnsafePointer<Float>, valueStride: Int,
                                 output: UnsafeMutablePointer<Float>, outputStride: Int,
                                 sequences: [Sequence], heads: Int, headDimension: Int, scale: Float,
                                 exp: PWLActivation? = nil, pool: KernelPool? = nil, isa: InstructionSet = .current) {
        precondition(heads > 0 && headDimension > 0, "attention needs heads and a head dimension")
        let width = heads * headDimension
        precondition(queryStride >= width && keyStride >= width && valueStride >= width && outputStride >= width,
                     "attention: row strides must cover \(heads) heads of \(headDimension)")
        let work = sequences.filter { $0.length > 0 }
        guard !work.isEmpty else { return }
        let q = UnsafeSendablePointer(query), k = UnsafeSendablePointer(key), v = UnsafeSendablePointer(value)
        let o = UnsafeSendableMutablePointer(output)
        let d = headDimension

        // Cost of one (sequence, head) item: the two score GEMMs, 4·length²·d flops.
        let costs = work.map { 4 * $0.length * $0.length * d }
        let total = costs.reduce(0, +) * heads
        // Several parts per thread, claimed one by one: a preempted worker holds up only a small one.
        let parts = min(4 * (pool?.threadCount ?? 1), work.count * heads)

        /// Runs items first ..< last of the flattened (sequence, head) list.
        @Sendable func run(_ first: Int, _ last: Int) {
            guard first < last else { return }
            let longest = (first / heads ... (last - 1) / heads).map { work[$0].length }.max() ?? 0
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: ss_tf_attention_scratch_floats(longest, d))
            defer { scratch.deallocate() }
            var item = first
            while item < last {
                let s = item / heads, h0 = item % heads
                let h1 = min(heads, h0 + (last - item))
                let seq = work[s]
                let status = PWLActivation.withCTable(exp) { table in
                    ss_tf_attention_isa(isa.cValue, q.pointer + seq.start * queryStride, queryStride,
                                        k.pointer + seq.start * keyStride, keyStride,
                                        v.pointer + seq.start * valueStride, valueStride,
                                        o.pointer + seq.start * outputStride, outputStride,
                                        seq.length, h0, h1, d, scale, table, scratch)
                }
                precondition(status == 0, "attention kernel rejected its arguments")
                item += h1 - h0
            }
        }

        guard let pool, pool.threadCount > 1, parts > 1, total >= KernelPool.splitThresholdFlops else {
            run(0, work.count * heads)
            return
        }
        // Contiguous ranges of items with about equal cost.
        var bounds = [0]
        var accumulated = 0, item = 0
        for part in 1..<parts {
            let target = total * part / parts
            while item < work.count * heads && accumulated + costs[item / heads] <= target {
                accumulated += costs[item / heads]
                item += 1
            }
            bounds.append(max(item, bounds.last!))
        }
        bounds.append(work.count * heads)
        let ranges = bounds
        pool.run(parts: parts) { part in run(ranges[part], ranges[part + 1]) }
    }

    /// The mean of `rows` rows (`columns` values each, row stride `rowStride`) into `output`,
    /// L2-normalised when `normalize` is set.
    public static func meanPool(_ x: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int? = nil,
                                normalize: Bool, into output: UnsafeMutablePointer<Float>) {
        precondition(rows > 0, "mean pooling needs at least one row")
        ss_tf_mean_pool(x, rowStride ?? columns, rows, columns, normalize ? 1 : 0, output)
    }
}
