import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

/// Artifacts written by `ArtifactWriter.write` load without re-compression, compute exactly what
/// compressing at load computes, and refuse metadata that does not describe their tensors.
final class ArtifactWriterTests: XCTestCase {
    var digits: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    func write(_ plan: CompressionPlan, json: String = #"{"method": "test"}"#) throws -> String {
        let dir = try makeTemporaryDirectory()
        let out = dir.appendingPathComponent("artifact").path
        _ = try ArtifactWriter.write(source: digits, plan: plan, compressionJSON: json, toolVersion: "test", output: out)
        return out
    }

    func testArtifactsComputeWhatCompressingAtLoadComputes() throws {
        let split = try SafeTensors(contentsOf: repositoryRoot().appendingPathComponent("models/digits-mlp/test.safetensors").path)
        let x = Matrix(rows: 450, columns: 64, values: try split.tensor(named: "inputs"))
        let plans = [
            CompressionPlan(method: .pinned(.transposableNM(n: 2, m: 4)), overrides: [("fc3", .dense)]),
            CompressionPlan(method: .pinned(.nm(n: 3, m: 8))),
            CompressionPlan(method: .pinned(.csr(density: 0.3))),
            CompressionPlan(method: .pinned(.blast(blocks: 2, rank: 12, parameterRatio: nil, iterations: 5)), overrides: [("fc3", .dense)]),
            CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .columns, radius: nil, radiusRatio: 0.9)),
                                                        ("fc2", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.4))]),
        ]
        for plan in plans {
            let path = try write(plan)
            XCTAssertTrue(ModelLoader.isArtifact(directory: path))
            let loaded = try XCTUnwrap(try ModelLoader.load(directory: path) as? MLPModel)
            let compressed = try XCTUnwrap(try ModelLoader.load(directory: digits, compression: plan, compressor: WeightCompressor()) as? MLPModel)
            XCTAssertEqual(loaded.forward(x).values, compressed.forward(x).values, "\(plan.method)")
            XCTAssertEqual(loaded.summary.artifact?.toolVersion, "test")
            XCTAssertNil(compressed.summary.artifact)
            for (a, b) in zip(loaded.summary.layers, compressed.summary.layers) {
                XCTAssertEqual(a.storage, b.storage)
                XCTAssertEqual(a.compression, b.compression, "\(a.name)")
            }
            XCTAssertEqual(loaded.summary.compressionTotals?.storedBytes, compressed.summary.compressionTotals?.storedBytes)
        }
    }

    func testAnArtifactTakesNoFurtherCompression() throws {
        let path = try write(CompressionPlan(method: .pinned(.nm(n: 2, m: 4))))
        assertError(try ModelLoader.load(directory: path, compression: CompressionPlan(method: .nm(n: 1, m: 4)), compressor: WeightCompressor()),
                    contains: ["model.json", "is a compressed artifact", "no compression may be applied"])
        assertError(try ArtifactWriter.write(source: path, plan: .dense, compressionJSON: "{}", toolVersion: "t", output: path + "-again"),
                    contains: ["already a compressed artifact"])
    }

    func testOutputDirectoryRules() throws {
        let dir = try makeTemporaryDirectory()
        let busy = dir.appendingPathComponent("busy")
        try FileManager.default.createDirectory(at: busy, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: busy.appendingPathComponent("keep"))
        assertError(try ArtifactWriter.write(source: digits, plan: .dense, compressionJSON: "{}", toolVersion: "t", output: busy.path),
                    contains: ["refusing to overwrite"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: busy.appendingPathComponent("keep").path))
        assertError(try ArtifactWriter.write(source: digits, plan: .dense, compressionJSON: "{}", toolVersion: "t", output: digits),
                    contains: ["must differ from the source"])
        // An empty directory, and then the artifact in it, may be (re)written.
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        for _ in 0..<2 {
            _ = try ArtifactWriter.write(source: digits, plan: .dense, compressionJSON: #"{"method":"dense"}"#, toolVersion: "t", output: empty.path)
        }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["busy", "empty"], "no staging directory left behind")
    }

    /// Rewrites the artifact's safetensors with `change` applied to its metadata.
    func rewrite(_ path: String, _ change: (inout [String: String]) throws -> Void) throws {
        let file = ModelLoader.path(path, ModelLoader.weightsFileName)
        let original = try SafeTensors(contentsOf: file)
        var metadata = original.metadata
        try change(&metadata)
        var writer = SafeTensorsWriter(metadata: metadata)
        for info in original.tensors { try writer.add(info.name, dtype: info.dtype, shape: info.shape, bytes: try original.rawBytes(named: info.name)) }
        try writer.write(to: file)
    }

    /// Edits the metadata's layer records; the totals are made to agree with them again.
    func editLayers(_ path: String, _ change: (inout [[String: Any]]) -> Void) throws {
        try rewrite(path) { metadata in
            var layers = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(metadata["layers"]!.utf8)) as? [[String: Any]])
            change(&layers)
            metadata["layers"] = String(decoding: try JSONSerialization.data(withJSONObject: layers), as: UTF8.self)
            let dense = layers.reduce(0) { $0 + ($1["denseBytes"] as? Int ?? 0) }, stored = layers.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) }
            metadata["totals"] = #"{"denseBytes": \#(dense), "storedBytes": \#(stored), "compressionRatio": 1}"#
        }
    }

    func testMetadataThatDoesNotDescribeTheTensorsIsRefused() throws {
        let plan = CompressionPlan(method: .pinned(.nm(n: 2, m: 4)), overrides: [("fc3", .dense)])
        func fresh() throws -> String { try write(plan) }
        func refused(_ path: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
            assertError(try ModelLoader.load(directory: path), contains: fragments, file: file, line: line)
        }
        var path = try fresh()
        try rewrite(path) { $0["format_version"] = "2" }
        refused(path, ["model.safetensors", "format_version '2' is not supported"])
        path = try fresh()
        try rewrite(path) { $0["tool_version"] = nil }
        refused(path, ["'tool_version' is missing"])
        path = try fresh()
        try rewrite(path) { $0["activations"] = "pwl:1" }
        refused(path, ["activations 'pwl:1'"])
        path = try fresh()
        try rewrite(path) { $0["totals"] = #"{"denseBytes": 1, "storedBytes": 2, "compressionRatio": 0.5}"# }
        refused(path, ["totals say 1 dense and 2 stored bytes"])
        path = try fresh()
        try editLayers(path) { $0[0]["density"] = 0.9 }
        refused(path, ["tensor 'fc1.nm.values'", "density 0.9"])
        path = try fresh()
        try editLayers(path) { $0[1]["bytes"] = 12 }
        refused(path, ["tensor 'fc2.nm.values'", "bytes 12"])
        path = try fresh()
        try editLayers(path) { $0[2]["shape"] = [9, 256] }
        refused(path, ["tensor 'fc3.dense.weight'", "shape is [10, 256], expected [9, 256]"])
        path = try fresh()
        try editLayers(path) { $0[0]["parameters"] = ["n": 2, "m": 8, "mask": "magnitude"] }
        refused(path, ["tensor 'fc1.nm.values'", "shape is [16, 16, 2, 16], expected [16, 8, 2, 16]"])
        path = try fresh()
        try editLayers(path) { $0[0]["method"] = "zip" }
        refused(path, ["metadata of layer 'fc1'", "method 'zip'"])
        path = try fresh()
        try editLayers(path) { $0[0]["unknown"] = 1 }
        refused(path, ["'layers' is not valid", "unknown key 'unknown'"])
        path = try fresh()
        try editLayers(path) { $0.append($0[2]); $0[3]["name"] = "fc4" }
        refused(path, ["metadata lists layer 'fc4', which the model does not have"])
        path = try fresh()
        try editLayers(path) { $0.removeLast() }
        refused(path, ["no entry for layer 'fc3'"])
        path = try fresh()
        try editLayers(path) { $0[1]["name"] = "fc1" }
        refused(path, ["layer 'fc1' is listed twice"])
        path = try fresh()
        try editLayers(path) { $0[2]["tensors"] = ["fc3.dense.weight"] }
        refused(path, ["lists tensors [\"fc3.dense.weight\"]"])
    }

    func testManifestMarkerIsChecked() throws {
        var path = try write(.dense)
        let manifest = ModelLoader.path(path, ModelLoader.manifestFileName)
        let marked = try String(contentsOfFile: manifest, encoding: .utf8)
        try marked.replacingOccurrences(of: #""version" : 1"#, with: #""version" : 7"#).write(toFile: manifest, atomically: true, encoding: .utf8)
        assertError(try ModelLoader.load(directory: path), contains: ["model.json", "compressed.version 7 is not supported"])
        path = try write(.dense)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ModelLoader.path(path, "model.json")))) as? [String: Any])
        json["compressed"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: ModelLoader.path(path, "model.json")))
        assertError(try ModelLoader.load(directory: path), contains: ["model.json", "is a compressed artifact but this manifest has no \"compressed\" marker"])
    }
}

/// A bert-encoder artifact (MiniLM): packed layers, unfused and fused projections, PWL activations
/// recorded with it, and every other file and tensor of the model carried over.
final class BertArtifactTests: XCTestCase {
    func testMiniLMArtifactEmbedsLikeCompressingAtLoad() throws {
        if dlsym(dlopen(nil, RTLD_NOW), "__tsan_init") != nil {
            throw XCTSkip("file format and numerics only (no new concurrency): skipped under ThreadSanitizer, where it takes minutes")
        }
        let source = MiniLMFiles.modelDirectory.path
        guard FileManager.default.fileExists(atPath: ModelLoader.path(source, ModelLoader.weightsFileName)) else {
            throw XCTSkip("models/minilm-l6 is absent: run scripts/fetch-minilm.sh")
        }
        let dir = try makeTemporaryDirectory()
        let plan = CompressionPlan(method: .dense, overrides: [("encoder.layer.0.intermediate.dense", .pinned(.nm(n: 2, m: 4))),
                                                               ("encoder.layer.1.attention.self.key", .pinned(.csr(density: 0.5)))],
                                   activations: .pwl(segments: 32))
        let out = dir.appendingPathComponent("minilm-artifact").path
        let written = try ArtifactWriter.write(source: source, plan: plan, compressionJSON: #"{"method":"dense"}"#, toolVersion: "t", output: out)
        XCTAssertEqual(written.summary.layers.filter { $0.compression != nil }.count, 36)
        for file in ["vocab.txt", "config.json", "1_Pooling"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: ModelLoader.path(out, file)), file)
        }
        let artifact = try XCTUnwrap(try ModelLoader.load(directory: out) as? BertEncoderModel)
        let compressed = try BertEncoderLoader.load(directory: source, compression: plan, compressor: WeightCompressor())
        let texts = ["hello world", "Sparse matrices store only their non-zero entries."]
        XCTAssertEqual(try artifact.embed(texts: texts), try compressed.embed(texts: texts))
        let layers = Dictionary(uniqueKeysWithValues: artifact.summary.layers.map { ($0.name, $0) })
        XCTAssertEqual(layers["encoder.layer.0.intermediate.dense"]?.storage, "nm 2:4")
        XCTAssertEqual(layers["encoder.layer.1.attention.self.key"]?.storage, "csr")
        XCTAssertEqual(layers["encoder.layer.2.attention.self.query"]?.compression?.method, "dense")
        XCTAssertTrue(layers["encoder.layer.0.intermediate.dense"]?.activation?.hasPrefix("gelu (pwl 32 segments") == true)
    }

    /// Trained LayerNorms (recovery with `trainNorms`) replace the source's tensors in the artifact
    /// and load back; a name that is not a source tensor, or a wrong size, is refused.
    func testTrainedLayerNormsAreStoredAndLoadBack() throws {
        if dlsym(dlopen(nil, RTLD_NOW), "__tsan_init") != nil { throw XCTSkip("file format and numerics only: skipped under ThreadSanitizer") }
        let source = MiniLMFiles.modelDirectory.path
        guard FileManager.default.fileExists(atPath: ModelLoader.path(source, ModelLoader.weightsFileName)) else {
            throw XCTSkip("models/minilm-l6 is absent: run scripts/fetch-minilm.sh")
        }
        let dir = try makeTemporaryDirectory()
        let plan = CompressionPlan(method: .dense, overrides: [("encoder.layer.0.intermediate.dense", .pinned(.nm(n: 2, m: 4)))])
        let gamma = (0..<384).map { 1 + Float($0 % 7) / 20 }, beta = (0..<384).map { Float($0 % 5) / 10 - 0.2 }
        let norms = ["encoder.layer.2.output.LayerNorm.weight": gamma, "encoder.layer.2.output.LayerNorm.bias": beta]
        func write(_ tensors: [String: [Float]], to name: String) throws -> String {
            let out = dir.appendingPathComponent(name).path
            _ = try ArtifactWriter.write(source: source, plan: plan, compressionJSON: #"{"method":"dense"}"#, toolVersion: "t", output: out) { _ in
                ([:], tensors, #"{"test": true}"#)
            }
            return out
        }
        let out = try write(norms, to: "normed")
        let file = try SafeTensors(contentsOf: ModelLoader.path(out, ModelLoader.weightsFileName))
        XCTAssertEqual(try file.tensor(named: "encoder.layer.2.output.LayerNorm.weight"), gamma)
        XCTAssertEqual(try file.tensor(named: "encoder.layer.2.output.LayerNorm.bias"), beta)
        let dense = try SafeTensors(contentsOf: ModelLoader.path(source, ModelLoader.weightsFileName))
        XCTAssertEqual(try file.tensor(named: "encoder.layer.1.output.LayerNorm.weight"), try dense.tensor(named: "encoder.layer.1.output.LayerNorm.weight"))
        let artifact = try XCTUnwrap(try ModelLoader.load(directory: out) as? BertEncoderModel)
        let compressed = try BertEncoderLoader.load(directory: source, compression: plan, compressor: WeightCompressor())
        let texts = ["hello world", "Sparse matrices store only their non-zero entries."]
        XCTAssertEqual(try artifact.embed(texts: texts), try compressed.replacingNorms(norms).embed(texts: texts))
        XCTAssertNotEqual(try artifact.embed(texts: texts), try compressed.embed(texts: texts))
        assertError(try write(["encoder.layer.2.output.LayerNorm.gain": gamma], to: "unknown"), contains: ["encoder.layer.2.output.LayerNorm.gain", "not a stored tensor"])
        assertError(try write(["encoder.layer.2.output.LayerNorm.bias": [1, 2]], to: "short"), contains: ["2 F32 values"])
        assertError(try compressed.replacingNorms(["encoder.layer.9.output.LayerNorm.bias": beta]), contains: ["name no encoder LayerNorm"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("short").path))
    }
}
