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
        XCTAssertEqual(flag.sampler, TraceSampler(name: "parentbased_traceidratio", ratio: 0.25))
        XCTAssertEqual(try TracingSettings.resolve(flag: nil, config: config, environment: env)?.tracesURL, "http://from-config:4318/v1/traces")
        let fromEnv = try XCTUnwrap(TracingSettings.resolve(flag: nil, config: TracingConfig(), environment: env))
        XCTAssertEqual(fromEnv.tracesURL, "https://from-env:4318/v1/traces")
        XCTAssertEqual(fromEnv.source, "OTEL_EXPORTER_OTLP_ENDPOINT")
        // the signal-specific variable is a full URL, used as it is
        let full = try TracingSettings.resolve(flag: nil, config: TracingConfig(), environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:1/custom"])
        XCTAssertEqual(full?.tracesURL, "http://c:1/custom")
        XCTAssertEqual(full?.serviceName, "sparse-serve")
        XCTAssertEqual(full?.sampler, TraceSampler(name: "parentbased_traceidratio", ratio: 1))
        config.serviceName = "configured"
        config.sampleRatio = 0.5
        let configured = try TracingSettings.resolve(flag: nil, config: config, environment: env)
        XCTAssertEqual(configured?.serviceName, "configured")
        XCTAssertEqual(configured?.sampler.ratio, 0.5)
    }

    func testBadSettingsNameTheirSource() {
        for (flag, env, field) in [("not a url", [:], "--otlp-endpoint"), ("ftp://c:1", [:], "--otlp-endpoint"), ("http://", [:], "--otlp-endpoint"),
                                   ("http://c:99999", [:], "--otlp-endpoint"), ("http://c:1/?q=1", [:], "--otlp-endpoint"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"], "OTEL_EXPORTER_OTLP_ENDPOINT"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "2"], "OTEL_TRACES_SAMPLER_ARG"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "half"], "OTEL_TRACES_SAMPLER_ARG"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "jaeger_remote"], "OTEL_TRACES_SAMPLER"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "AlwaysOn"], "OTEL_TRACES_SAMPLER"),
                                   (nil, ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio",
                                          "OTEL_TRACES_SAMPLER_ARG": "-1"], "OTEL_TRACES_SAMPLER_ARG")] as [(String?, [String: String], String)] {
            XCTAssertThrowsError(try TracingSettings.resolve(flag: flag, config: TracingConfig(), environment: env)) { error in
                XCTAssertEqual((error as? ConfigError)?.field, field, "\(error)")
            }
        }
    }

    func testSamplerFromTheEnvironmentOrTheConfigWithItsArgument() throws {
        let url = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"]
        func resolved(_ env: [String: String], _ config: TracingConfig = TracingConfig()) throws -> TraceSampler? {
            try TracingSettings.resolve(flag: nil, config: config, environment: url.merging(env) { $1 })?.sampler
        }
        XCTAssertEqual(try resolved([:]), TraceSampler(name: "parentbased_traceidratio", ratio: 1), "OpenTelemetry's default, parent-based always on")
        for name in TraceSampler.names {
            let s = try XCTUnwrap(try resolved(["OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": "0.25"]))
            XCTAssertEqual(s.name, name)
            XCTAssertEqual(s.ratio, name.hasSuffix("always_on") ? 1 : name.hasSuffix("always_off") ? 0 : 0.25, name)
            XCTAssertEqual(s.followsParent, name.hasPrefix("parentbased_"))
        }
        XCTAssertEqual(try resolved(["OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "not read"])?.name, "always_on",
                       "samplers without a ratio ignore the argument")
        var config = TracingConfig()
        config.sampler = "traceidratio"
        config.sampleRatio = 0.5
        XCTAssertEqual(try resolved(["OTEL_TRACES_SAMPLER": "always_off"], config), TraceSampler(name: "traceidratio", ratio: 0.5), "the config first")
    }

    func testConfigSection() throws {
        let config = try ServiceConfig.parse(Array(#"{"tracing": {"otlpEndpoint": "http://c:4318", "serviceName": "s", "sampleRatio": 0.1}, "endpoints": [{"name": "d", "model": "m"}]}"#.utf8), baseDirectory: "/")
        XCTAssertEqual(config.tracing.otlpEndpoint, "http://c:4318")
        XCTAssertEqual(config.tracing.sampleRatio, 0.1)
        for (body, field) in [(#"{"otlpEndpoint": "c:4318"}"#, "tracing.otlpEndpoint"), (#"{"sampleRatio": 3}"#, "tracing.sampleRatio"),
                              (#"{"endpoint": "http://c"}"#, "tracing.endpoint"), (#"{"serviceName": ""}"#, "tracing.serviceName"),
                              (#"{"sampler": "xray"}"#, "tracing.sampler")] {
            XCTAssertThrowsError(try ServiceConfig.parse(Array(#"{"tracing": \#(body), "endpoints": [{"name": "d", "model": "m"}]}"#.utf8), baseDirectory: "/")) { error in
                XCTAssertEqual((error as? ConfigError)?.field, field, "\(error)")
            }
        }
    }
}
