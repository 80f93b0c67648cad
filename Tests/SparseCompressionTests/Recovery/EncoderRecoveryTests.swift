import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// Encoder recovery on all-MiniLM-L6-v2 (models/minilm-l6, scripts/fetch-minilm.sh): the training
/// forward pass equals the served encoder, and a short block-wise run keeps every layer's
/// structure exactly (N:M and transposable masks, BLAST blocks and rank) while training them (and
/// the LayerNorms, when asked).
final class EncoderRecoveryTests: XCTestCase {
    var minilm: String { MiniLMFiles.modelDirectory.path }

    func requireMiniLM() throws {
        guard FileManager.default.fileExists(atPath: MiniLMFiles.modelDirectory.appendingPathComponent("model.safetensors").path) else {
            throw XCTSkip("models/minilm-l6 is absent: run scripts/fetch-minilm.sh")
        }
    }

    /// Layer 0: query 2:4, key transposable 2:4, intermediate BLAST 50 %; everything else dense.
    let plan = CompressionPlan(method: .dense, overrides: [
        ("encoder.layer.0.attention.self.query", .nm(n: 2, m: 4)),
        ("encoder.layer.0.attention.self.key", .transposableNM(n: 2, m: 4)),
        ("encoder.layer.0.intermediate.dense", .blast(blocks: 4, rank: nil, parameterRatio: 0.5, iterations: 5)),
    ])

    /// The `count` shortest lines of the shipped calibration texts in a temporary file (training
    /// steps cost in proportion to the tokens, and the C kernels are unoptimised in debug builds).
    func texts(_ count: Int, from name: String = "calibration.txt") throws -> String {
        let lines = try String(contentsOfFile: minilm + "/" + name, encoding: .utf8).split(separator: "\n")
            .sorted { ($0.count, $0) < ($1.count, $1) }.prefix(count)
        let dir = try makeTemporaryDirectory()
        let path = dir.appendingPathComponent(name).path
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    nonisolated(unsafe) static var opened: (model: BertEncoderModel, builder: LinearLayerBuilder)?

    /// MiniLM compressed by `plan` (loaded once: loading is slow in debug builds).
    func compressed() throws -> (model: BertEncoderModel, builder: LinearLayerBuilder) {
        try requireMiniLM()
        if let opened = Self.opened { return opened }
        let (model, builder) = try ModelLoader.open(directory: minilm, compression: plan, compressor: WeightCompressor(), timeLayers: false)
        let opened = (try XCTUnwrap(model as? BertEncoderModel), try XCTUnwrap(builder))
        Self.opened = opened
        return opened
    }

    /// MiniLM training steps take minutes under ThreadSanitizer's debug build; the plain debug run covers them.
    func skipUnderThreadSanitizer() throws {
        if dlsym(dlopen(nil, RTLD_NOW), "__tsan_init") != nil { throw XCTSkip("too slow under ThreadSanitizer; the plain debug run covers it") }
    }

    func testTrainingForwardEqualsTheEncoder() throws {
        try skipUnderThreadSanitizer()
        let (model, builder) = try compressed()
        let dense = try XCTUnwrap(try ModelLoader.load(directory: minilm) as? BertEncoderModel)
        let (student, teacher) = try EncoderRecovery.layers(config: model.config, builder: builder)
        let sequences = model.encode(texts: ["A knot for shortening a line", "Incompletely or imperfectly shaped", "Hi"]).map(\.ids)
        for (layers, reference) in [(student, model), (teacher, dense)] {
            var states = PackedStates(spans: BertEncoderModel.spans(of: sequences).0, width: 384, values: try reference.embeddingStates(sequences))
            for layer in layers { states = layer.forwardAll(states) }
            let served = try reference.embed(tokenSequences: sequences)
            for (i, span) in states.spans.enumerated() {
                var mean = [Float](repeating: 0, count: 384)
                for r in span.start ..< span.start + span.length {
                    for c in 0..<384 { mean[c] += states.values[r * 384 + c] / Float(span.length) }
                }
                let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for c in 0..<384 { XCTAssertEqual(mean[c] / norm, served[i][c], accuracy: 1e-4, "sequence \(i) column \(c)") }
            }
        }
    }

    /// Held-out measurement is left to the integration test (Tests/integration/test_recovery_minilm.py):
    /// loading the model twice more is slow in debug builds.
    func testShortRunKeepsEveryStructureAndTrains() throws {
        try skipUnderThreadSanitizer()
        let builder = try compressed().builder
        let before = Dictionary(uniqueKeysWithValues: builder.built.map { ($0.name, $0.layer.packed) })
        var options = RecoveryOptions.encoder
        (options.epochs, options.batchSize, options.learningRate, options.endToEndEpochs, options.trainNorms) = (1, 2, 1e-3, 1, true)
        var lines: [String] = []
        let result = try EncoderRecovery.recover(directory: minilm, builder: builder, training: try texts(4), heldOut: nil,
                                                 options: options, progress: { lines.append($0) }, shouldStop: { false })
        let report = result.report
        XCTAssertEqual(report.outcome, .completed)
        XCTAssertEqual(report.steps, (6 + 1) * 2, "one epoch per layer, then one end to end, 2 steps each")
        XCTAssertEqual(report.blocks?.map(\.layer), (0..<6).map { "encoder.layer.\($0)" } + ["end-to-end"])
        XCTAssertEqual(lines.count, 7, "one progress line per layer and epoch")
        XCTAssertNil(report.heldOut)
        XCTAssertEqual(result.layers.count, 36)
        // --train-norms: both LayerNorms of every layer trained, by tensor name, for the artifact
        XCTAssertEqual(result.tensors.count, 24)
        for (name, values) in result.tensors {
            XCTAssertNotEqual(values, try builder.weights.tensor(named: name), "\(name) not trained")
        }
        for (name, old) in before {
            let new = try XCTUnwrap(result.layers[name])
            XCTAssertEqual(new.layout, old.layout, name)
            switch (old.form, new.form) {
            case let (.nm(n, m, transposable, oldValues, oldWords), .nm(n2, m2, t2, values, words)):
                XCTAssertEqual([n2, m2], [n, m])
                XCTAssertEqual(t2, transposable)
                XCTAssertEqual(words, oldWords, "\(name): the mask changed")
                XCTAssertNotEqual(values, oldValues, "\(name): not trained")
                let op = try XCTUnwrap(try new.makeOperator() as? NMWeights)
                if transposable {
                    XCTAssertNil(PackedLayer.transposableProblem(op.keptMask(), rows: new.outputFeatures, columns: new.inputFeatures, n: n, m: m))
                }
            case let (.blast(b1, b2, r, u0, v0, s0), .blast(c1, c2, r2, u, v, s)):
                XCTAssertEqual([c1, c2, r2], [b1, b2, r])
                XCTAssertEqual([u.count, v.count, s.count], [u0.count, v0.count, s0.count])
                XCTAssertNotEqual(u, u0)
                XCTAssertNotEqual(v, v0)
                XCTAssertNotEqual(s, s0)
            case let (.dense(w0), .dense(w)):
                XCTAssertNotEqual(w, w0, "\(name): dense layers train too")
            default:
                XCTFail("\(name): stored form changed from \(old.layout) to \(new.layout)")
            }
            XCTAssertNotEqual(new.bias, old.bias, "\(name): bias not trained")
        }
    }

    func testRefusesWhatItCannotTrain() throws {
        try requireMiniLM()
        let dense = LinearLayerBuilder(weights: try SafeTensors(contentsOf: minilm + "/model.safetensors"), plan: .dense)
        _ = try dense.linear("encoder.layer.0.output.dense", weight: "encoder.layer.0.output.dense.weight", bias: nil, outputs: 384, inputs: 1536)
        assertError(try EncoderRecovery.recover(directory: minilm, builder: dense, training: try texts(4), heldOut: nil,
                                                options: .encoder, progress: { _ in }, shouldStop: { false }),
                    contains: ["nothing to recover"])
    }
}
