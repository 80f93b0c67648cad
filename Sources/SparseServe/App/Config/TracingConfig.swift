import Foundation
import SparseJSON

/// `"tracing"` in the config file: where spans go. Tracing is off unless an endpoint is set here,
/// by `--otlp-endpoint` or by `OTEL_EXPORTER_OTLP_ENDPOINT`.
public struct TracingConfig: Sendable, Equatable {
    /// Base URL of an OTLP/HTTP collector (`/v1/traces` is appended), like `OTEL_EXPORTER_OTLP_ENDPOINT`.
    public var otlpEndpoint: String?
    /// `service.name` of the spans (default `sparse-serve`).
    public var serviceName: String?
    /// One of `TraceSampler.names` (default: `OTEL_TRACES_SAMPLER`, else `parentbased_traceidratio`).
    public var sampler: String?
    /// The ratio of the `traceidratio` samplers, 0...1 (default: `OTEL_TRACES_SAMPLER_ARG`, else 1).
    public var sampleRatio: Double?
    public init() {}

    static func parse(_ json: JSON) throws -> TracingConfig {
        var o = try StrictObject(json, path: "tracing")
        var t = TracingConfig()
        if let v = try o.string("otlpEndpoint") {
            _ = try TracingSettings.tracesURL(v, source: "tracing.otlpEndpoint")
            t.otlpEndpoint = v
        }
        if let v = try o.string("serviceName") {
            guard !v.isEmpty, v.utf8.count <= 256 else { throw ConfigError(field: "tracing.serviceName", reason: "must be 1-256 characters") }
            t.serviceName = v
        }
        if let v = try o.string("sampler") {
            guard TraceSampler.names.contains(v) else { throw ConfigError(field: "tracing.sampler", reason: TracingSettings.unknownSampler(v)) }
            t.sampler = v
        }
        if let v = try o.take("sampleRatio") {
            guard let r = v.doubleValue, (0...1).contains(r) else {
                throw ConfigError(field: "tracing.sampleRatio", reason: "must be a number from 0 to 1")
            }
            t.sampleRatio = r
        }
        try o.finish()
        return t
    }
}

/// Tracing as the server runs it, resolved from the command line, the config file and the
/// standard OpenTelemetry variables, in that order of precedence.
public struct TracingSettings: Sendable, Equatable {
    /// Where spans are posted (the collector's `/v1/traces`).
    public var tracesURL: String
    public var serviceName: String
    public var sampler: TraceSampler
    /// Where each value came from, for the start-up log line.
    public var source: String

    /// nil when tracing is off (no endpoint anywhere, or `OTEL_SDK_DISABLED=true`). A malformed
    /// endpoint or ratio, or a sampler SparseServe does not have, is an error naming where it came from.
    public static func resolve(flag: String?, config: TracingConfig, environment env: [String: String]) throws -> TracingSettings? {
        if env["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return nil }
        let url: String, source: String
        if let flag {
            (url, source) = (try tracesURL(flag, source: "--otlp-endpoint"), "--otlp-endpoint")
        } else if let configured = config.otlpEndpoint {
            (url, source) = (try tracesURL(configured, source: "tracing.otlpEndpoint"), "tracing.otlpEndpoint")
        } else if let full = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], !full.isEmpty {
            (url, source) = (try checkedURL(full, source: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        } else if let base = env["OTEL_EXPORTER_OTLP_ENDPOINT"], !base.isEmpty {
            (url, source) = (try tracesURL(base, source: "OTEL_EXPORTER_OTLP_ENDPOINT"), "OTEL_EXPORTER_OTLP_ENDPOINT")
        } else {
            return nil
        }
        let name = config.serviceName ?? env["OTEL_SERVICE_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? "sparse-serve"
        return TracingSettings(tracesURL: url, serviceName: name, sampler: try sampler(config: config, environment: env, url: url), source: source)
    }

    /// The sampler of `tracing.sampler` or `OTEL_TRACES_SAMPLER` (else `parentbased_traceidratio`)
    /// with, for the ratio samplers, `tracing.sampleRatio` or `OTEL_TRACES_SAMPLER_ARG` (else 1).
    /// Other samplers ignore the argument, as OpenTelemetry has it.
    static func sampler(config: TracingConfig, environment env: [String: String], url: String) throws -> TraceSampler {
        var name = TraceSampler.defaultName
        if let configured = config.sampler {
            name = configured
        } else if let text = env["OTEL_TRACES_SAMPLER"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            guard TraceSampler.names.contains(text) else { throw ConfigError(field: "OTEL_TRACES_SAMPLER", reason: unknownSampler(text)) }
            name = text
        }
        var ratio = 1.0
        if TraceSampler.takesRatio(name) {
            if let r = config.sampleRatio {
                ratio = r
            } else if let text = env["OTEL_TRACES_SAMPLER_ARG"], !text.isEmpty {
                guard let r = Double(text), (0...1).contains(r) else {
                    throw ConfigError(field: "OTEL_TRACES_SAMPLER_ARG", reason: "'\(text)' is not a sampling ratio from 0 to 1 (tracing to \(url))")
                }
                ratio = r
            }
        }
        return TraceSampler(name: name, ratio: ratio)!
    }

    static func unknownSampler(_ name: String) -> String {
        "'\(name.prefix(100))' is not a sampler SparseServe has; expected one of \(TraceSampler.names.joined(separator: ", "))"
    }

    /// `base` + `/v1/traces`, after checking `base` is an http(s) URL with a host.
    static func tracesURL(_ base: String, source: String) throws -> String {
        let checked = try checkedURL(base, source: source)
        return checked.hasSuffix("/") ? checked + "v1/traces" : checked + "/v1/traces"
    }

    static func checkedURL(_ text: String, source: String) throws -> String {
        let example = "an http:// or https:// URL with a host, for example http://otel-collector:4318"
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, text.utf8.count <= 2048 else {
            throw ConfigError(field: source, reason: "'\(text.prefix(200))' is not \(example)")
        }
        if let port = url.port, !(1...65535).contains(port) {
            throw ConfigError(field: source, reason: "port \(port) of '\(text)' is out of range; expected \(example)")
        }
        return text
    }
}
