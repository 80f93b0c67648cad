import CSparseKernels

/// Element-wise activation of a layer. Decodes from `"none"` (alias `"identity"`), `"relu"`,
/// `"gelu"` (exact erf form), `"tanh"`, `"sigmoid"` and `"silu"`.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case none, relu, gelu, tanh, sigmoid, silu

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        if name == "identity" {
            self = .none
        } else if let value = Activation(rawValue: name) {
            self = value
        } else {
            let known = (Activation.allCases.map(\.rawValue) + ["identity"]).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown activation '\(name)' (known: \(known))")
        }
    }

    var cKind: ss_act_kind {
        switch self {
        case .none: return SS_ACT_NONE
        case .relu: return SS_ACT_RELU
        case .gelu: return SS_ACT_GELU
        case .tanh: return SS_ACT_TANH
        case .sigmoid: return SS_ACT_SIGMOID
        case .silu: return SS_ACT_SILU
        }
    }

    /// Applies the activation in place to `count` floats at `values`.
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int, isa: InstructionSet = .current) {
        ss_act_apply_isa(isa.cValue, cKind, values, count)
    }

    /// Applies the activation in place to every element.
    public func apply(to values: inout [Float], isa: InstructionSet = .current) {
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            apply(base, count: buffer.count, isa: isa)
        }
    }
}

/// Vectorised row-wise and element-wise kernels that are not layer activations.
public enum VectorKernels {
    /// `e^x` of every element, in place.
    public static func exp(_ values: inout [Float], isa: InstructionSet = .current) {
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            ss_act_apply_isa(isa.cValue, SS_ACT_EXP, base, buffer.count)
        }
    }

    /// Softmax of each row (max-subtracted, so large logits are safe), in place.
    public static func softmaxRows(_ values: inout [Float], columns: Int, isa: InstructionSet = .current) {
        guard columns > 0 else { return }
        precondition(values.count % columns == 0, "softmaxRows: \(values.count) values are not whole rows of \(columns)")
        values.withUnsafeMutableBufferPointer { buffer in
            ss_act_softmax_rows_isa(isa.cValue, buffer.baseAddress, buffer.count / columns, columns, columns)
        }
    }

    /// Layer normalisation of each row, in place: `(x - mean) / sqrt(var + epsilon) * gamma + beta`.
    /// `gamma` and `beta` have `columns` values, or are nil (1 and 0).
    public static func layerNormRows(_ values: inout [Float], columns: Int, gamma: [Float]? = nil, beta: [Float]? = nil,
                                     epsilon: Float = 1e-5, isa: InstructionSet = .current) {
        guard columns > 0 else { return }
        precondition(values.count % columns == 0, "layerNormRows: \(values.count) values are not whole rows of \(columns)")
        precondition(gamma.map { $0.count == columns } ?? true, "layerNormRows: gamma needs \(columns) values")
        precondition(beta.map { $0.count == columns } ?? true, "layerNormRows: beta needs \(columns) values")
        withOptionalPointer(gamma) { g in
            withOptionalPointer(beta) { b in
                values.withUnsafeMutableBufferPointer { buffer in
                    ss_act_layer_norm_rows_isa(isa.cValue, buffer.baseAddress, buffer.count / columns, columns, columns, g, b, epsilon)
                }
            }
        }
    }
}

extension Matrix {
    /// Replaces each row by its softmax.
    public mutating func softmaxRows(isa: InstructionSet = .current) {
        VectorKernels.softmaxRows(&values, columns: columns, isa: isa)
    }

    /// Applies `activation` to every element.
    public mutating func apply(_ activation: Activation, isa: InstructionSet = .current) {
        activation.apply(to: &values, isa: isa)
    }
}
