import Foundation

/// The metrics SparseServe exports, named with the `sparseserve_` prefix and base units.
public final class ServerMetrics: Sendable {
    public let registry = MetricsRegistry()
    public let httpRequests: MetricFamily
    public let inferenceRequests: MetricFamily
    public let inferenceQueueSeconds: MetricFamily
    public let inferenceComputeSeconds: MetricFamily
    public let inferenceTotalSeconds: MetricFamily
    public let inferenceRows: MetricFamily
    public let queueDepth: MetricFamily
    public let endpointQueueDepth: MetricFamily
    public let batchRows: MetricFamily
    public let modelInfo: MetricFamily
    public let inferenceFailures: MetricFamily
    public let modelLoaded: MetricFamily
    public let modelLoadFailures: MetricFamily
    public let modelParameters: MetricFamily
    public let modelBytes: MetricFamily
    public let modelDensity: MetricFamily
    public let openConnections: MetricFamily
    public let configReloadFailures: MetricFamily

    public init() {
        httpRequests = registry.family("sparseserve_http_requests_total", "HTTP requests answered, by route and status code.", .counter, labels: ["route", "code"])
        inferenceRequests = registry.family("sparseserve_inference_requests_total", "Inference requests, by model and outcome.", .counter, labels: ["model", "outcome"])
        inferenceQueueSeconds = registry.family("sparseserve_inference_queue_seconds", "Time an inference request waited for a compute thread.", .histogram, labels: ["model"], buckets: MetricsRegistry.latencyBuckets)
        inferenceComputeSeconds = registry.family("sparseserve_inference_compute_seconds", "Decode, forward pass and encode time of an inference request.", .histogram, labels: ["model"], buckets: MetricsRegistry.latencyBuckets)
        inferenceTotalSeconds = registry.family("sparseserve_inference_request_duration_seconds", "Inference request time from arrival to response.", .histogram, labels: ["model"], buckets: MetricsRegistry.latencyBuckets)
        inferenceRows = registry.family("sparseserve_inference_rows_total", "Rows (batch entries) run through each model.", .counter, labels: ["model"])
        queueDepth = registry.family("sparseserve_queue_depth", "Inference requests waiting for a compute thread.", .gauge)
        endpointQueueDepth = registry.family("sparseserve_batch_queue_depth", "Requests waiting in a model's batching queue.", .gauge, labels: ["model"])
        batchRows = registry.family("sparseserve_batch_rows", "Rows per executed batch (forward pass).", .histogram, labels: ["model"], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
        modelInfo = registry.family("sparseserve_model_info", "Loaded models (value 1) with their architecture and compression method.", .gauge, labels: ["model", "version", "architecture", "compression"])
        inferenceFailures = registry.family("sparseserve_inference_failures_total", "Failed inference requests, by model and reason (invalid_input, rejected, timeout, cancelled, internal).", .counter, labels: ["model", "reason"])
        modelLoaded = registry.family("sparseserve_model_loaded", "1 while the endpoint has a loaded model, 0 after an unload.", .gauge, labels: ["model"])
        modelLoadFailures = registry.family("sparseserve_model_load_failures_total", "Model loads (start-up, repository load, SIGHUP reload) that failed.", .counter, labels: ["model"])
        modelParameters = registry.family("sparseserve_model_parameters", "Parameters stored by the endpoint's model (after compression).", .gauge, labels: ["model"])
        modelBytes = registry.family("sparseserve_model_bytes", "Bytes of weights the endpoint's model holds in memory.", .gauge, labels: ["model"])
        modelDensity = registry.family("sparseserve_model_density", "Stored weights over dense-equivalent weights (1 = dense).", .gauge, labels: ["model"])
        openConnections = registry.family("sparseserve_open_connections", "Open client connections.", .gauge)
        configReloadFailures = registry.family("sparseserve_config_reload_failures_total", "SIGHUP config reloads rejected because the file was invalid.", .counter)
        configReloadFailures.add(0)
        let build = registry.family("sparseserve_build_info", "Build information (value 1).", .gauge, labels: ["version"])
        build.set(1, InferenceService.version)
        let start = Date().timeIntervalSince1970
        registry.family("process_start_time_seconds", "Start time of the process since the Unix epoch.", .gauge).set(start)
        registry.family("process_resident_memory_bytes", "Resident memory size in bytes.", .gauge).collect { ProcessStats.residentBytes() }
        registry.family("process_open_fds", "Open file descriptors.", .gauge).collect { ProcessStats.openFileDescriptors() }
        registry.family("process_cpu_seconds_total", "User and system CPU time in seconds.", .counter).collect { ProcessStats.cpuSeconds() }
    }
}

/// Process facts read from /proc (Linux); zero where unavailable.
enum ProcessStats {
    static func residentBytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func openFileDescriptors() -> Double {
        Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }
}

/// The `outcome` label of `sparseserve_inference_requests_total`.
enum InferenceOutcome: String, Sendable, CaseIterable {
    case success, failure
}

extension ServerMetrics {
    /// One HTTP response.
    func countHTTP(_ route: RouteLabel, status: Int) { httpRequests.add(1, route.rawValue, String(status)) }
    /// One finished inference request.
    func countInference(_ model: String, _ outcome: InferenceOutcome) { inferenceRequests.add(1, model, outcome.rawValue) }
    /// One failed inference request, by reason.
    func countFailure(_ model: String, _ reason: FailureReason) { inferenceFailures.add(1, model, reason.rawValue) }
    /// Inference requests of `model` so far with `outcome`.
    func inferenceCount(_ model: String, _ outcome: InferenceOutcome) -> Double { inferenceRequests.value(model, outcome.rawValue) }
}
