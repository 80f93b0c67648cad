import SparseKernels

/// Quantized weight storage (`compression.quantize`), applied to the packed form of a layer's
/// method: int8 values with fp32 scales — weight-only (fp32 activations) per output channel or per
/// row and group of inputs, or W8A8 with per-token dynamic int8 activations — or bf16 values.
///
/// What runs each combination (the kernels of `int8.h`, `nm_int8.h`, `bfloat16.h`, `nm.h`, BLAST's
/// quantized factors):
///
/// | method | int8 weight-only | int8 + int8-dynamic | bf16 |
/// |---|---|---|---|
/// | dense | `Int8Weights` (channel or group) | `Int8DynamicWeights` | `BF16Weights` |
/// | nm | `NMWeightOnlyInt8Weights` (any n:m; channel, or groups a multiple of m) | 2:4 / 1:4 `NMInt8Weights` | `NMBF16Weights` |
/// | blast | U, V as `Int8Weights` (channel) | U, V as `Int8DynamicWeights` | U, V as `BF16Weights` |
/// | csr | `CSRWeightOnlyInt8Weights` (channel) | `CSRInt8Weights` | — |
///
/// ℓ1,∞ has no quantized kernel; it, the empty cells and group scales on BLAST and CSR (their
/// int8 layouts keep one scale per row) are refused with a message saying so.
public enum WeightQuantization: Sendable, Equatable, CustomStringConvertible {
    /// int8 weights, fp32 activations; scales per output row or per row and group of inputs.
    case int8(Int8Granularity)
    /// int8 weights (one scale per output row) and int8 activations quantized per token at call time.
    case int8Dynamic
    /// bf16 weights (rounded to nearest even), fp32 activations.
    case bf16

    public var description: String {
        switch self {
        case .int8(let granularity): return "int8 \(granularity)"
        case .int8Dynamic: return "int8 dynamic activations"
        case .bf16: return "bf16"
        }
    }

    /// The keys it adds to a layer's recorded parameters (`weights`, `granularity`, `group`, `activations`).
    public var parameters: [String: ParameterValue] {
        switch self {
        case .int8(.channel): return ["weights": .string("int8"), "granularity": .string("channel")]
        case .int8(.group(let width)): return ["weights": .string("int8"), "granularity": .string("group"), "group": .int(width)]
        case .int8Dynamic: return ["weights": .string("int8"), "granularity": .string("channel"), "activations": .string("int8-dynamic")]
        case .bf16: return ["weights": .string("bf16")]
        }
    }

    /// Reads `parameters` back (nil when they hold no `weights` key); `fail` names the problem.
    public init?(parameters p: [String: ParameterValue], _ fail: (String) -> any Error) throws {
        guard let weights = p["weights"] else { return nil }
        let activations = p["activations"]?.stringValue
        switch weights.stringValue {
        case "bf16":
            guard p["granularity"] == nil, p["group"] == nil, activations == nil else {
                throw fail("parameters: bf16 weights take no granularity, group or activations")
            }
            self = .bf16
        case "int8":
            switch (p["granularity"]?.stringValue, p["group"]?.intValue, activations) {
            case ("channel", nil, nil): self = .int8(.channel)
            case ("channel", nil, "int8-dynamic"): self = .int8Dynamic
            case ("group", let width?, nil) where (1...65536).contains(width): self = .int8(.group(width))
            default:
                throw fail("parameters: int8 weights need granularity 'channel' (optionally activations 'int8-dynamic') or 'group' with a group width in 1...65536")
            }
        default:
            throw fail("parameters.weights must be 'int8' or 'bf16'")
        }
    }

    /// Checks that a kernel runs `method` with these weights on an `outputs × inputs` layer.
    public func check(_ method: LayerCompression, outputs: Int, inputs: Int) throws {
        func refuse(_ why: String) -> CompressionLimitError { CompressionLimitError("quantize \(self) with \(method): \(why)") }
        if case .int8Dynamic = self, inputs > 65536 { throw refuse("int8 sums are exact up to 65536 inputs, the layer has \(inputs)") }
        switch method {
        case .dense:
            return
        case .pinned(let inner), .quantized(let inner, _):
            try check(inner, outputs: outputs, inputs: inputs)
        case let .nm(n, m), let .transposableNM(n, m):
            switch self {
            case .bf16, .int8(.channel): return
            case .int8Dynamic: if m != 4 || n > 2 { throw refuse("the N:M W8A8 kernel runs 1:4 and 2:4 only (weight-only int8 runs every n:m)") }
            case .int8(.group(let width)):
                if width % m != 0 { throw refuse("a scale group must cover whole groups of m = \(m) inputs; \(width) is not a multiple of \(m)") }
            }
        case .blast:
            if case .int8(.group) = self {
                throw refuse("BLAST's int8 factors keep one scale per row of U and per rank component of each V block; use \"granularity\": \"channel\"")
            }
        case .csr:
            switch self {
            case .int8Dynamic, .int8(.channel): return
            case .int8(.group):
                throw refuse("CSR int8 keeps one scale per output row over its kept weights; use \"granularity\": \"channel\"")
            case .bf16: throw refuse("there is no CSR bf16 kernel; use int8 weights")
            }
        case .l1inf:
            throw refuse("ℓ1,∞ layers are stored compacted in fp32; quantize is not available for them")
        }
    }
}
