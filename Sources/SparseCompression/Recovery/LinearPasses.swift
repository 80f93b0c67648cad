import SparseKernels

/// The forward and backward products of a trainable linear layer on row-major buffers (row
/// strides given, so a layer can read or write columns of a wider matrix such as q/k/v side by
/// side), on the training GEMM.
extension TrainableLinear {
    /// `y = x · Ŵᵀ + b` for `rows` rows, or `y += x · Ŵᵀ + b` with `accumulate` (a residual already in y).
    func forward(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false) {
        if let served = servedOperator {
            return forward(served, x, ldx: ldx, rows: rows, into: y, ldy: ldy, accumulate: accumulate)
        }
        if let b = bias?.values {
            b.withUnsafeBufferPointer { pb in
                for r in 0..<rows {
                    let row = y + r * ldy
                    if accumulate {
                        for j in 0..<outputs { row[j] += pb[j] }
                    } else {
                        row.update(from: pb.baseAddress!, count: outputs)
                    }
                }
            }
        }
        let beta: Float = accumulate || bias != nil ? 1 : 0
        weight.withUnsafeBufferPointer { pw in
            TrainingKernels.gemm(transA: false, transB: true, m: rows, n: outputs, k: inputs, a: x, lda: ldx, b: pw.baseAddress!, ldb: inputs,
                                 beta: beta, c: y, ldc: ldy)
        }
    }

    /// The forward pass on a kernel operator (which adds its own bias).
    private func forward(_ op: any LinearOperator, _ x: UnsafePointer<Float>, ldx: Int, rows: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                         accumulate: Bool) {
        guard accumulate else {
            return op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: .none, pool: nil, isa: .current)
        }
        var z = [Float](repeating: 0, count: rows * outputs)
        z.withUnsafeMutableBufferPointer { op.apply(x, rows: rows, inputStride: ldx, into: $0.baseAddress!, outputStride: outputs, activation: .none, pool: nil, isa: .current) }
        for r in 0..<rows { for j in 0..<outputs { y[r * ldy + j] += z[r * outputs + j] } }
    }

    /// Adds the parameter gradients of `dy` (d loss / d y for the `rows` rows of `x` the last
    /// forward read) and, when `dx` is given, writes (or with `accumulate` adds) d loss / d x.
    func backward(_ dy: UnsafePointer<Float>, lddy: Int, x: UnsafePointer<Float>, ldx: Int, rows: Int,
                  dx: UnsafeMutablePointer<Float>? = nil, lddx: Int = 0, accumulate: Bool = false) {
        switch factors {
        case .masked(let w):
            w.gradient.withUnsafeMutableBufferPointer { pg in
                TrainingKernels.gemm(transA: true, transB: false, m: outputs, n: inputs, k: rows, a: dy, lda: lddy, b: x, ldb: ldx,
                                     beta: 1, c: pg.baseAddress!, ldc: inputs)
            }
        case .blast:
            var dw = [Float](repeating: 0, count: outputs * inputs)
            dw.withUnsafeMutableBufferPointer { pdw in
                TrainingKernels.gemm(transA: true, transB: false, m: outputs, n: inputs, k: rows, a: dy, lda: lddy, b: x, ldb: ldx,
                                     beta: 0, c: pdw.baseAddress!, ldc: inputs)
            }
            backward(weightGradient: dw, biasGradient: nil)
        }
        if let bias {
            bias.gradient.withUnsafeMutableBufferPointer { TrainingKernels.columnSums(dy, rows: rows, cols: outputs, ld: lddy, into: $0.baseAddress!) }
        }
        guard let dx else { return }
        weight.withUnsafeBufferPointer { pw in
            TrainingKernels.gemm(transA: false, transB: false, m: rows, n: inputs, k: outputs, a: dy, lda: lddy, b: pw.baseAddress!, ldb: inputs,
                                 beta: accumulate ? 1 : 0, c: dx, ldc: lddx)
        }
    }
}
