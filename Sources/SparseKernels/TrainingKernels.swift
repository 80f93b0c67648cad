import CSparseKernels

/// The C kernels of recovery training (`train.h`): GEMMs of a linear layer's forward and backward
/// passes split by column ranges across a kernel pool, activation backward, bias gradients, a
/// masked AdamW step, sums of squares and the distillation losses.
public enum TrainingKernels {
    /// AdamW settings; `step` counts from 1.
    public struct Adam: Sendable, Equatable {
        public var learningRate: Float
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0

        public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
            self.learningRate = learningRate
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    /// `c = alpha · op(a) · op(b) + beta · c` with op(a) `m × k` and op(b) `k × n`, all row-major
    /// (`transA`: `a` is stored `[k][m]`; `transB`: `b` is stored `[n][k]`). Large calls split by
    /// 32-column ranges across `pool`.
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                            isa: InstructionSet = .current, pool: KernelPool = .shared) {
        let (ta, tb): (Int32, Int32) = (transA ? 1 : 0, transB ? 1 : 0)
        let split = pool.shouldSplit(flops: 2 * Double(m) * Double(n) * Double(k), rows: m) && n >= 64
        let units = (n + 31) / 32
        let pa = UnsafeSendablePointer(a), pb = UnsafeSendablePointer(b), pc = UnsafeSendableMutablePointer(c)
        pool.forEachRange(units: units, split: split) { range in
            let status = ss_train_gemm_isa(isa.cValue, ta, tb, m, n, k, alpha, pa.pointer, lda, pb.pointer, ldb, beta, pc.pointer, ldc,
                                           range.lowerBound * 32, min(n, range.upperBound * 32))
            precondition(status == SS_OK, "TrainingKernels.gemm m=\(m) n=\(n) k=\(k): \(String(cString: ss_status_message(status.rawValue)))")
        }
    }

    /// `dx = dy · act'(x)` for the pre-activation `x` (`dx` may be `dy`). Only `.none`, `.relu`
    /// and `.gelu` have backward kernels; others are a precondition failure (callers check
    /// `hasBackward` first).
    public static func activationBackward(_ activation: Activation, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                          dx: UnsafeMutablePointer<Float>, count: Int, isa: InstructionSet = .current) {
        let status = ss_train_act_backward_isa(isa.cValue, activation.cKind, x, dy, dx, count)
        precondition(status == SS_OK, "no backward kernel for \(activation)")
    }

    /// Whether `activationBackward` supports `activation`.
    public static func hasBackward(_ activation: Activation) -> Bool { [.none, .relu, .gelu].contains(activation) }

    /// `db[j] += Σ_r dy[r · ld + j]` for `j < cols`.
    public static func columnSums(_ dy: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into db: UnsafeMutablePointer<Float>,
                                  isa: InstructionSet = .current) {
        ss_train_column_sums_isa(isa.cValue, dy, rows, cols, ld, db)
    }

    /// One AdamW step on `p` (step counts from 1); elements whose `mask` byte is 0 do not change.
    public static func adam(_ config: Adam, step: Int, parameters p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, mask: UnsafePointer<UInt8>?, count: Int,
                            isa: InstructionSet = .current) {
        var c = ss_adam_config(lr: config.learningRate, beta1: config.beta1, beta2: config.beta2, eps: config.epsilon,
                               weight_decay: config.weightDecay, step: Int64(step))
        ss_train_adam_isa(isa.cValue, &c, p, g, m, v, mask, count)
    }

    /// Layer norm backward over rows of `cols` for the input `x` (see `train.h`); `dgamma` and
    /// `dbeta` accumulate when given.
    public static func layerNormBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                         gamma: UnsafePointer<Float>?, epsilon: Float, dgamma: UnsafeMutablePointer<Float>?,
                                         dbeta: UnsafeMutablePointer<Float>?, isa: InstructionSet = .current) {
        precondition(cols <= 8192, "layerNormBackward: at most 8192 columns")
        ss_train_layer_norm_backward_isa(isa.cValue, x, dy, dx, rows, cols, cols, gamma, epsilon, dgamma, dbeta)
    }

    /// Softmax backward per row: `ds = p ⊙ (dp − Σ p·dp)` for the softmax output `p`.
    public static func softmaxBackward(p: UnsafePointer<Float>, dp: UnsafePointer<Float>, ds: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                       isa: InstructionSet = .current) {
        ss_train_softmax_backward_isa(isa.cValue, p, dp, ds, rows, cols, cols)
    }

    /// `Σ x²` in double (non-finite if any element is).
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int, isa: InstructionSet = .current) -> Double {
        ss_train_sum_squares_isa(isa.cValue, x, count)
    }

    /// `x *= s`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by s: Float, isa: InstructionSet = .current) {
        ss_train_scale_isa(isa.cValue, x, count, s)
    }

    /// Distillation loss of `rows × cols` student logits against labels and/or teacher logits:
    /// `(1 − alpha)·CE + alpha·T²·KL(teacher_T ‖ student_T)`, averaged over rows; the gradient
    /// with respect to the logits goes into `gradient`. Nil labels or teacher drop that term.
    /// Returns nil when a label is outside `0..<cols` (or cols exceeds 4096).
    public static func distillationLoss(logits: UnsafePointer<Float>, teacher: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?,
                                        rows: Int, cols: Int, alpha: Float, temperature: Float,
                                        gradient: UnsafeMutablePointer<Float>) -> Double? {
        let loss = ss_train_distill_xent(logits, teacher, labels, rows, cols, cols, alpha, temperature, gradient)
        return loss < 0 ? nil : loss
    }

    /// `scale · Σ (p − t)² / rows` and its gradient (if `gradient` is given).
    public static func meanSquaredError(_ p: UnsafePointer<Float>, target t: UnsafePointer<Float>, rows: Int, cols: Int, scale: Float,
                                        gradient: UnsafeMutablePointer<Float>?) -> Double {
        ss_train_mse(p, t, rows, cols, cols, scale, gradient)
    }
    /// Probability floats `attentionForward` keeps per sequence: `heads · length²`, at these offsets.
    public static func attentionProbabilityOffsets(_ sequences: [TransformerKernels.Sequence], heads: Int) -> (offsets: [Int], total: Int) {
        var offsets: [Int] = [], total = 0
        for s in sequences {
            offsets.append(total)
            total += heads * s.length * s.length
        }
        return (offsets, total)
    }

    /// Multi-head self-attention of packed sequences for training (`ss_train_attention_forward_isa`):
    /// q, k, v and the output share the row stride `stride`/`outputStride`; each sequence's
    /// probabilities go to `probabilities` at its `attentionProbabilityOffsets` offset. Sequences
    /// are split across `pool`.
    public static func attentionForward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                                        output: UnsafeMutablePointer<Float>, outputStride: Int,
                                        sequences: [TransformerKernels.Sequence], heads: Int, headDimension: Int, scale: Float,
                                        probabilities: UnsafeMutablePointer<Float>, isa: InstructionSet = .current, pool: KernelPool = .shared) {
        let offsets = attentionProbabilityOffsets(sequences, heads: heads).offsets
        let pq = UnsafeSendablePointer(q), pk = UnsafeSendablePointer(k), pv = UnsafeSendablePointer(v)
        let po = UnsafeSendableMutablePointer(output), pp = UnsafeSendableMutablePointer(probabilities)
        bySequences(sequences, headDimension: headDimension, heads: heads, pool: pool) { i, _ in
            let s = sequences[i]
            let status = ss_train_attention_forward_isa(isa.cValue, pq.pointer + s.start * stride, pk.pointer + s.start * stride,
                                                        pv.pointer + s.start * stride, stride, po.pointer + s.start * outputStride,
                                                        outputStride, s.length, heads, headDimension, scale, pp.pointer + offsets[i])
            precondition(status == SS_OK, "attentionForward: \(String(cString: ss_status_message(status.rawValue)))")
        }
    }

    /// The backward pass of `attentionForward`: dq, dk, dv (row stride `gradientStride`) from the
    /// output gradient and the kept probabilities.
    public static func attentionBackward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                                         outputGradient: UnsafePointer<Float>, outputStride: Int, probabilities: UnsafePointer<Float>,
                                         sequences: [TransformerKernels.Sequence], heads: Int, headDimension: Int, scale: Float,
                                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                         gradientStride: Int, isa: InstructionSet = .current, pool: KernelPool = .shared) {
        let offsets = attentionProbabilityOffsets(sequences, heads: heads).offsets
        let pq = UnsafeSendablePointer(q), pk = UnsafeSendablePointer(k), pv = UnsafeSendablePointer(v)
        let pdo = UnsafeSendablePointer(outputGradient), pp = UnsafeSendablePointer(probabilities)
        let gq = UnsafeSendableMutablePointer(dq), gk = UnsafeSendableMutablePointer(dk), gv = UnsafeSendableMutablePointer(dv)
        bySequences(sequences, headDimension: headDimension, heads: heads, pool: pool) { i, scratch in
            let s = sequences[i], a = s.start * stride, g = s.start * gradientStride
            let status = ss_train_attention_backward_isa(isa.cValue, pq.pointer + a, pk.pointer + a, pv.pointer + a, stride,
                                                         pdo.pointer + s.start * outputStride, outputStride, pp.pointer + offsets[i],
                                                         s.length, heads, headDimension, scale, gq.pointer + g, gk.pointer + g,
                                                         gv.pointer + g, gradientStride, scratch)
            precondition(status == SS_OK, "attentionBackward: \(String(cString: ss_status_message(status.rawValue)))")
        }
    }

    /// Runs `body(sequence index, scratch of length² floats)` for every non-empty sequence,
    /// contiguous ranges of sequences split across `pool` when the work is large enough.
    private static func bySequences(_ sequences: [TransformerKernels.Sequence], headDimension d: Int, heads: Int, pool: KernelPool,
                                    _ body: @escaping @Sendable (Int, UnsafeMutablePointer<Float>) -> Void) {
        let flops = sequences.reduce(0.0) { $0 + 8 * Double($1.length * $1.length * d * heads) }
        let split = pool.shouldSplit(flops: flops, rows: 64)
        pool.forEachRange(units: sequences.count, split: split) { range in
            let longest = sequences[range].map(\.length).max() ?? 0
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, longest * longest))
            defer { scratch.deallocate() }
            for i in range where sequences[i].length > 0 { body(i, scratch) }
        }
    }
}
