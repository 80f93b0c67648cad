import Foundation
import Logging
import SparseServe
import Tracing

/// Span export: `SpanExporter` (SparseServe/Tracing) posting OTLP/HTTP protobuf batches from its
/// own thread, behind a bounded queue (see README, "Tracing").
enum OTLPExport {
    /// A running exporter: the tracer requests use, and `stop` to flush and end it.
    struct Running {
        var tracer: any Tracer
        var stop: @Sendable () -> Void
    }

    /// Starts exporting to `settings.tracesURL`. Spans the exporter loses are counted in `metrics`.
    static func start(_ settings: TracingSettings, metrics: ServerMetrics, logger: Logger) throws -> Running {
        let exporter: SpanExporter
        do {
            exporter = try SpanExporter(settings, environment: ProcessInfo.processInfo.environment, metrics: metrics, logger: logger)
        } catch {
            throw ExitMessage("tracing (\(settings.source) → \(settings.tracesURL)): \(error)")
        }
        return Running(tracer: exporter.tracer) { exporter.stop() }
    }
}
