import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

/// Quantized artifacts (`compression.quantize`): int8 values with fp32 scales or bf16 written by
/// `ArtifactWriter`, loaded without re-quantizing, computing what quantizing at load computes;
/// bad scales and values refused naming the tensor.
extension ArtifactWriterTests {
    static let quantizedPlans: [CompressionPlan] = [
        CompressionPlan(method: .quantized(.dense, .int8(.channel))),
        CompressionPlan(method: .quantized(.dense, .int8(.group(64)))),
        CompressionPlan(method: .quantized(.dense, .int8Dynamic)),
        CompressionPlan(method: .quantized(.dense, .bf16)),
        CompressionPlan(method: .pinned(.quantized(.nm(n: 2, m: 4), .int8Dynamic)), overrides: [("fc3", .quantized(.dense, .int8Dynamic))]),
        CompressionPlan(method: .quantized(.nm(n: 2, m: 4), .bf16), overrides: [("fc3", .dense)]),
        CompressionPlan(method: .quantized(.blast(blocks: 2, rank: 12, parameterRatio: nil, iterations: 5), .int8Dynamic), overrides: [("fc3", .dense)]),
        CompressionPlan(method: .quantized(.blast(blocks: 2, rank: 12, parameterRatio: nil, iterations: 5), .bf16), overrides: [("fc3", .dense)]),
        CompressionPlan(method: .pinned(.quantized(.csr(density: 0.4), .int8Dynamic))),
    ]

    func testQuantizedArtifactsComputeWhatQuantizingAtLoadComputes() throws {
        let split = try SafeTensors(contentsOf: repositoryRoot().appendingPathComponent("models/digits-mlp/test.safetensors").path)
        let x = Matrix(rows: 450, columns: 64, values: try split.tensor(named: "inputs"))
        let dense = try XCTUnwrap(try ModelLoader.load(directory: digits) as? MLPModel)
        let denseBytes = try XCTUnwrap(dense.summary.compressionTotals?.denseBytes)
        for plan in Self.quantizedPlans {
            let path = try write(plan)
            let loaded = try XCTUnwrap(try ModelLoader.load(directory: path) as? MLPModel)
            let atLoad = try XCTUnwrap(try ModelLoader.load(directory: digits, compression: plan, compressor: WeightCompressor()) as? MLPModel)
            XCTAssertEqual(loaded.forward(x).values, atLoad.forward(x).values, "\(plan.method)")
            for (a, b) in zip(loaded.summary.layers, atLoad.summary.layers) {
                XCTAssertEqual(a.storage, b.storage)
                XCTAssertEqual(a.compression, b.compression, "\(a.name)")
            }
            let fc1 = try XCTUnwrap(loaded.summary.layers.first { $0.name == "fc1" }?.compression)
            XCTAssertNotNil(fc1.parameters["weights"], "\(plan.method)")
            let stored = try XCTUnwrap(loaded.summary.compressionTotals?.storedBytes)
            // int8 stores about a quarter of the fp32 bytes (plus scales), bf16 half.
            XCTAssertLessThan(Double(stored) / Double(denseBytes), plan.method.quantization == .bf16 ? 0.51 : 0.55, "\(plan.method)")
        }
    }

    func testBadScalesAndValuesInAnArtifactAreRefusedNamingTheTensor() throws {
        let plan = CompressionPlan(method: .quantized(.dense, .int8Dynamic))
        func edit(_ tensor: String, _ change: (inout Data) -> Void) throws -> String {
            let path = try write(plan)
            let file = ModelLoader.path(path, ModelLoader.weightsFileName)
            let original = try SafeTensors(contentsOf: file)
            var writer = SafeTensorsWriter(metadata: original.metadata)
            for info in original.tensors {
                var bytes = Data(try original.rawBytes(named: info.name))  // rebased: indices from 0
                if info.name == tensor { change(&bytes) }
                try writer.add(info.name, dtype: info.dtype, shape: info.shape, bytes: bytes)
            }
            try writer.write(to: file)
            return path
        }
        func float(_ value: Float, at index: Int) -> (inout Data) -> Void {
            { data in withUnsafeBytes(of: value.bitPattern.littleEndian) { data.replaceSubrange((4 * index)..<(4 * index + 4), with: $0) } }
        }
        assertError(try ModelLoader.load(directory: try edit("fc2.dense.scales", float(.nan, at: 5))),
                    contains: ["tensor 'fc2.dense.scales'", "scale 5 is nan"])
        assertError(try ModelLoader.load(directory: try edit("fc1.dense.scales", float(0, at: 0))),
                    contains: ["tensor 'fc1.dense.scales'", "scale 0 is 0.0"])
        assertError(try ModelLoader.load(directory: try edit("fc1.dense.weight") { $0[7] = 0x80 }),
                    contains: ["tensor 'fc1.dense.weight'", "value 7 is -128"])
        let path = try write(plan)
        try editLayers(path) { $0[0]["parameters"] = ["weights": "int8", "granularity": "group", "group": 16] }
        assertError(try ModelLoader.load(directory: path), contains: ["tensor 'fc1.dense.scales'", "shape is [256, 1], expected [256, 4]"])
        let l1inf = try write(plan)
        try editLayers(l1inf) { $0[0]["method"] = "l1inf"; $0[0]["parameters"] = ["groups": "rows", "weights": "bf16"] }
        assertError(try ModelLoader.load(directory: l1inf), contains: ["metadata of layer 'fc1'", "compacted"])
    }
}
