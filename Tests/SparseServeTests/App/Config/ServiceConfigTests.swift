import XCTest
@testable import SparseServe
import SparseModels

/// The service config file: server fields, endpoints, compression plans, keys, batching and compat
/// sections, each error naming its field.
final class ServiceConfigTests: XCTestCase {
    func parse(_ text: String) throws -> ServiceConfig {
        try ServiceConfig.parse(Array(text.utf8), baseDirectory: "/base/dir")
    }

    func assertConfigError(_ text: String, field: String, reasonContains: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try parse(text)
            XCTFail("accepted \(text)", file: file, line: line)
        } catch let e as ConfigError {
            XCTAssertEqual(e.field, field, file: file, line: line)
            XCTAssertTrue(e.reason.contains(reasonContains), e.reason, file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func testDefaultsAndPathResolution() throws {
        let c = try parse(#"{"endpoints": [{"name": "digits", "model": "../models/digits-mlp"}, {"name": "abs", "model": "/m"}]}"#)
        XCTAssertEqual(c.server.port, 8000)
        XCTAssertEqual(c.server.host, "127.0.0.1")
        XCTAssertEqual(c.endpoints[0].modelPath, "/base/models/digits-mlp")
        XCTAssertEqual(c.endpoints[1].modelPath, "/m")
        XCTAssertEqual(c.endpoints[0].version, "1")
        XCTAssertEqual(c.endpoints[0].compression.method, "dense")
    }

    func testAllServerFields() throws {
        let c = try parse(#"""
        {"server": {"host": "::1", "port": 0, "threads": 3, "ioThreads": 1, "maxBodyBytes": 1000, "maxConnections": 5,
                    "maxQueueSize": 7, "headerReadTimeoutSeconds": 1.5, "bodyReadTimeoutSeconds": 2,
                    "idleTimeoutSeconds": 3, "gracePeriodSeconds": 0},
         "endpoints": [{"name": "d", "model": "m", "version": "2", "maxBodyBytes": 10, "compression": {"method": "dense"}}]}
        """#)
        XCTAssertEqual(c.server.host, "::1")
        XCTAssertEqual(c.server.threads, 3)
        XCTAssertEqual(c.server.headerReadTimeoutSeconds, 1.5)
        XCTAssertEqual(c.server.gracePeriodSeconds, 0)
        XCTAssertEqual(c.endpoints[0].maxBodyBytes, 10)
        XCTAssertEqual(c.endpoints[0].version, "2")
    }

    func testErrorsNameTheField() {
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m"}], "extra": 1}"#, field: "extra", reasonContains: "unknown key")
        assertConfigError(#"{"server": {"prot": 1}, "endpoints": [{"name": "d", "model": "m"}]}"#, field: "server.prot", reasonContains: "unknown key")
        assertConfigError(#"{"server": {"port": -1}, "endpoints": [{"name": "d", "model": "m"}]}"#, field: "server.port", reasonContains: "out of range")
        assertConfigError(#"{"server": {"threads": 1.5}, "endpoints": [{"name": "d", "model": "m"}]}"#, field: "server.threads", reasonContains: "integer")
        assertConfigError(#"{"server": {"idleTimeoutSeconds": 0}, "endpoints": [{"name": "d", "model": "m"}]}"#, field: "server.idleTimeoutSeconds", reasonContains: "> 0")
        assertConfigError(#"{"server": []}"#, field: "server", reasonContains: "object")
        assertConfigError(#"{}"#, field: "endpoints", reasonContains: "required")
        assertConfigError(#"{"endpoints": [{"model": "m"}]}"#, field: "endpoints[0].name", reasonContains: "required")
        assertConfigError(#"{"endpoints": [{"name": "d/e", "model": "m"}]}"#, field: "endpoints[0].name", reasonContains: "letters")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m"}, {"name": "d", "model": "n"}]}"#, field: "endpoints[1].name", reasonContains: "duplicate")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "zip"}}]}"#, field: "endpoints[0].compression.method", reasonContains: "not a supported")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "nm"}}]}"#, field: "endpoints[0].compression", reasonContains: "needs integers 'n' and 'm'")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "nm", "n": 2, "m": 5}}]}"#, field: "endpoints[0].compression.m", reasonContains: "must be 4, 8 or 16")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "nm", "n": 2, "m": 4, "mask": "random"}}]}"#, field: "endpoints[0].compression.mask", reasonContains: "not a mask kind")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "blast", "blocks": 4}}]}"#, field: "endpoints[0].compression", reasonContains: "exactly one of 'rank' and 'parameterRatio'")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "l1inf"}}]}"#, field: "endpoints[0].compression", reasonContains: "exactly one of 'radius' and 'radiusRatio'")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "l1inf", "radiusRatio": 0.5, "groups": "blocks"}}]}"#, field: "endpoints[0].compression.groups", reasonContains: "'columns' or 'rows'")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "csr", "density": 1.5}}]}"#, field: "endpoints[0].compression.density", reasonContains: "(0, 1]")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "layers": {"fc*": {"method": "nm", "n": 2, "m": 4, "x": 1}}}}]}"#, field: "endpoints[0].compression.layers.fc*.x", reasonContains: "unknown key")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "n": 2}}]}"#, field: "endpoints[0].compression.n", reasonContains: "unknown key")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m""#, field: "", reasonContains: "invalid JSON")
    }

    func testCompressionPlans() throws {
        let c = try parse(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "nm", "n": 2, "m": 4, "mask": "magnitude", "layers": {"fc3": {"method": "dense"}, "fc*": {"method": "csr", "density": 0.25}}}}]}"#)
        let plan = c.endpoints[0].compression.plan
        XCTAssertEqual(c.endpoints[0].compression.method, "nm")
        XCTAssertEqual(plan.method(forLayer: "fc3"), .dense)
        XCTAssertEqual(plan.method(forLayer: "fc1"), .csr(density: 0.25))
        XCTAssertEqual(plan.method(forLayer: "out"), .nm(n: 2, m: 4))
        let t = try parse(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "nm", "n": 4, "m": 8, "mask": "transposable"}}]}"#)
        XCTAssertEqual(t.endpoints[0].compression.plan.method, .transposableNM(n: 4, m: 8))
        XCTAssertEqual(t.endpoints[0].compression.plan.activations, .exact)
    }

    func testQuantizeNextToMethodsAndInOverrides() throws {
        func plan(_ compression: String) throws -> CompressionPlan {
            try parse(#"{"endpoints": [{"name": "d", "model": "m", "compression": "# + compression + "}]}").endpoints[0].compression.plan
        }
        let p = try plan(#"{"method": "dense", "quantize": {"weights": "int8", "activations": "int8-dynamic"}, "layers": {"fc1": {"method": "nm", "n": 2, "m": 4, "pin": true, "quantize": {"weights": "int8", "activations": "int8-dynamic"}}, "fc2": {"method": "blast", "blocks": 2, "rank": 4, "quantize": {"weights": "bf16"}}, "fc3": {"method": "dense", "quantize": {"weights": "int8", "granularity": {"group": 64}}}, "fc4": {"method": "dense", "quantize": {"weights": "int8", "granularity": "channel"}}}}"#)
        XCTAssertEqual(p.method, .quantized(.dense, .int8Dynamic))
        XCTAssertEqual(p.method(forLayer: "fc1"), .pinned(.quantized(.nm(n: 2, m: 4), .int8Dynamic)))
        XCTAssertEqual(p.method(forLayer: "fc2"), .quantized(.blast(blocks: 2, rank: 4, parameterRatio: nil, iterations: 100), .bf16))
        XCTAssertEqual(p.method(forLayer: "fc3"), .quantized(.dense, .int8(.group(64))))
        XCTAssertEqual(p.method(forLayer: "fc4"), .quantized(.dense, .int8(.channel)))
        let q = "endpoints[0].compression.quantize"
        func refused(_ quantize: String, method: String = #""method": "dense""#, field: String = q, _ reason: String, line: UInt = #line) {
            assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"# + method + #", "quantize": "# + quantize + "}}]}",
                              field: field, reasonContains: reason, line: line)
        }
        refused(#"{"weights": "int4"}"#, field: "\(q).weights", "int8, bf16")
        refused(#"{"activations": "int8-dynamic"}"#, field: "\(q).weights", "is required")
        refused(#"{"weights": "bf16", "granularity": "channel"}"#, "no 'granularity'")
        refused(#"{"weights": "int8", "granularity": "tensor"}"#, field: "\(q).granularity", "channel")
        refused(#"{"weights": "int8", "granularity": {"group": 0}}"#, field: "\(q).granularity.group", "out of range")
        refused(#"{"weights": "int8", "granularity": {"group": 64}, "activations": "int8-dynamic"}"#, field: "\(q).granularity", "per-channel")
        refused(#"{"weights": "int8", "activations": "int4"}"#, field: "\(q).activations", "int8-dynamic")
        refused(#"{"weights": "int8", "scale": 1}"#, field: "\(q).scale", "unknown key")
        refused(#"{"weights": "int8", "granularity": {"group": 64}}"#, method: #""method": "csr", "density": 0.5"#, "one scale per output row")
        refused(#"{"weights": "bf16"}"#, method: #""method": "csr", "density": 0.5"#, "no CSR bf16 kernel")
        XCTAssertEqual(try plan(#"{"method": "csr", "density": 0.5, "quantize": {"weights": "int8", "activations": "int8-dynamic"}}"#).method,
                       .quantized(.csr(density: 0.5), .int8Dynamic))
        refused(#"{"weights": "bf16"}"#, method: #""method": "l1inf", "radiusRatio": 0.5"#, "ℓ1,∞")
        refused(#"{"weights": "int8", "granularity": {"group": 6}}"#, method: #""method": "nm", "n": 2, "m": 4"#, "not a multiple of 4")
        refused(#"{"weights": "int8", "granularity": {"group": 64}}"#, method: #""method": "blast", "blocks": 2, "rank": 4"#, "per rank component")
        refused(#"{"weights": "int8", "activations": "int8-dynamic"}"#, method: #""method": "nm", "n": 4, "m": 8"#, "1:4 and 2:4")
        // weight-only int8 next to every sparse method
        XCTAssertEqual(try plan(#"{"method": "csr", "density": 0.5, "quantize": {"weights": "int8"}}"#).method,
                       .quantized(.csr(density: 0.5), .int8(.channel)))
        XCTAssertEqual(try plan(#"{"method": "nm", "n": 4, "m": 8, "quantize": {"weights": "int8", "granularity": {"group": 64}}}"#).method,
                       .quantized(.nm(n: 4, m: 8), .int8(.group(64))))
        XCTAssertEqual(try plan(#"{"method": "blast", "blocks": 2, "rank": 4, "quantize": {"weights": "int8", "granularity": "channel"}}"#).method,
                       .quantized(.blast(blocks: 2, rank: 4, parameterRatio: nil, iterations: 100), .int8(.channel)))
    }

    func testActivationApproximation() throws {
        func activations(_ json: String) throws -> ActivationApproximation {
            try parse(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "activations": "# + json + "}}]}").endpoints[0]
                .compression.plan.activations
        }
        XCTAssertEqual(try activations(#"{"method": "pwl"}"#), .pwl(segments: 64))
        XCTAssertEqual(try activations(#"{"method": "pwl", "segments": 32}"#), .pwl(segments: 32))
        XCTAssertEqual(try activations(#"{"method": "exact"}"#), .exact)
        let p = "endpoints[0].compression.activations"
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "activations": {"method": "pwl", "segments": 1}}}]}"#,
                          field: "\(p).segments", reasonContains: "2")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "activations": {"method": "cubic"}}}]}"#,
                          field: "\(p).method", reasonContains: "exact, pwl")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "activations": {"method": "exact", "segments": 8}}}]}"#,
                          field: "\(p).segments", reasonContains: "unknown key")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "compression": {"method": "dense", "activations": "pwl"}}]}"#,
                          field: p, reasonContains: "object")
    }

    func testKeysAndPublicRoutes() throws {
        let c = try parse(#"{"server": {"publicRoutes": ["health"]}, "endpoints": [{"name": "d", "model": "m", "apiKeys": ["0123456789abcdefXYZ"]}]}"#)
        XCTAssertEqual(c.server.publicRoutes, [.health])
        XCTAssertEqual(c.endpoints[0].apiKeys, ["0123456789abcdefXYZ"])
        XCTAssertEqual(try parse(#"{"endpoints": [{"name": "d", "model": "m"}]}"#).server.publicRoutes, [.health, .metrics, .openapi])
        assertConfigError(#"{"server": {"publicRoutes": ["health", "infer"]}, "endpoints": [{"name": "d", "model": "m"}]}"#,
                          field: "server.publicRoutes", reasonContains: "health, metadata, metrics, openapi")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "apiKeys": ["short"]}]}"#,
                          field: "endpoints[0].apiKeys", reasonContains: "at least 16")
    }

    func testBatchingSection() throws {
        let c = try parse(#"{"endpoints": [{"name": "d", "model": "m", "batching": {"maxBatchSize": 16, "maxQueueDelayMicroseconds": 500, "maxQueueSize": 8, "preferredBatchSizes": [8, 4], "rejectStatus": 503}}]}"#)
        let b = c.endpoints[0].batching
        XCTAssertEqual(b.maxBatchSize, 16)
        XCTAssertEqual(b.maxQueueDelayMicroseconds, 500)
        XCTAssertEqual(b.maxQueueSize, 8)
        XCTAssertEqual(b.preferredBatchSizes, [4, 8])
        XCTAssertEqual(b.rejectStatus, 503)
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "batching": {"rejectStatus": 500}}]}"#, field: "endpoints[0].batching.rejectStatus", reasonContains: "429 or 503")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "batching": {"maxBatchSize": 4, "preferredBatchSizes": [8]}}]}"#, field: "endpoints[0].batching.preferredBatchSizes", reasonContains: "maxBatchSize")
        assertConfigError(#"{"endpoints": [{"name": "d", "model": "m", "batching": {"maxDelay": 4}}]}"#, field: "endpoints[0].batching.maxDelay", reasonContains: "unknown key")
    }

    func testTokenBudgetAndCompatSections() throws {
        let c = try parse(#"{"endpoints": [{"name": "e", "model": "m", "batching": {"maxBatchTokens": 4096}}, {"name": "d", "model": "n"}], "compat": {"tei": {"model": "e"}}}"#)
        XCTAssertEqual(c.endpoints[0].batching.maxBatchTokens, 4096)
        XCTAssertNil(c.endpoints[1].batching.maxBatchTokens)
        XCTAssertEqual(c.compat.tei.model, "e")
        XCTAssertTrue(c.compat.tei.enabled)
        let off = try parse(#"{"endpoints": [{"name": "e", "model": "m"}], "compat": {"tei": {"enabled": false}}}"#)
        XCTAssertFalse(off.compat.tei.enabled)
        XCTAssertNil(try parse(#"{"endpoints": [{"name": "e", "model": "m"}]}"#).compat.tei.model)
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m"}], "compat": {"tei": {"model": "x"}}}"#, field: "compat.tei.model", reasonContains: "not an endpoint")
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m"}], "compat": {"tei": {"port": 1}}}"#, field: "compat.tei.port", reasonContains: "unknown key")
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m"}], "compat": {"openai": {}}}"#, field: "compat.openai", reasonContains: "unknown key")
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m", "batching": {"maxBatchTokens": 0}}]}"#, field: "endpoints[0].batching.maxBatchTokens", reasonContains: "out of range")
    }

    /// `"artifact"`: served instead of compressing at load when its folder exists (with the
    /// artifact's own compression), else the model with the compression block.
    func testAnEndpointArtifactIsServedWhenItsFolderExists() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("artifact-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = #"{"endpoints": [{"name": "e", "model": "m", "artifact": "built", "compression": {"method": "nm", "n": 2, "m": 4}}]}"#
        let endpoint = try XCTUnwrap(try ServiceConfig.parse(Array(text.utf8), baseDirectory: dir.path).endpoints.first)
        XCTAssertEqual(endpoint.artifactPath, dir.path + "/built")
        XCTAssertEqual(endpoint.resolved, endpoint, "absent artifact: the model, compressed as configured")
        XCTAssertEqual(endpoint.resolved.compression.method, "nm")
        try "not a folder".write(to: dir.appendingPathComponent("built"), atomically: true, encoding: .utf8)
        XCTAssertEqual(endpoint.resolved, endpoint, "a file is not an artifact folder")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("built"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("built"), withIntermediateDirectories: true)
        XCTAssertEqual(endpoint.resolved.modelPath, dir.path + "/built")
        XCTAssertFalse(endpoint.resolved.compression.isSpecified, "an artifact keeps the compression it was made with")
        XCTAssertNil(endpoint.resolved.artifactPath)
        XCTAssertEqual(endpoint.resolved.name, "e")
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m", "artifact": ""}]}"#, field: "endpoints[0].artifact", reasonContains: "compressed artifact")
        assertConfigError(#"{"endpoints": [{"name": "e", "model": "m", "artifact": 3}]}"#, field: "endpoints[0].artifact", reasonContains: "string")
    }

    func testShippedDefaultConfigIsValid() throws {
        var dir = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir.deleteLastPathComponent()
        }
        let c = try ServiceConfig.load(path: dir.appendingPathComponent("Deploy/config.json").path)
        XCTAssertEqual(c.endpoints.map(\.name), ["digits", "timeseries", "digits-2of4", "digits-2of4-t", "digits-blast", "minilm", "minilm-2of4",
                                                 "minilm-blast", "minilm-pwl", "minilm-int8", "minilm-2of4-int8"])
        for endpoint in c.endpoints.prefix(2) {
            XCTAssertTrue(FileManager.default.fileExists(atPath: endpoint.modelPath + "/model.json"), endpoint.name)
            XCTAssertFalse(endpoint.optional, endpoint.name)
        }
        for endpoint in c.endpoints.dropFirst(2) {
            XCTAssertTrue(endpoint.optional, "artifacts (scripts/build_artifacts.sh) and MiniLM weights (fetched) may be absent: \(endpoint.name) must be optional")
        }
        // the compressed MiniLM endpoints serve their recovered artifacts once built (scripts/build_artifacts.sh RECOVER_MINILM=1)
        let artifacts = Dictionary(uniqueKeysWithValues: c.endpoints.compactMap { e in e.artifactPath.map { (e.name, URL(fileURLWithPath: $0).lastPathComponent) } })
        XCTAssertEqual(artifacts, ["minilm-2of4": "minilm-l6-2of4-recovered", "minilm-blast": "minilm-l6-blast-recovered",
                                   "minilm-2of4-int8": "minilm-l6-2of4-int8-recovered"])
        // six MiniLM endpoints: without a choice none would serve the TEI routes; the dense one does
        XCTAssertEqual(c.compat.tei.model, "minilm")
        XCTAssertTrue(c.compat.tei.enabled)
    }
}
