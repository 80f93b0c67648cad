import Logging

/// The log handler given to the span exporter (swift-otel) for its own diagnostics. swift-otel
/// reports lost spans only in these messages, so this handler turns them into
/// `sparseserve_tracing_spans_dropped_total` and passes every message on to the server's log:
/// - "Spans were dropped this iteration because queue was full" (`dropped_count`): the bounded
///   queue was full, the collector being slow or down → `queue_full`;
/// - "Failed to export batch." (`batch_size`): a batch was refused, timed out or failed → `export_failed`.
/// The message texts are those of swift-otel 1.6; `ExportDiagnosticsTests` pins them.
public struct ExportDiagnostics: LogHandler {
    public static let queueFullMessage = "Spans were dropped this iteration because queue was full"
    public static let exportFailedMessage = "Failed to export batch."

    private let metrics: ServerMetrics
    private var forward: Logger
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// The level asked for (`OTEL_LOG_LEVEL` may set it); warnings always come through, since the
    /// drop counts are in them, but only messages at this level or above are passed on.
    private var requested: Logger.Level = .warning
    public var logLevel: Logger.Level {
        get { min(requested, .warning) }
        set { requested = newValue }
    }

    public init(metrics: ServerMetrics, forwardingTo logger: Logger) {
        self.metrics = metrics
        forward = logger
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let text = event.message.description
        if text == Self.queueFullMessage, let n = Self.count(all["dropped_count"]) {
            metrics.countDroppedSpans(n, reason: .queueFull)
        } else if text == Self.exportFailedMessage, let n = Self.count(all["batch_size"]) {
            metrics.countDroppedSpans(n, reason: .exportFailed)
        }
        guard event.level >= requested else { return }
        var fields = all
        if let error = event.error { fields["error"] = "\(error)" }
        forward.log(level: event.level, "OTLP exporter: \(text)", metadata: fields)
    }

    private static func count(_ value: Logger.Metadata.Value?) -> Int? {
        value.flatMap { Int("\($0)") }
    }
}
