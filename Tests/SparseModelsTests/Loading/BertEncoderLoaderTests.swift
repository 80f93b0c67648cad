import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
import SparseCompression

/// BertEncoderLoader on a tiny synthetic BERT (hidden 4, 2 heads, 1 layer) written by the test, so
/// it runs without models/minilm-l6: the files it reads, Q/K/V fusion, and refusals naming the file.
final class BertEncoderLoaderTests: XCTestCase {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "sparse", "##s"]
    static let hidden = 4, intermediate = 8, positions = 16

    static func config(vocabularySize: Int = vocabulary.count) -> String {
        #"{"hidden_size": \#(hidden), "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": \#(intermediate),"#
            + #""max_position_embeddings": \#(positions), "vocab_size": \#(vocabularySize), "type_vocab_size": 2,"#
            + #""layer_norm_eps": 1e-12, "hidden_act": "gelu", "model_type": "bert"}"#
    }

    static func manifest(input: String = #"{"name": "text", "datatype": "BYTES", "shape": [-1]}"#, outputWidth: Int = hidden,
                         architecture: String = "bert-encoder", encoder: String = "") -> String {
        #"{"architecture": "\#(architecture)", "inputs": [\#(input)],"#
            + #""outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, \#(outputWidth)]}]\#(encoder)}"#
    }

    /// Every tensor of the tiny model, seeded; `leaving` out one name.
    static func tensors(leaving missing: String? = nil) -> [(name: String, values: [Float], shape: [Int])] {
        var random = SeededRandom(seed: 20)
        let h = hidden, i = intermediate
        var list: [(String, [Int])] = [("embeddings.word_embeddings.weight", [vocabulary.count, h]),
                                       ("embeddings.position_embeddings.weight", [positions, h]),
                                       ("embeddings.token_type_embeddings.weight", [2, h]),
                                       ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h])]
        let p = "encoder.layer.0."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            list += [(p + name + ".weight", [h, h]), (p + name + ".bias", [h])]
        }
        list += [(p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
                 (p + "intermediate.dense.weight", [i, h]), (p + "intermediate.dense.bias", [i]),
                 (p + "output.dense.weight", [h, i]), (p + "output.dense.bias", [h]),
                 (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h])]
        return list.filter { $0.0 != missing }.map { name, shape in
            let values = random.array(shape.reduce(1, *)).map { name.hasSuffix("LayerNorm.weight") ? 1 + 0.1 * $0 : $0 }
            return (name, values, shape)
        }
    }

    /// The tiny encoder with mean pooling and normalised embeddings, loaded from a folder `test` writes.
    static func meanPooled(_ test: XCTestCase) throws -> BertEncoderModel {
        let folder = try ModelFolder(test, manifest: manifest(encoder: #", "encoder": {"pooling": "mean", "normalize": true}"#), tensors: tensors(),
                                     files: ["config.json": config(), "vocab.txt": vocabulary.joined(separator: "\n") + "\n"])
        return try BertEncoderLoader.load(directory: folder.path)
    }

    func folder(manifest: String = manifest(), config: String = config(), leaving missing: String? = nil,
                sentenceTransformers: Bool = true, tensors: [(name: String, values: [Float], shape: [Int])]? = nil) throws -> ModelFolder {
        var files = ["config.json": config, "vocab.txt": Self.vocabulary.joined(separator: "\n") + "\n"]
        if sentenceTransformers {
            files["1_Pooling/config.json"] = #"{"word_embedding_dimension": 4, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#
            files["modules.json"] = #"[{"idx": 0, "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "type": "sentence_transformers.models.Normalize"}]"#
            files["sentence_bert_config.json"] = #"{"max_seq_length": 8, "do_lower_case": false}"#
            files["tokenizer_config.json"] = #"{"do_lower_case": false}"#
        }
        return try ModelFolder(self, manifest: manifest, tensors: tensors ?? Self.tensors(leaving: missing), files: files)
    }

    func testLoadsTheEncoderWithTheOptionsItsFilesGive() throws {
        let model = try BertEncoderLoader.load(directory: try folder().path)
        XCTAssertEqual(model.config.hiddenSize, 4)
        XCTAssertEqual(model.config.layerNormEpsilon, 1e-12)
        XCTAssertEqual(model.options, BertEncoderOptions(pooling: .cls, normalize: true, maxTokens: 8, lowercase: false))
        XCTAssertEqual(model.encode(texts: ["hello sparses world"])[0].ids, [2, 5, 7, 8, 6, 3])
        let vectors = try model.embed(texts: ["hello world", "sparse"])
        XCTAssertEqual(vectors.map(\.count), [4, 4])
        for v in vectors { XCTAssertEqual(v.map { Double($0 * $0) }.reduce(0, +), 1, accuracy: 1e-5, "normalized") }
        XCTAssertNotEqual(vectors[0], vectors[1])
        // Q, K and V are dense: one fused GEMM, recorded as three rows of the summary.
        let rows = model.summary.layers
        XCTAssertEqual(rows.first?.name, "embeddings")
        XCTAssertEqual(rows.filter { $0.name.contains("attention.self.") }.count, 3)
        XCTAssertEqual(rows.first { $0.name.hasSuffix("intermediate.dense") }?.outputFeatures, 8)
        // Without the sentence-transformers files: mean pooling, no normalization, every position, lower-casing.
        let bare = try BertEncoderLoader.load(directory: try folder(sentenceTransformers: false).path)
        XCTAssertEqual(bare.options, BertEncoderOptions(pooling: .mean, normalize: false, maxTokens: 16, lowercase: true))
    }

    /// Q, K, V as three operators (what a compressed projection takes) give the fused GEMM's result.
    func testUnfusedProjectionsMatchTheFusedGEMM() throws {
        let model = try folder()
        let fused = try BertEncoderLoader.load(directory: model.path)
        let exact = CompressionPlan(method: .dense, overrides: [("encoder.layer.*.attention.self.*", .pinned(.csr(density: 1)))])
        let unfused = try BertEncoderLoader.load(directory: model.path, compression: exact, compressor: WeightCompressor())
        XCTAssertEqual(unfused.summary.layers.first { $0.name.hasSuffix("attention.self.key") }?.storage, "csr")
        XCTAssertNotEqual(fused.summary.layers.first { $0.name.hasSuffix("attention.self.key") }?.storage, "csr")
        let texts = ["hello world", "sparse sparses", "world"]
        for (a, b) in zip(try unfused.embed(texts: texts), try fused.embed(texts: texts)) {
            assertClose(a, b, tolerance: 1e-5)
        }
    }

    /// Q, K, V all 2:4 run as one stacked N:M operator (one call per layer, as the dense GEMM
    /// is fused), holding each projection's own mask and values; the encoder gives what a dense
    /// model with the same pruned weights gives.
    func testTwoOfFourProjectionsRunAsOneStackedOperator() throws {
        let plan = CompressionPlan(method: .dense, overrides: [("encoder.layer.*.attention.self.*", .pinned(.nm(n: 2, m: 4)))])
        let sparse = try BertEncoderLoader.load(directory: try folder().path, compression: plan, compressor: WeightCompressor())
        let qkv = sparse.layers[0].qkv
        XCTAssertEqual(qkv.count, 1)
        let fused = try XCTUnwrap(qkv.first as? NMWeights)
        XCTAssertEqual(fused.outputFeatures, 3 * Self.hidden)
        XCTAssertEqual(sparse.summary.layers.first { $0.name.hasSuffix("attention.self.value") }?.storage, "nm 2:4")
        let h = Self.hidden, projections = ["query", "key", "value"].map { "encoder.layer.0.attention.self.\($0)" }
        let pruned = Self.tensors().map { t -> (name: String, values: [Float], shape: [Int]) in
            guard projections.contains(where: { t.name == $0 + ".weight" }) else { return t }
            return (t.name, NMWeights.magnitudeMask(t.values, outputFeatures: h, inputFeatures: h, n: 2, m: 4), t.shape)
        }
        XCTAssertEqual(fused.denseWeights(), projections.flatMap { name in pruned.first { $0.name == name + ".weight" }!.values })
        let dense = try BertEncoderLoader.load(directory: try folder(tensors: pruned).path)
        let texts = ["hello world", "sparse sparses", "world hello world"]
        for (a, b) in zip(try sparse.embed(texts: texts), try dense.embed(texts: texts)) {
            assertClose(a, b, tolerance: 1e-5)
        }
    }

    /// What stacks: N:M parts of one n:m, or parts whose dense form was chosen (one dense GEMM);
    /// mixed kinds stay three operators.
    func testStackedProjectionKinds() throws {
        var random = SeededRandom(seed: 21)
        let w = (0..<3).map { _ in random.array(16 * 8) }
        let nm = try w.map { try NMWeights(magnitudePruning: $0, outputFeatures: 16, inputFeatures: 8, n: 2, m: 4) }
        XCTAssertEqual((BertEncoderLoader.stackedProjection(nm) as? NMWeights)?.outputFeatures, 48)
        let chosen = zip(w, nm).map { ChosenDense(DenseWeights(weights: $0, outputFeatures: 16, inputFeatures: 8), instead: $1.storage,
                                                  sparseMicroseconds: 2, denseMicroseconds: 1) }
        let dense = try XCTUnwrap(BertEncoderLoader.stackedProjection(chosen) as? DenseWeights)
        XCTAssertEqual(dense.unpackedWeights(), w.flatMap { $0 })
        XCTAssertNil(dense.bias)
        XCTAssertNil(BertEncoderLoader.stackedProjection([nm[0], nm[1], chosen[2]]))
    }

    func testWhatDoesNotFitIsRefusedNamingTheFile() throws {
        let cases: [(ModelFolder, [String])] = [
            (try folder(config: Self.config(vocabularySize: 10)), ["vocab.txt has 9 tokens, config.json says 10", "model.json"]),
            (try folder(manifest: Self.manifest(outputWidth: 5)), ["one output: FP32 [-1, 4]", "model.json"]),
            (try folder(manifest: Self.manifest(input: #"{"name": "text", "datatype": "FP32", "shape": [-1, 4]}"#)),
             ["one input: BYTES [-1]", "model.json"]),
            (try folder(manifest: Self.manifest(encoder: #", "encoder": {"maxTokens": 17}"#)), ["encoder.maxTokens 17 must be in 2...16"]),
            (try folder(config: #"{"hidden_size": 4}"#), ["config.json", "'num_hidden_layers' must be a positive integer"]),
            (try folder(leaving: "encoder.layer.0.output.LayerNorm.bias"), ["encoder.layer.0.output.LayerNorm.bias", "model.safetensors"]),
        ]
        for (model, fragments) in cases {
            assertError(try BertEncoderLoader.load(directory: model.path), contains: fragments)
        }
        let mlp = try folder(manifest: Self.manifest(architecture: "identity"))
        assertError(try BertEncoderLoader.load(directory: mlp.path), contains: ["not a bert-encoder manifest", "model.json"])
    }
}
