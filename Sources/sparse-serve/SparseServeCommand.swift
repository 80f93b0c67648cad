import ArgumentParser
import Foundation
import Logging
import SparseServe

@main
struct SparseServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparse-serve",
        abstract: "Serve compressed neural networks over the Open Inference Protocol (v2).",
        version: InferenceService.version,
        subcommands: [Serve.self, Probe.self, Inspect.self, Compress.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP inference server.")

    @Option(help: "Path of the JSON config file (env SPARSESERVE_CONFIG; default Deploy/config.json unless --model-dir is given).")
    var config: String?

    @Option(help: ArgumentHelp("Serve the models in this folder instead of a config file (env SPARSESERVE_MODEL_DIR), e.g. /mnt/models from KServe's storage initializer.",
                               discussion: "The folder's sparse-serve.json if it has one, else the folder itself if it holds model.json, else each subfolder holding model.json (named after it). An empty, missing or unreadable folder stops the server at start, naming the path."))
    var modelDir: String? = ProcessInfo.processInfo.environment["SPARSESERVE_MODEL_DIR"]

    @Option(help: "Endpoint name of the model when --model-dir itself is a model folder (default: the folder's name; unused otherwise).")
    var modelName: String?

    @Option(help: "Listen address; overrides server.host.")
    var host: String?

    @Option(help: "Listen port (0 = any free port); overrides server.port.")
    var port: Int?

    @Option(help: "Compute threads; overrides server.threads.")
    var threads: Int?

    @Option(help: "File of API keys, one per line, added to server.apiKeys (env SPARSESERVE_API_KEYS_FILE; e.g. a mounted secret).")
    var apiKeysFile: String? = ProcessInfo.processInfo.environment["SPARSESERVE_API_KEYS_FILE"]

    @Option(help: ArgumentHelp("Base URL of an OTLP/HTTP collector for trace spans, e.g. http://otel-collector:4318; overrides tracing.otlpEndpoint and OTEL_EXPORTER_OTLP_ENDPOINT."))
    var otlpEndpoint: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["SPARSESERVE_LOG_LEVEL"] ?? "info"

    func validate() throws {
        if config != nil && modelDir != nil { throw ValidationError("--config and --model-dir are alternatives: give one") }
        if modelName != nil && modelDir == nil { throw ValidationError("--model-name needs --model-dir") }
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be in 1...256") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() throws {
        installStopSignalHandlers()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap({ label, provider in
            var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
            handler.logLevel = level
            return handler
        }, metadataProvider: RequestTracing.logMetadataProvider)
        let logger = Logger(label: "sparse-serve")
        let source = modelDir.map { "--model-dir \($0)" } ?? configPath
        let (modelDir, modelName, configPath) = (modelDir, modelName, configPath)
        // The flags apply to the settings re-read on SIGHUP too, so an unchanged file reloads as unchanged.
        let overrides = ServerOverrides(host: host, port: port, threads: threads, apiKeysFile: apiKeysFile)
        let readSettings: @Sendable () throws -> ServiceConfig = {
            try overrides.applied(to: Serve.readSettings(modelDir: modelDir, modelName: modelName, configPath: configPath))
        }
        let settings: ServiceConfig
        let tracing: TracingSettings?
        do {
            settings = try readSettings()
            tracing = try TracingSettings.resolve(flag: otlpEndpoint, config: settings.tracing, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ExitMessage("\(error)")
        }
        try runServer(settings, tracing: tracing, source: source, reread: readSettings, logger: logger)
    }

    /// The config file --config (or SPARSESERVE_CONFIG) names, else the default one.
    var configPath: String { config ?? ProcessInfo.processInfo.environment["SPARSESERVE_CONFIG"] ?? "Deploy/config.json" }

    /// The settings from --model-dir or the config file (again on SIGHUP).
    static func readSettings(modelDir: String?, modelName: String?, configPath: String) throws -> ServiceConfig {
        if let modelDir { return try ModelDirectory.config(path: modelDir, name: modelName) }
        return try ServiceConfig.load(path: configPath)
    }
}

/// A fatal start-up problem printed without a stack of ArgumentParser help text.
struct ExitMessage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts the service and parks the main thread; SIGTERM/SIGINT drain and exit 0, SIGHUP re-reads
/// the settings (`reread`: the config file or the model folder) and reloads the endpoints that changed.
/// Kept out of top-level code so Dispatch closures are not main-actor isolated.
func runServer(_ settings: ServiceConfig, tracing: TracingSettings?, source: String, reread: @escaping @Sendable () throws -> ServiceConfig,
               logger: Logger) throws -> Never {
    let metrics = ServerMetrics()
    let exporter = try tracing.map { try OTLPExport.start($0, metrics: metrics, logger: logger) }
    if let tracing {
        logger.info("tracing: spans go to \(tracing.tracesURL)", metadata: [
            "source": "\(tracing.source)", "service": "\(tracing.serviceName)", "sampler": "\(tracing.sampler)",
        ])
    }
    let service = InferenceService(config: settings, logger: logger, metrics: metrics, tracer: exporter?.tracer)
    let urls: [String]
    do {
        urls = try service.start()
    } catch {
        throw ExitMessage("cannot listen on \(settings.server.host):\(settings.server.port): \(error)")
    }
    // The port is open (liveness answers, readiness says 503) while the models load and warm up.
    do {
        try service.loadEndpoints()
    } catch {
        throw ExitMessage("\(error)")
    }
    logger.info("SparseServe \(InferenceService.version) ready", metadata: [
        "urls": "\(urls.joined(separator: " "))", "endpoints": "\(service.endpoints.map(\.name).joined(separator: ","))",
        "computeThreads": "\(settings.server.threads)", "ioThreads": "\(settings.server.ioThreads)",
    ])
    for url in urls { print("SparseServe listening on \(url)") }
    fflush(nil)

    // A signal that arrived before this point is already waiting in the pipe: none is lost.
    let waiter = Thread {
        var byte: UInt8 = 0
        while true {
            let n = read(stopSignalPipe.read, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1, Int32(byte) == SIGHUP else { break }
            logger.info("SIGHUP: reloading config", metadata: ["config": "\(source)"])
            service.reloadTLS()
            do {
                service.reload(try reread())
            } catch {
                logger.error("config reload failed; keeping the running endpoints", metadata: ["error": "\(error)"])
                service.metrics.countConfigReloadFailure()
            }
        }
        logger.info("signal received; draining", metadata: ["signal": "\(byte)", "graceSeconds": "\(settings.server.gracePeriodSeconds)"])
        service.drain()
        exporter?.stop()
        logger.info("stopped")
        fflush(nil)
        exit(0)
    }
    waiter.start()
    dispatchMain()
}

/// Self-pipe for SIGTERM/SIGINT/SIGHUP: the async-signal-safe handler writes the signal number, a thread reads it.
nonisolated(unsafe) private var stopSignalPipe: (read: Int32, write: Int32) = (-1, -1)

/// Installs the SIGTERM/SIGINT/SIGHUP handlers; call first thing, before any thread or listener exists.
func installStopSignalHandlers() {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { return }
    stopSignalPipe = (fds[0], fds[1])
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(stopSignalPipe.write, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(sig, &action, nil)
    }
}
