import Foundation

/// How a model evaluates its non-linear functions: exactly (vectorised polynomial kernels), or as
/// piecewise-linear tables of `segments` uniform segments (`PWLActivation`). The bert-encoder uses
/// the tables for the FFN's GELU (on [-8, 8]) and the attention softmax's exp (on [-12, 0]).
public enum ActivationApproximation: Sendable, Equatable, CustomStringConvertible {
    case exact
    case pwl(segments: Int)

    public var description: String {
        switch self {
        case .exact: return "exact"
        case .pwl(let segments): return "pwl \(segments) segments"
        }
    }
}

/// A model's compression: one method for every linear layer, with per-layer overrides chosen by
/// name pattern (`*` matches any run of characters, e.g. `"encoder.*.ffn.*"`, `"classifier"`);
/// the first matching pattern wins. `activations` says how the non-linear functions are evaluated.
public struct CompressionPlan: Sendable, Equatable {
    public var method: LayerCompression
    public var overrides: [(pattern: String, method: LayerCompression)]
    public var activations: ActivationApproximation

    public init(method: LayerCompression = .dense, overrides: [(pattern: String, method: LayerCompression)] = [],
                activations: ActivationApproximation = .exact) {
        self.method = method
        self.overrides = overrides
        self.activations = activations
    }

    public static let dense = CompressionPlan()

    public func method(forLayer name: String) -> LayerCompression {
        overrides.first { Self.matches(name, pattern: $0.pattern) }?.method ?? method
    }

    /// Glob match where `*` matches any characters (including none).
    public static func matches(_ name: String, pattern: String) -> Bool {
        let n = Array(name.utf8), p = Array(pattern.utf8)
        var i = 0, j = 0, star = -1, mark = 0
        while i < n.count {
            if j < p.count && p[j] == UInt8(ascii: "*") {
                star = j
                mark = i
                j += 1
            } else if j < p.count && p[j] == n[i] {
                i += 1
                j += 1
            } else if star >= 0 {
                j = star + 1
                mark += 1
                i = mark
            } else {
                return false
            }
        }
        while j < p.count && p[j] == UInt8(ascii: "*") { j += 1 }
        return j == p.count
    }

    public static func == (a: CompressionPlan, b: CompressionPlan) -> Bool {
        a.method == b.method && a.activations == b.activations && a.overrides.count == b.overrides.count
            && zip(a.overrides, b.overrides).allSatisfy { $0.pattern == $1.pattern && $0.method == $1.method }
    }
}
