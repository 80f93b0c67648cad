import Foundation

/// A Prometheus metric family: counters, gauges or histograms sharing a name, help text and label names.
/// Updates are thread-safe; label values are kept low-cardinality by the callers (model, route, code).
public final class MetricFamily: @unchecked Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public let name: String
    public let help: String
    public let kind: Kind
    public let labelNames: [String]
    /// Upper bounds of histogram buckets (ascending; +Inf is implicit).
    public let buckets: [Double]

    private let lock = NSLock()
    private var values: [[String]: Double] = [:]
    private var histograms: [[String]: (counts: [UInt64], sum: Double, count: UInt64)] = [:]
    private var order: [[String]] = []
    /// Read at render time for gauges whose value lives elsewhere (queue depth, memory).
    private var collectors: [[String]: @Sendable () -> Double] = [:]

    init(name: String, help: String, kind: Kind, labelNames: [String], buckets: [Double]) {
        self.name = name
        self.help = help
        self.kind = kind
        self.labelNames = labelNames
        self.buckets = buckets
    }

    private func remember(_ labels: [String]) {
        precondition(labels.count == labelNames.count, "\(name): expected labels \(labelNames)")
        if values[labels] == nil && histograms[labels] == nil && collectors[labels] == nil { order.append(labels) }
    }

    /// Adds to a counter or gauge.
    public func add(_ delta: Double = 1, _ labels: String...) {
        lock.lock(); defer { lock.unlock() }
        remember(labels)
        values[labels, default: 0] += delta
    }

    /// Sets a gauge.
    public func set(_ value: Double, _ labels: String...) {
        lock.lock(); defer { lock.unlock() }
        remember(labels)
        values[labels] = value
    }

    /// Makes a gauge read its value from `read` whenever metrics are rendered.
    public func collect(_ labels: String..., read: @escaping @Sendable () -> Double) {
        lock.lock(); defer { lock.unlock() }
        remember(labels)
        collectors[labels] = read
    }

    /// Drops one labelled series (e.g. the info line of a model that was reloaded with another method).
    public func remove(_ labels: String...) {
        lock.lock(); defer { lock.unlock() }
        values[labels] = nil
        histograms[labels] = nil
        collectors[labels] = nil
        order.removeAll { $0 == labels }
    }

    /// Drops every series whose label `label` is `value` (an unloaded model's series).
    public func removeSeries(label: String, value: String) {
        guard let index = labelNames.firstIndex(of: label) else { return }
        lock.lock(); defer { lock.unlock() }
        let gone = order.filter { $0[index] == value }
        for labels in gone {
            values[labels] = nil
            histograms[labels] = nil
            collectors[labels] = nil
        }
        order.removeAll { $0[index] == value }
    }

    /// Records one histogram observation.
    public func observe(_ value: Double, _ labels: String...) {
        lock.lock(); defer { lock.unlock() }
        remember(labels)
        var h = histograms[labels] ?? (Array(repeating: 0, count: buckets.count), 0, 0)
        if let i = buckets.firstIndex(where: { value <= $0 }) { h.counts[i] += 1 }
        h.sum += value
        h.count += 1
        histograms[labels] = h
    }

    /// The current value of a counter or gauge (tests and stats).
    public func value(_ labels: String...) -> Double {
        lock.lock(); defer { lock.unlock() }
        if let c = collectors[labels] { return c() }
        return values[labels] ?? 0
    }

    /// (count, sum) of a histogram series.
    public func histogramTotals(_ labels: String...) -> (count: UInt64, sum: Double) {
        lock.lock(); defer { lock.unlock() }
        let h = histograms[labels]
        return (h?.count ?? 0, h?.sum ?? 0)
    }

    func render(into out: inout String) {
        lock.lock(); defer { lock.unlock() }
        out += "# HELP \(name) \(MetricFamily.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
        for labels in order {
            let base = zip(labelNames, labels).map { "\($0)=\"\(MetricFamily.escapeLabel($1))\"" }
            if kind == .histogram, let h = histograms[labels] {
                var cumulative: UInt64 = 0
                for (bound, c) in zip(buckets, h.counts) {
                    cumulative += c
                    out += "\(name)_bucket{\((base + ["le=\"\(MetricFamily.format(bound))\""]).joined(separator: ","))} \(cumulative)\n"
                }
                out += "\(name)_bucket{\((base + ["le=\"+Inf\""]).joined(separator: ","))} \(h.count)\n"
                let suffix = base.isEmpty ? "" : "{\(base.joined(separator: ","))}"
                out += "\(name)_sum\(suffix) \(MetricFamily.format(h.sum))\n"
                out += "\(name)_count\(suffix) \(h.count)\n"
            } else {
                let v = collectors[labels]?() ?? values[labels] ?? 0
                let suffix = base.isEmpty ? "" : "{\(base.joined(separator: ","))}"
                out += "\(name)\(suffix) \(MetricFamily.format(v))\n"
            }
        }
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeLabel(_ s: String) -> String {
        escapeHelp(s).replacingOccurrences(of: "\"", with: "\\\"")
    }
}

/// All metrics of one server, rendered for `GET /metrics` in the Prometheus text format 0.0.4.
public final class MetricsRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var families: [MetricFamily] = []

    public init() {}

    /// Geometric latency buckets from 50 µs to ~70 s (factor 1.5), fine enough for sub-ms models.
    public static let latencyBuckets: [Double] = (0..<36).map { 5e-5 * pow(1.5, Double($0)) }.map { Double(String(format: "%.6g", $0))! }

    public func family(_ name: String, _ help: String, _ kind: MetricFamily.Kind, labels: [String] = [], buckets: [Double] = []) -> MetricFamily {
        lock.lock(); defer { lock.unlock() }
        if let existing = families.first(where: { $0.name == name }) { return existing }
        let f = MetricFamily(name: name, help: help, kind: kind, labelNames: labels, buckets: buckets)
        families.append(f)
        return f
    }

    /// Drops every series of every family whose label `label` is `value`.
    public func removeSeries(label: String, value: String) {
        lock.lock()
        let list = families
        lock.unlock()
        for f in list { f.removeSeries(label: label, value: value) }
    }

    public func render() -> String {
        lock.lock()
        let list = families
        lock.unlock()
        var out = ""
        for f in list { f.render(into: &out) }
        return out
    }
}
