import Foundation
import SparseKernels
import SparseModels

/// The shape of a BERT encoder layer for training.
struct EncoderShape: Sendable, Equatable {
    var hidden: Int
    var heads: Int
    var intermediate: Int
    var epsilon: Float

    var headDimension: Int { hidden / heads }
    var scale: Float { 1 / Float(headDimension).squareRoot() }
}

/// One BERT encoder layer with trainable linear layers (query, key, value, attention output,
/// intermediate, output; each with its structure fixed, see `TrainableLinear`) and LayerNorms
/// (trained when `trainsNorms`, else frozen), over sequences packed back to back (each attends to
/// its own tokens only):
///   z1 = x + Attention(x)·Woᵀ + bo,  x1 = LN1(z1),  h = GELU(x1·W1ᵀ + b1),  z2 = x1 + h·W2ᵀ + b2,  y = LN2(z2).
/// `forward(keep: true)` returns what `backward` needs; `backward` adds every linear layer's
/// parameter gradients and returns d loss / d x when asked.
final class TrainableEncoderLayer {
    typealias Norm = (gamma: [Float], beta: [Float])
    /// A LayerNorm's gain and bias as trainable tensors.
    typealias NormTensors = (gamma: TrainableTensor, beta: TrainableTensor)

    let shape: EncoderShape
    let query, key, value, attentionOutput, intermediate, output: TrainableLinear
    let attentionNorm, outputNorm: NormTensors
    let trainsNorms: Bool

    init(shape: EncoderShape, linears: [TrainableLinear], attentionNorm: Norm, outputNorm: Norm, trainsNorms: Bool = false) {
        precondition(linears.count == 6, "an encoder layer has six linear layers")
        self.shape = shape
        (query, key, value, attentionOutput, intermediate, output) = (linears[0], linears[1], linears[2], linears[3], linears[4], linears[5])
        self.attentionNorm = (TrainableTensor(attentionNorm.gamma), TrainableTensor(attentionNorm.beta))
        self.outputNorm = (TrainableTensor(outputNorm.gamma), TrainableTensor(outputNorm.beta))
        self.trainsNorms = trainsNorms
    }

    /// In the order of `EncoderLayerNames.linears`.
    var linears: [TrainableLinear] { [query, key, value, attentionOutput, intermediate, output] }
    /// The two LayerNorms' current gains and biases (attention, output).
    var norms: [Norm] { [attentionNorm, outputNorm].map { (gamma: $0.gamma.values, beta: $0.beta.values) } }
    /// Every tensor that trains: the linear layers', then the LayerNorms' when `trainsNorms`.
    var tensors: [TrainableTensor] {
        linears.flatMap(\.tensors) + (trainsNorms ? [attentionNorm.gamma, attentionNorm.beta, outputNorm.gamma, outputNorm.beta] : [])
    }

    /// The activations one forward pass keeps for its backward pass (row-major, one row per token).
    struct Cache {
        var spans: [TransformerKernels.Sequence]
        var tokens: Int
        var x: [Float]
        /// q, k, v side by side: `tokens × 3H`.
        var qkv: [Float]
        var probabilities: [Float]
        var context: [Float]
        /// LN1's input and output.
        var z1: [Float]
        var x1: [Float]
        /// The intermediate layer's output before and after GELU.
        var preActivation: [Float]
        var activation: [Float]
        /// LN2's input.
        var z2: [Float]
    }

    /// The layer's output for the packed sequences `spans` of `x` (`tokens × H`), and the cache
    /// when `keep` is set.
    func forward(_ x: [Float], spans: [TransformerKernels.Sequence], keep: Bool) -> (y: [Float], cache: Cache?) {
        let h = shape.hidden, f = shape.intermediate, t = spans.last.map { $0.start + $0.length } ?? 0
        precondition(x.count == t * h, "encoder layer: \(x.count) inputs for \(t) tokens of \(h)")
        var c = Cache(spans: spans, tokens: t, x: x, qkv: Self.zeros(t * 3 * h), probabilities: [], context: Self.zeros(t * h),
                      z1: x, x1: [], preActivation: Self.zeros(t * f), activation: [], z2: [])
        for (j, layer) in [query, key, value].enumerated() {
            x.withUnsafeBufferPointer { px in
                c.qkv.withUnsafeMutableBufferPointer { layer.forward(px.baseAddress!, ldx: h, rows: t, into: $0.baseAddress! + j * h, ldy: 3 * h) }
            }
        }
        c.probabilities = Self.zeros(TrainingKernels.attentionProbabilityOffsets(spans, heads: shape.heads).total)
        c.qkv.withUnsafeBufferPointer { q in
            c.context.withUnsafeMutableBufferPointer { out in
                c.probabilities.withUnsafeMutableBufferPointer { p in
                    TrainingKernels.attentionForward(q: q.baseAddress!, k: q.baseAddress! + h, v: q.baseAddress! + 2 * h, stride: 3 * h,
                                                     output: out.baseAddress!, outputStride: h, sequences: spans, heads: shape.heads,
                                                     headDimension: shape.headDimension, scale: shape.scale, probabilities: p.baseAddress!)
                }
            }
        }
        Self.linear(attentionOutput, c.context, rows: t, into: &c.z1, accumulate: true)
        c.x1 = normalized(c.z1, attentionNorm, rows: t)
        Self.linear(intermediate, c.x1, rows: t, into: &c.preActivation, accumulate: false)
        c.activation = c.preActivation
        Activation.gelu.apply(to: &c.activation)
        c.z2 = c.x1
        Self.linear(output, c.activation, rows: t, into: &c.z2, accumulate: true)
        return (normalized(c.z2, outputNorm, rows: t), keep ? c : nil)
    }

    /// Back-propagates `dy` (d loss / d y) through the pass `cache` holds: adds the parameter
    /// gradients and returns d loss / d x when `inputGradient` is set (else an empty array).
    func backward(_ dy: [Float], cache c: Cache, inputGradient: Bool) -> [Float] {
        let h = shape.hidden, f = shape.intermediate, t = c.tokens
        let dz2 = normBackward(c.z2, dy, outputNorm, rows: t)
        var dActivation = Self.zeros(t * f)
        Self.backward(output, dz2, x: c.activation, rows: t, dx: &dActivation, accumulate: false)
        var dPre = Self.zeros(t * f)
        TrainingKernels.activationBackward(.gelu, x: c.preActivation, dy: dActivation, dx: &dPre, count: t * f)
        var dx1 = dz2
        Self.backward(intermediate, dPre, x: c.x1, rows: t, dx: &dx1, accumulate: true)
        let dz1 = normBackward(c.z1, dx1, attentionNorm, rows: t)
        var dContext = Self.zeros(t * h)
        Self.backward(attentionOutput, dz1, x: c.context, rows: t, dx: &dContext, accumulate: false)
        var dqkv = Self.zeros(t * 3 * h)
        c.qkv.withUnsafeBufferPointer { q in
            dContext.withUnsafeBufferPointer { dout in
                c.probabilities.withUnsafeBufferPointer { p in
                    dqkv.withUnsafeMutableBufferPointer { d in
                        TrainingKernels.attentionBackward(q: q.baseAddress!, k: q.baseAddress! + h, v: q.baseAddress! + 2 * h, stride: 3 * h,
                                                          outputGradient: dout.baseAddress!, outputStride: h, probabilities: p.baseAddress!,
                                                          sequences: c.spans, heads: shape.heads, headDimension: shape.headDimension,
                                                          scale: shape.scale, dq: d.baseAddress!, dk: d.baseAddress! + h, dv: d.baseAddress! + 2 * h,
                                                          gradientStride: 3 * h)
                    }
                }
            }
        }
        var dx = inputGradient ? dz1 : []
        for (j, layer) in [query, key, value].enumerated() {
            dqkv.withUnsafeBufferPointer { d in
                c.x.withUnsafeBufferPointer { px in
                    dx.withUnsafeMutableBufferPointer { pdx in
                        layer.backward(d.baseAddress! + j * h, lddy: 3 * h, x: px.baseAddress!, ldx: h, rows: t,
                                       dx: inputGradient ? pdx.baseAddress : nil, lddx: h, accumulate: true)
                    }
                }
            }
        }
        return dx
    }

    /// LayerNorm of each row of `z` with `norm`'s parameters.
    private func normalized(_ z: [Float], _ norm: NormTensors, rows: Int) -> [Float] {
        var y = z
        y.withUnsafeMutableBufferPointer { py in
            norm.gamma.values.withUnsafeBufferPointer { g in
                norm.beta.values.withUnsafeBufferPointer { b in
                    TransformerKernels.addLayerNorm(py.baseAddress!, rows: rows, columns: shape.hidden, gamma: g.baseAddress!, beta: b.baseAddress!,
                                                    epsilon: shape.epsilon)
                }
            }
        }
        return y
    }

    /// d loss / d z of `y = LN(z)`; adds the gradients of the norm's gain and bias when `trainsNorms`.
    private func normBackward(_ z: [Float], _ dy: [Float], _ norm: NormTensors, rows: Int) -> [Float] {
        var dz = Self.zeros(z.count)
        norm.gamma.values.withUnsafeBufferPointer { g in
            norm.gamma.gradient.withUnsafeMutableBufferPointer { dg in
                norm.beta.gradient.withUnsafeMutableBufferPointer { db in
                    TrainingKernels.layerNormBackward(x: z, dy: dy, dx: &dz, rows: rows, cols: shape.hidden, gamma: g.baseAddress!,
                                                      epsilon: shape.epsilon, dgamma: trainsNorms ? dg.baseAddress : nil,
                                                      dbeta: trainsNorms ? db.baseAddress : nil)
                }
            }
        }
        return dz
    }

    static func zeros(_ count: Int) -> [Float] { [Float](repeating: 0, count: count) }

    /// `y (+)= x · Ŵᵀ + b` on whole arrays (row strides the layer's widths).
    static func linear(_ layer: TrainableLinear, _ x: [Float], rows: Int, into y: inout [Float], accumulate: Bool) {
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer {
                layer.forward(px.baseAddress!, ldx: layer.inputs, rows: rows, into: $0.baseAddress!, ldy: layer.outputs, accumulate: accumulate)
            }
        }
    }

    /// The layer's backward pass on whole arrays, writing or adding d loss / d x into `dx`.
    static func backward(_ layer: TrainableLinear, _ dy: [Float], x: [Float], rows: Int, dx: inout [Float], accumulate: Bool) {
        dy.withUnsafeBufferPointer { pdy in
            x.withUnsafeBufferPointer { px in
                dx.withUnsafeMutableBufferPointer { pdx in
                    layer.backward(pdy.baseAddress!, lddy: layer.outputs, x: px.baseAddress!, ldx: layer.inputs, rows: rows,
                                   dx: pdx.baseAddress!, lddx: layer.inputs, accumulate: accumulate)
                }
            }
        }
    }
}
