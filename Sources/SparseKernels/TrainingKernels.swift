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
}
