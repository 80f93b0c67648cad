import XCTest
@testable import SparseServe

final class TracingConfigTests: XCTestCase {
    func testOffUnlessAnEndpointIsSet() throws {
        XCTAssertNil(try TracingSettings.resolve(flag: nil, config: TracingConfig(), environment: ["OTEL_SERVICE_NAME": "x"]))
        XCTAssertNil(try TracingSettings.resolve(flag: "http://c:4318", config: TracingConfig(), environment: ["OTEL_SDK_DISABLED": "true"]))
    }

    func testFlagThenConfigThenEnvironment() throws {
        var config = TracingConfig()
        config.otlpEndpoint = "http://from-config:4318/"
        let env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "https://from-env:4318", "OTEL_SERVICE_NAME": "svc", "OTEL_TRACES_SAMPLER_ARG": "0.25"]
        let flag = try XCTUnwrap(TracingSettings.resolve(flag: "http://from-flag:4318", config: config, environment: env))
        XCTAssertEqual(flag.tracesURL, "http://from-flag:4318/v1/traces")
        XCTAssertEqual(flag.serviceName, "svc")
        XCTAssertEqual(flag.sampleRatio, 0.25)
        XCTAssertEqual(try TracingSettings.resolve(flag: nil, config: config, environment: env)?.tracesURL, "http://from-config:4318/v1/traces")
        let fromEnv = try XCTUnwrap(TracingSettings.resolve(flag: nil, config: TracingConfig(), environment: env))
        XCTAssertEqual(fromEnv.tracesURL, "https://from-env:4318/v1/traces")
        XCTAssertEqual(fromEnv.source, "OTEL_EXPORTER_OTLP_ENDPOINT")
        // the signal-specific variable is a full URL, used as it is
        let full = try TracingSettings.resolve(flag: nil, config: TracingConfig(), environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:1/custom"])
        XCTAssertEqual(full?.tracesURL, "http://c:1/custom")
        XCTAssertEqual(full?.serviceName, "sparse-serve")
        XCTAssertEqual(full?.sampleRatio, 1)
        config.serviceName = "configured"
        config.sampleRatio = 0.5
        let configured = try TracingSettings.resolve(flag: nil, config: config, environment: env)
        XCTAssertEqual(configured?.serviceName, "configured")
        XCTAssertEqual(configured?.sampleRatio, 0.5)
    }

    func testBadSettingsNameTheirSource() {
        for (flag, env, field) in [("not a url", [:], "--otlp-endpoint"), ("ftp://c:1", [:], "--otlp-endpoint"), ("http://", [:], "--otlp-endpoint"),
                                   ("http://c:99999", [:], "--otlp-endpoint"), ("http://c:1/?q=1", [:], "--otlp-endpoint"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"], "OTEL_EXPORTER_OTLP_ENDPOINT"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "2"], "OTEL_TRACES_SAMPLER_ARG"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "half"], "OTEL_TRACES_SAMPLER_ARG")] as [(String?, [String: String], String)] {
            XCTAssertThrowsError(try TracingSettings.resolve(flag: flag, config: TracingConfig(), environment: env)) { error in
                XCTAssertEqual((error as? ConfigError)?.field, field, "\(error)")
            }
        }
    }

    func testConfigSection() throws {
        let config = try ServiceConfig.parse(Array(#"{"tracing": {"otlpEndpoint": "http://c:4318", "serviceName": "s", "sampleRatio": 0.1}, "endpoints": [{"name": "d", "model": "m"}]}"#.utf8), baseDirectory: "/")
        XCTAssertEqual(config.tracing.otlpEndpoint, "http://c:4318")
        XCTAssertEqual(config.tracing.sampleRatio, 0.1)
        for (body, field) in [(#"{"otlpEndpoint": "c:4318"}"#, "tracing.otlpEndpoint"), (#"{"sampleRatio": 3}"#, "tracing.sampleRatio"),
                              (#"{"endpoint": "http://c"}"#, "tracing.endpoint"), (#"{"serviceName": ""}"#, "tracing.serviceName")] {
            XCTAssertThrowsError(try ServiceConfig.parse(Array(#"{"tracing": \#(body), "endpoints": [{"name": "d", "model": "m"}]}"#.utf8), baseDirectory: "/")) { error in
                XCTAssertEqual((error as? ConfigError)?.field, field, "\(error)")
            }
        }
    }
}
