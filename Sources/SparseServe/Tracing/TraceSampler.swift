/// OpenTelemetry's built-in samplers as `OTEL_TRACES_SAMPLER` names them: `always_on`,
/// `always_off`, `traceidratio` (a trace is kept when its id falls in the ratio, so every service
/// with the same ratio keeps the same traces), and each behind `parentbased_`, which follows the
/// caller's sampled flag when a request brings a `traceparent` and decides only for new traces.
public struct TraceSampler: Sendable, Equatable, CustomStringConvertible {
    /// The names `OTEL_TRACES_SAMPLER` (and `tracing.sampler`) take.
    public static let names = ["always_on", "always_off", "traceidratio",
                               "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"]
    /// What runs when `OTEL_TRACES_SAMPLER` is not set: `parentbased_traceidratio` with the ratio
    /// of `OTEL_TRACES_SAMPLER_ARG`, 1 when that is unset too (OpenTelemetry's default,
    /// `parentbased_always_on`).
    public static let defaultName = "parentbased_traceidratio"

    /// One of `names`.
    public let name: String
    /// Share of traces the sampler keeps where it decides: 1 for `always_on`, 0 for `always_off`,
    /// the argument for the ratio samplers.
    public let ratio: Double
    /// A trace is kept when the top 63 bits of its id's low half are below this.
    private let threshold: UInt64

    /// nil for a name not in `names` or a ratio outside 0...1.
    public init?(name: String, ratio: Double = 1) {
        guard Self.names.contains(name), (0...1).contains(ratio) else { return nil }
        self.name = name
        followsParent = name.hasPrefix("parentbased_")
        let base = followsParent ? String(name.dropFirst("parentbased_".count)) : name
        self.ratio = base == "always_on" ? 1 : base == "always_off" ? 0 : ratio
        threshold = self.ratio >= 1 ? .max : UInt64(self.ratio * 0x1p63)
    }

    /// True for the `parentbased_` samplers (kept, not read from `name` per request: a
    /// `hasPrefix` was ~90 instructions of every traced request).
    public let followsParent: Bool

    /// Whether the ratio samplers read `OTEL_TRACES_SAMPLER_ARG`.
    public static func takesRatio(_ name: String) -> Bool { name.hasSuffix("traceidratio") }

    public var description: String { Self.takesRatio(name) ? "\(name) \(ratio)" : name }

    /// The decision for a span of the trace with low id half `traceLow` under `parent` (nil: a
    /// new trace). Children of a local span get the same answer as it, as the decision depends
    /// on the trace id only.
    public func samples(traceLow: UInt64, parentSampled: Bool?) -> Bool {
        if let parentSampled, followsParent { return parentSampled }
        return threshold == .max || (traceLow >> 1) < threshold
    }
}
