/// A configuration problem, naming the offending field (e.g. `endpoints[1].compression.method`) and why.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var field: String
    public var reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { field.isEmpty ? "config: \(reason)" : "config: \(field): \(reason)" }
}
