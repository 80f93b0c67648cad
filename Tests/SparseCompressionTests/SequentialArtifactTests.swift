import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// Artifacts of sequential models (GunPoint's 1-D CNN): conv window weights and linear layers are
/// stored like any linear layer, load without re-compression, compute what compressing at load
/// computes, and broken ones are refused naming the tensor.
final class SequentialArtifactTests: XCTestCase {
    var timeseries: String { repositoryRoot().appendingPathComponent("models/timeseries").path }

    func write(_ plan: CompressionPlan) throws -> String {
        let dir = try makeTemporaryDirectory()
        let out = dir.appendingPathComponent("artifact").path
        _ = try ArtifactWriter.write(source: timeseries, plan: plan, compressionJSON: #"{"method": "dense"}"#, toolVersion: "test", output: out)
        return out
    }

    func testArtifactsComputeWhatCompressingAtLoadComputes() throws {
        let split = try SafeTensors(contentsOf: timeseries + "/test.safetensors")
        let x = Matrix(rows: 150, columns: 150, values: try split.tensor(named: "inputs"))
        let plans = [
            CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))]),
            CompressionPlan(method: .dense, overrides: [("conv1", .pinned(.blast(blocks: 1, rank: nil, parameterRatio: 0.5, iterations: 10))),
                                                        ("conv*", .pinned(.blast(blocks: 4, rank: nil, parameterRatio: 0.5, iterations: 10)))]),
            CompressionPlan(method: .pinned(.csr(density: 0.5))),
        ]
        for plan in plans {
            let path = try write(plan)
            let file = try SafeTensors(contentsOf: path + "/model.safetensors")
            XCTAssertFalse(file.contains("conv2.weight"), "the dense conv weight is replaced")
            let loaded = try XCTUnwrap(try ModelLoader.load(directory: path) as? SequentialModel)
            let compressed = try XCTUnwrap(try ModelLoader.load(directory: timeseries, compression: plan, compressor: WeightCompressor()) as? SequentialModel)
            XCTAssertEqual(loaded.forward(x).values, compressed.forward(x).values, "\(plan.method)")
            XCTAssertEqual(loaded.summary.artifact?.toolVersion, "test")
            for (a, b) in zip(loaded.summary.layers, compressed.summary.layers) {
                XCTAssertEqual(a.storage, b.storage, a.name)
                XCTAssertEqual(a.compression?.storedBytes, b.compression?.storedBytes, a.name)
                XCTAssertEqual(a.compression?.relativeError ?? 0, b.compression?.relativeError ?? 0, accuracy: 1e-12, a.name)
            }
        }
        let nm = try write(plans[0])
        let layers = try CompressedArtifact.Metadata(try SafeTensors(contentsOf: nm + "/model.safetensors")).layers
        XCTAssertEqual(layers.map(\.name), ["conv1", "conv2", "conv3", "fc"])
        XCTAssertEqual(layers.map(\.shape), [[8, 7], [16, 40], [32, 48], [2, 32]])
        XCTAssertEqual(layers[1].sourceWeight, "conv2.weight")
    }

    /// `inspect`'s re-measurement reads conv weights in their window layout.
    func testErrorsAreReMeasuredAgainstTheSource() throws {
        let path = try write(CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))]))
        let (_, builder) = try ModelLoader.open(directory: path, timeLayers: false)
        let rows = try CompressedArtifact.verifyErrors(of: try XCTUnwrap(builder)).get()
        XCTAssertEqual(rows.count, 4)
        for row in rows { XCTAssertEqual(row.recorded, row.measured, accuracy: 1e-9, row.layer) }
        XCTAssertGreaterThan(rows[1].measured, 0.1)
    }

    func testBrokenArtifactsAreRefusedNamingTheTensor() throws {
        let plan = CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))])
        func refused(_ change: (inout [String: String], inout [String: (SafeTensorsDType, [Int], [UInt8])]) throws -> Void,
                     _ fragments: [String], line: UInt = #line) throws {
            let path = try write(plan)
            let file = ModelLoader.path(path, ModelLoader.weightsFileName), original = try SafeTensors(contentsOf: file)
            var metadata = original.metadata
            var tensors = Dictionary(uniqueKeysWithValues: try original.tensors.map { ($0.name, ($0.dtype, $0.shape, Array(try original.rawBytes(named: $0.name)))) })
            try change(&metadata, &tensors)
            var writer = SafeTensorsWriter(metadata: metadata)
            for (name, t) in tensors.sorted(by: { $0.key < $1.key }) { try writer.add(name, dtype: t.0, shape: t.1, bytes: Data(t.2)) }
            try writer.write(to: file)
            assertError(try ModelLoader.load(directory: path), contains: fragments, line: line)
        }
        try refused({ _, t in t["conv2.nm.indices"] = nil }, ["conv2.nm.indices"])
        try refused({ _, t in t["conv3.nm.values"]!.1 = [2, 6, 4, 16] }, ["conv3.nm.values", "shape is [2, 6, 4, 16]"])
        try refused({ _, t in
            var bytes = t["conv1.nm.values"]!.2
            bytes.replaceSubrange(0..<4, with: [0, 0, 0xC0, 0x7F])  // a NaN
            t["conv1.nm.values"]!.2 = bytes
        }, ["conv1.nm.values"])
        try refused({ m, _ in
            m["layers"] = m["layers"]!.replacingOccurrences(of: "[16,40]", with: "[16,41]").replacingOccurrences(of: "[16, 40]", with: "[16, 41]")
        }, ["conv2", "41"])
    }
}
