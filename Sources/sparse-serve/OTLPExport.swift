import Dispatch
import Foundation
import Logging
import SparseServe
import Tracing
#if OTLPExport
import OTel
import ServiceLifecycle
#endif

/// The span exporter: swift-otel's OTLP/HTTP (protobuf) exporter behind its bounded batch queue,
/// compiled in with the package trait `OTLPExport` (see README, "Tracing").
enum OTLPExport {
    #if OTLPExport
    static let isAvailable = true
    #else
    static let isAvailable = false
    #endif

    /// A running exporter: the tracer requests use, and `stop` to flush and end it.
    struct Running {
        var tracer: any Tracer
        var stop: @Sendable () -> Void
    }

    /// Starts exporting to `settings.tracesURL`. Spans the exporter loses are counted in `metrics`.
    static func start(_ settings: TracingSettings, metrics: ServerMetrics, logger: Logger) throws -> Running {
        #if OTLPExport
        var config = OTel.Configuration.default
        config.serviceName = settings.serviceName
        config.logs.enabled = false
        config.metrics.enabled = false
        config.traces.exporter = .otlp
        config.traces.otlpExporter.protocol = .httpProtobuf
        config.traces.otlpExporter.endpoint = settings.tracesURL
        config.traces.sampler = .parentBasedTraceIDRatio(ratio: settings.sampleRatio) ?? .parentBasedAlwaysOn
        config.diagnosticLogLevel = .warning
        let diagnostics = ExportDiagnostics(metrics: metrics, forwardingTo: logger)
        config.diagnosticLogger = .custom(Logger(label: "sparse-serve.otlp") { _ in diagnostics })
        // The variables resolved into `settings` are taken out so they cannot override them.
        var environment = ProcessInfo.processInfo.environment
        for key in TracingSettings.resolvedVariables { environment[key] = nil }
        let service = try OTel.bootstrap(configuration: config, environment: environment)
        metrics.countDroppedSpans(0, reason: .queueFull)
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger))
        let task = Task.detached { try? await group.run() }
        return Running(tracer: InstrumentationSystem.tracer) {
            let done = DispatchSemaphore(value: 0)
            Task.detached {
                await group.triggerGracefulShutdown()
                _ = await task.result
                done.signal()
            }
            _ = done.wait(timeout: .now() + 5)
        }
        #else
        throw ExitMessage("tracing is configured (\(settings.source) → \(settings.tracesURL)) but this sparse-serve was built without span export: build it with `swift build -c release --traits OTLPExport` (the Docker image has it), or remove the setting")
        #endif
    }
}
