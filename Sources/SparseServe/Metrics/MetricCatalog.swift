import Foundation

/// Names, help texts and buckets of every metric SparseServe exports. swift-metrics has no place
/// for help text, so `PrometheusExposition` adds the `# HELP` lines from `help` at scrape time.
enum MetricCatalog {
    static let httpRequests = "sparseserve_http_requests_total"
    static let inferenceRequests = "sparseserve_inference_requests_total"
    static let inferenceFailures = "sparseserve_inference_failures_total"
    static let queueSeconds = "sparseserve_inference_queue_seconds"
    static let computeSeconds = "sparseserve_inference_compute_seconds"
    static let totalSeconds = "sparseserve_inference_request_duration_seconds"
    static let inferenceRows = "sparseserve_inference_rows_total"
    static let queueDepth = "sparseserve_queue_depth"
    static let batchQueueDepth = "sparseserve_batch_queue_depth"
    static let batchRows = "sparseserve_batch_rows"
    static let modelInfo = "sparseserve_model_info"
    static let modelLoaded = "sparseserve_model_loaded"
    static let modelLoadFailures = "sparseserve_model_load_failures_total"
    static let modelParameters = "sparseserve_model_parameters"
    static let modelBytes = "sparseserve_model_bytes"
    static let modelDensity = "sparseserve_model_density"
    static let openConnections = "sparseserve_open_connections"
    static let configReloadFailures = "sparseserve_config_reload_failures_total"
    static let spansDropped = "sparseserve_tracing_spans_dropped_total"
    static let buildInfo = "sparseserve_build_info"
    static let processStart = "process_start_time_seconds"
    static let processMemory = "process_resident_memory_bytes"
    static let processFDs = "process_open_fds"
    static let processCPU = "process_cpu_seconds_total"

    /// Help text by metric name.
    static let help: [String: String] = [
        httpRequests: "HTTP requests answered, by route and status code.",
        inferenceRequests: "Inference requests, by model and outcome.",
        inferenceFailures: "Failed inference requests, by model and reason (invalid_input, rejected, timeout, cancelled, internal).",
        queueSeconds: "Time an inference request waited for a compute thread.",
        computeSeconds: "Decode, forward pass and encode time of an inference request.",
        totalSeconds: "Inference request time from arrival to response.",
        inferenceRows: "Rows (batch entries) run through each model.",
        queueDepth: "Inference requests waiting for a compute thread.",
        batchQueueDepth: "Requests waiting in a model's batching queue.",
        batchRows: "Rows per executed batch (forward pass).",
        modelInfo: "Loaded models (value 1) with their architecture and compression method.",
        modelLoaded: "1 while the endpoint has a loaded model, 0 after an unload.",
        modelLoadFailures: "Model loads (start-up, repository load, SIGHUP reload) that failed.",
        modelParameters: "Parameters stored by the endpoint's model (after compression).",
        modelBytes: "Bytes of weights the endpoint's model holds in memory.",
        modelDensity: "Stored weights over dense-equivalent weights (1 = dense).",
        openConnections: "Open client connections.",
        configReloadFailures: "SIGHUP config reloads rejected because the file was invalid.",
        spansDropped: "Trace spans not delivered to the OTLP collector, by reason (queue_full, export_failed).",
        buildInfo: "Build information (value 1).",
        processStart: "Start time of the process since the Unix epoch.",
        processMemory: "Resident memory size in bytes.",
        processFDs: "Open file descriptors.",
        processCPU: "User and system CPU time in seconds.",
    ]

    /// Help for a metric another library reported through the same swift-metrics factory.
    static let foreignHelp = "Reported through swift-metrics by code embedding SparseServe."

    /// Geometric latency buckets from 50 µs to ~70 s (factor 1.5), fine enough for sub-ms models.
    static let latencyBuckets: [Double] = (0..<36).map { 5e-5 * pow(1.5, Double($0)) }.map { Double(String(format: "%.6g", $0))! }
    static let batchRowBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    /// Histogram buckets by metric name, for `PrometheusMetricsFactory.valueHistogramBuckets`.
    static let buckets: [String: [Double]] = [
        queueSeconds: latencyBuckets, computeSeconds: latencyBuckets, totalSeconds: latencyBuckets,
        batchRows: batchRowBuckets,
    ]
}
