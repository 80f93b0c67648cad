import CSparseKernels
import Foundation

/// A piecewise-linear (PWL) stand-in for an element-wise function: `segments` uniform segments on
/// [lo, hi]. Each segment is the chord of the exact function shifted to split its largest over-
/// and under-shoot evenly (about half the error of plain interpolation). Outside [lo, hi] the end
/// segments' lines continue: right for ReLU/GELU/SiLU tails (≈ 0 and ≈ x), about flat for
/// tanh/sigmoid when the range covers their saturation. The kernel keeps the slope and offset
/// tables in registers (≤ 64 segments on AVX-512, ≤ 32 on AVX2; see `pwl.h`).
public struct PWLActivation: Sendable {
    /// The activation the table approximates (nil when built from a custom function).
    public let activation: Activation?
    /// What the table approximates, e.g. "gelu" or "exp".
    public let name: String
    public let segments: Int
    public let lo: Float
    public let hi: Float
    public let slopes: [Float]
    public let offsets: [Float]
    /// The approximation error over [lo, hi], measured when the table was built.
    public let error: ErrorReport

    /// Approximation error on a dense uniform sample of [lo, hi] (the table as the kernel runs it,
    /// against the exact function in double precision).
    public struct ErrorReport: Sendable, CustomStringConvertible {
        public let maxAbsolute: Double
        /// Largest |error| / max(|f(x)|, 1e-3).
        public let maxRelative: Double
        public let rms: Double
        public let samples: Int
        public var description: String {
            String(format: "max abs %.3g, max rel %.3g, rms %.3g over %d samples", maxAbsolute, maxRelative, rms, samples)
        }
    }

    /// A table for one of the layer activations.
    public init(_ activation: Activation, segments: Int = 32, lo: Float = -8, hi: Float = 8) {
        self.init(function: activation.exactValue, name: activation.rawValue, activation: activation,
                  segments: segments, lo: lo, hi: hi)
    }

    /// A table for any function (e.g. `exp` on [-16, 0] for a softmax).
    public init(function: @escaping @Sendable (Double) -> Double, name: String, segments: Int = 32,
                lo: Float = -8, hi: Float = 8) {
        self.init(function: function, name: name, activation: nil, segments: segments, lo: lo, hi: hi)
    }

    private init(function f: (Double) -> Double, name: String, activation: Activation?, segments: Int, lo: Float, hi: Float) {
        precondition(segments >= 1 && hi > lo, "PWLActivation: needs at least one segment on a non-empty range")
        self.activation = activation
        self.name = name
        self.segments = segments
        self.lo = lo
        self.hi = hi
        let step = (Double(hi) - Double(lo)) / Double(segments)
        var slopes: [Float] = [], offsets: [Float] = []
        let probes = 64
        for i in 0..<segments {
            let a = Double(lo) + Double(i) * step, b = a + step
            let slope = (f(b) - f(a)) / step
            var offset = f(a) - slope * a
            var high = -Double.infinity, low = Double.infinity
            for q in 0...probes {
                let x = a + step * Double(q) / Double(probes)
                let d = f(x) - (slope * x + offset)
                high = max(high, d)
                low = min(low, d)
            }
            offset += (high + low) / 2
            slopes.append(Float(slope))
            offsets.append(Float(offset))
        }
        self.slopes = slopes
        self.offsets = offsets
        // Error of the table as run (portable kernel, float arithmetic).
        let samples = 20_001
        var xs = (0..<samples).map { lo + (hi - lo) * Float($0) / Float(samples - 1) }
        let exact = xs.map { f(Double($0)) }
        slopes.withUnsafeBufferPointer { s in
            offsets.withUnsafeBufferPointer { o in
                xs.withUnsafeMutableBufferPointer {
                    ss_pwl_apply_isa(SS_ISA_PORTABLE, s.baseAddress, o.baseAddress, Int32(segments), lo, hi, $0.baseAddress, samples)
                }
            }
        }
        var maxAbs = 0.0, maxRel = 0.0, sq = 0.0
        for (got, want) in zip(xs, exact) {
            let e = abs(Double(got) - want)
            maxAbs = max(maxAbs, e)
            maxRel = max(maxRel, e / max(abs(want), 1e-3))
            sq += e * e
        }
        error = ErrorReport(maxAbsolute: maxAbs, maxRelative: maxRel, rms: (sq / Double(samples)).squareRoot(), samples: samples)
    }

    /// Applies the table in place to `count` floats.
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int, isa: InstructionSet = .current) {
        slopes.withUnsafeBufferPointer { s in
            offsets.withUnsafeBufferPointer { o in
                ss_pwl_apply_isa(isa.cValue, s.baseAddress, o.baseAddress, Int32(segments), lo, hi, values, count)
            }
        }
    }

    public func apply(to values: inout [Float], isa: InstructionSet = .current) {
        let n = values.count
        values.withUnsafeMutableBufferPointer { if let base = $0.baseAddress { apply(base, count: n, isa: isa) } }
    }

    /// Calls `body` with the C view of `table` (nil when there is none), valid during the call.
    static func withCTable<R>(_ table: PWLActivation?, _ body: (UnsafePointer<ss_pwl_table>?) -> R) -> R {
        guard let table else { return body(nil) }
        return table.slopes.withUnsafeBufferPointer { s in
            table.offsets.withUnsafeBufferPointer { o in
                var t = ss_pwl_table(slope: s.baseAddress, offset: o.baseAddress, segments: Int32(table.segments), lo: table.lo, hi: table.hi)
                return body(&t)
            }
        }
    }

    /// Largest absolute difference from the exact function over [lo, hi] (`error.maxAbsolute`).
    public func maxAbsoluteError() -> Float { Float(error.maxAbsolute) }
}

extension Activation {
    /// The exact function in double precision (a reference; the kernels never call libm per element).
    public func exactValue(_ x: Double) -> Double {
        switch self {
        case .none: return x
        case .relu: return max(0, x)
        case .gelu: return 0.5 * x * erfc(-x / 2.0.squareRoot())
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
        case .silu: return x * (x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x)))
        }
    }
}
