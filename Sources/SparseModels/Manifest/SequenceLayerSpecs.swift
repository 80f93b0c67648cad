import SparseKernels

/// Padding of a `conv1d` layer, in time steps: `"valid"` (none), `"same"` (output length = input
/// length at stride 1; the odd step goes right, as in PyTorch), `"causal"` (all on the left, so
/// output t sees inputs ≤ t), a number n (n on both sides) or `[left, right]`.
public enum Conv1dPadding: Sendable, Equatable, Codable {
    case valid, same, causal
    case explicit(left: Int, right: Int)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let name = try? c.decode(String.self) {
            switch name {
            case "valid": self = .valid
            case "same": self = .same
            case "causal": self = .causal
            default:
                throw DecodingError.dataCorruptedError(in: c, debugDescription:
                    "unknown padding '\(name)' (known: valid, same, causal, a number of steps, or [left, right])")
            }
        } else if let n = try? c.decode(Int.self) {
            guard n >= 0 else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "padding must not be negative, got \(n)") }
            self = .explicit(left: n, right: n)
        } else if let pair = try? c.decode([Int].self) {
            guard pair.count == 2, pair.allSatisfy({ $0 >= 0 }) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "padding [left, right] needs two non-negative numbers, got \(pair)")
            }
            self = .explicit(left: pair[0], right: pair[1])
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription:
                "padding must be 'valid', 'same', 'causal', a number of steps or [left, right]")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .valid: try c.encode("valid")
        case .same: try c.encode("same")
        case .causal: try c.encode("causal")
        case let .explicit(left, right): try c.encode([left, right])
        }
    }

    /// (left, right) steps for a kernel of `kernelSize` taps `dilation` apart.
    public func steps(kernelSize: Int, dilation: Int) -> (left: Int, right: Int) {
        switch self {
        case .valid: return (0, 0)
        case .same: return BandedOperator.samePadding(kernelSize: kernelSize, dilation: dilation)
        case .causal: return BandedOperator.causalPadding(kernelSize: kernelSize, dilation: dilation)
        case let .explicit(left, right): return (left, right)
        }
    }
}

/// `{"type": "conv1d", "name"?, "weight", "bias"?, "stride"?, "padding"?, "dilation"?, "activation"?}`:
/// a 1-D convolution over time. The weight is PyTorch's `[out_channels, in_channels, kernel_size]`
/// (channels and kernel size come from it); lowered once at load to a banded operator over the
/// flattened (time × channel) row, its window weights compressible like a linear layer's.
public struct Conv1dLayerSpec: Sendable, Equatable, Codable {
    public var name: String?
    /// Tensor name of the weight; defaults to `"<name>.weight"`.
    public var weight: String
    public var bias: String?
    public var stride: Int
    public var padding: Conv1dPadding
    public var dilation: Int
    public var activation: Activation

    public init(name: String? = nil, weight: String, bias: String? = nil, stride: Int = 1, padding: Conv1dPadding = .valid,
                dilation: Int = 1, activation: Activation = .none) {
        self.name = name
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.activation = activation
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name, weight, bias, stride, padding, dilation, activation }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        weight = try decodeTensorName(c, .weight, name: name, suffix: "weight", layer: "a conv1d layer", decoder: decoder)
        bias = try c.decodeIfPresent(String.self, forKey: .bias)
        stride = try decodePositive(c, .stride) ?? 1
        dilation = try decodePositive(c, .dilation) ?? 1
        padding = try c.decodeIfPresent(Conv1dPadding.self, forKey: .padding) ?? .valid
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .none
        if padding == .same && stride != 1 {
            throw DecodingError.dataCorruptedError(forKey: .padding, in: c, debugDescription: "padding 'same' needs stride 1, got stride \(stride)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(weight, forKey: .weight)
        try c.encodeIfPresent(bias, forKey: .bias)
        if stride != 1 { try c.encode(stride, forKey: .stride) }
        if padding != .valid { try c.encode(padding, forKey: .padding) }
        if dilation != 1 { try c.encode(dilation, forKey: .dilation) }
        if activation != .none { try c.encode(activation, forKey: .activation) }
    }
}

/// `{"type": "recurrence", "name"?, "weight", "decay", "bias"?, "output"?, "form"?, "activation"?}`:
/// the linear recurrence h_t = a ⊙ h_{t−1} + B·x_t + b over time (h_{−1} = 0), B = `weight`
/// `[state, in_channels]`, a = `decay` `[state]`. `output` is `"sequence"` (every h_t) or `"last"`
/// (h_{T−1} only); `form` is `"auto"` (the faster of the two forms, timed at load on the layer's
/// real shape), `"matrix"` (the unrolled lower-triangular operator) or `"scan"`.
public struct RecurrenceLayerSpec: Sendable, Equatable, Codable {
    public enum Output: String, Sendable, Codable { case sequence, last }
    public enum Form: String, Sendable, Codable { case auto, matrix, scan }

    public var name: String?
    /// Tensor name of B; defaults to `"<name>.weight"`.
    public var weight: String
    /// Tensor name of a; defaults to `"<name>.decay"`.
    public var decay: String
    public var bias: String?
    public var output: Output
    public var form: Form
    public var activation: Activation

    public init(name: String? = nil, weight: String, decay: String, bias: String? = nil, output: Output = .sequence,
                form: Form = .auto, activation: Activation = .none) {
        self.name = name
        self.weight = weight
        self.decay = decay
        self.bias = bias
        self.output = output
        self.form = form
        self.activation = activation
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name, weight, decay, bias, output, form, activation }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        weight = try decodeTensorName(c, .weight, name: name, suffix: "weight", layer: "a recurrence layer", decoder: decoder)
        decay = try decodeTensorName(c, .decay, name: name, suffix: "decay", layer: "a recurrence layer", decoder: decoder)
        bias = try c.decodeIfPresent(String.self, forKey: .bias)
        output = try decodeChoice(c, .output, Output.self, known: "sequence, last") ?? .sequence
        form = try decodeChoice(c, .form, Form.self, known: "auto, matrix, scan") ?? .auto
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .none
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(weight, forKey: .weight)
        try c.encode(decay, forKey: .decay)
        try c.encodeIfPresent(bias, forKey: .bias)
        if output != .sequence { try c.encode(output, forKey: .output) }
        if form != .auto { try c.encode(form, forKey: .form) }
        if activation != .none { try c.encode(activation, forKey: .activation) }
    }
}

/// Pooling over time, per channel: `{"type": "maxpool1d" | "avgpool1d", "name"?, "kernelSize",
/// "stride"?}` (stride defaults to the kernel size; a last partial window is dropped, as in
/// PyTorch) or `{"type": "globalmaxpool1d" | "globalavgpool1d", "name"?}` (over all steps).
public struct PoolLayerSpec: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case max, average }

    public var name: String?
    public var kind: Kind
    /// nil: global (one window over every step).
    public var kernelSize: Int?
    public var stride: Int?

    public init(name: String? = nil, kind: Kind, kernelSize: Int? = nil, stride: Int? = nil) {
        self.name = name
        self.kind = kind
        self.kernelSize = kernelSize
        self.stride = stride
    }

    /// The manifest type string.
    public var type: String {
        (kernelSize == nil ? "global" : "") + (kind == .max ? "maxpool1d" : "avgpool1d")
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name, kernelSize, stride }

    init(from decoder: any Decoder, kind: Kind, global: Bool) throws {
        try decoder.rejectUnknownKeys(allowed: (global ? [CodingKeys.type, .name] : CodingKeys.allCases).map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.kind = kind
        name = try c.decodeIfPresent(String.self, forKey: .name)
        if global {
            kernelSize = nil
            stride = nil
        } else {
            guard let size = try decodePositive(c, .kernelSize) else {
                throw DecodingError.keyNotFound(CodingKeys.kernelSize, .init(codingPath: decoder.codingPath,
                                                                            debugDescription: "a pooling layer needs 'kernelSize'"))
            }
            kernelSize = size
            stride = try decodePositive(c, .stride) ?? size
        }
    }

    public init(from decoder: any Decoder) throws {
        let type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
        try self.init(from: decoder, kind: type.contains("max") ? .max : .average, global: type.hasPrefix("global"))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(kernelSize, forKey: .kernelSize)
        if let stride, stride != kernelSize { try c.encode(stride, forKey: .stride) }
    }
}

/// `{"type": "flatten", "name"?}`: the (time × channel) values of a row become one step of
/// `channels·time` features in PyTorch's `[channels, time]` order (feature c·T + t), so a following
/// `linear` layer takes PyTorch's weight as it is. Like softmax, it carries only a name.
public typealias FlattenLayerSpec = SoftmaxLayerSpec

/// A tensor-name key that defaults to `"<name>.<suffix>"`.
func decodeTensorName<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K, name: String?, suffix: String,
                                    layer: String, decoder: any Decoder) throws -> String {
    if let value = try c.decodeIfPresent(String.self, forKey: key) { return value }
    if let name { return "\(name).\(suffix)" }
    throw DecodingError.keyNotFound(key, .init(codingPath: decoder.codingPath, debugDescription: "\(layer) needs '\(key.stringValue)' or 'name'"))
}

/// An optional integer key that must be ≥ 1.
private func decodePositive<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Int? {
    guard let value = try c.decodeIfPresent(Int.self, forKey: key) else { return nil }
    guard value >= 1 else { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be at least 1, got \(value)") }
    return value
}

/// An optional string key that must name one of `T`'s cases.
private func decodeChoice<K: CodingKey, T: RawRepresentable<String>>(_ c: KeyedDecodingContainer<K>, _ key: K, _ type: T.Type,
                                                                     known: String) throws -> T? {
    guard let raw = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
    guard let value = T(rawValue: raw) else {
        throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "unknown value '\(raw)' (known: \(known))")
    }
    return value
}
