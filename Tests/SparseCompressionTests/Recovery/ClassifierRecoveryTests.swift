import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// Classifier recovery on tiny dense chains (4 → 6 → 3) built by the test: the learning-rate
/// schedule and presets, the report's JSON, accuracy, and the training run itself (steps, progress,
/// loss falling, the report's fields, held-out accuracy, a run that diverges or is interrupted).
/// (Recovery of real compressed models, structure kept: RecoveryTrainingTests.)
final class ClassifierRecoveryTests: XCTestCase {
    func testScheduleWarmsUpLinearlyThenDecaysToZero() {
        var o = RecoveryOptions()
        o.learningRate = 0.1
        let rates = (0..<100).map { o.learningRate(step: $0, of: 100) }
        XCTAssertEqual(rates[0], 0.02, accuracy: 1e-7, "5 warm-up steps: step 1 of 5")
        XCTAssertEqual(rates[4], 0.1, accuracy: 1e-7)
        XCTAssertEqual(rates[5], 0.1, accuracy: 1e-7, "the cosine starts at the peak")
        XCTAssertEqual(rates[52], 0.05, accuracy: 2e-3, "half way through the decay")
        XCTAssertLessThan(rates[99], 1e-3)
        for t in 5..<99 { XCTAssertLessThanOrEqual(rates[t + 1], rates[t], "step \(t)") }
        XCTAssertEqual(o.learningRate(step: 0, of: 3), 0.1, accuracy: 1e-7, "at least one warm-up step")
    }

    func testPresets() {
        let d = RecoveryOptions(), e = RecoveryOptions.encoder, s = RecoveryOptions.sequence
        XCTAssertEqual([d.epochs, d.batchSize, d.endToEndEpochs], [60, 64, 0])
        XCTAssertEqual([e.epochs, e.batchSize, e.endToEndEpochs], [1, 32, 1])
        XCTAssertEqual([e.learningRate, e.endToEndLearningRate], [1e-3, 2e-4])
        XCTAssertEqual([s.epochs, s.batchSize], [200, 10])
        XCTAssertEqual(s.learningRate, 3e-3)
        XCTAssertGreaterThan(RecoveryOptions.encoderCalibrationSamples, CalibrationOptions().samples)
    }

    func report(firstLoss: Double?, lastLoss: Double?) -> RecoveryReport {
        RecoveryReport(loss: "L", trainingFile: "t.safetensors", trainingFingerprint: "fnv1a64:1", trainingSamples: 10, usesLabels: true,
                       epochs: 2, batchSize: 4, learningRate: 0.01, schedule: "S", stepsPlanned: 6, steps: 6, outcome: .completed, note: nil,
                       firstLoss: firstLoss, lastLoss: lastLoss, trainableParameters: 51, seconds: 0.5, heldOut: nil, blocks: nil)
    }

    /// Sorted keys, absent optionals left out, non-finite losses as strings; a finite report reads back.
    func testReportJSON() throws {
        let finite = report(firstLoss: 1.5, lastLoss: 0.25)
        let text = try RecoveryReport.json(finite)
        XCTAssertEqual(try JSONDecoder().decode(RecoveryReport.self, from: Data(text.utf8)), finite)
        let keys = ["batchSize", "epochs", "firstLoss", "lastLoss", "method", "outcome", "steps", "trainingFile"]
        let offsets = keys.map { text.range(of: "\"\($0)\"")?.lowerBound }
        XCTAssertFalse(offsets.contains(nil), text)
        XCTAssertEqual(offsets.compactMap { $0 }, offsets.compactMap { $0 }.sorted(), "keys sorted: \(text)")
        XCTAssertFalse(text.contains("heldOut"), text)
        struct Losses: Decodable { var firstLoss: String, lastLoss: String }
        let diverged = try JSONDecoder().decode(Losses.self, from: Data(try RecoveryReport.json(report(firstLoss: .nan, lastLoss: -.infinity)).utf8))
        XCTAssertEqual([diverged.firstLoss, diverged.lastLoss], ["nan", "-inf"])
    }

    let inputs = 4, hidden = 6, classes = 3

    /// A dense 4 → 6 (ReLU) → 3 chain; `nudge` shifts the weights (a student away from its teacher),
    /// `poison` makes one weight NaN.
    func chain(nudge: Float = 0, poison: Bool = false) throws -> TrainableChain {
        var rng = SeededRandom(seed: 121)
        var w1 = rng.array(hidden * inputs), w2 = rng.array(classes * hidden)
        let b1 = rng.array(hidden), b2 = rng.array(classes)
        w1 = w1.enumerated().map { $0.element + nudge * Float($0.offset % 3 - 1) }
        w2 = w2.enumerated().map { $0.element - nudge * Float($0.offset % 3 - 1) }
        let chain = TrainableChain([
            .init(layer: try TrainableLinear(PackedLayer(outputFeatures: hidden, inputFeatures: inputs, form: .dense(weight: w1), bias: b1)), activation: .relu),
            .init(layer: try TrainableLinear(PackedLayer(outputFeatures: classes, inputFeatures: hidden, form: .dense(weight: w2), bias: b2)), activation: .none),
        ])
        if poison {   // (a stored layer refuses NaN weights: set it on the trainable copy)
            chain.layers[1].tensors[0].values[0] = .nan
            chain.layers[1].materialize()
        }
        return chain
    }

    /// `count` random samples labelled by `labeller`'s argmax (no labels when nil).
    func samples(_ count: Int, seed: UInt64, labeller: TrainableChain?) throws -> LabelledSamples {
        var rng = SeededRandom(seed: seed)
        let x = rng.array(count * inputs).map { 2 * $0 }
        var writer = SafeTensorsWriter()
        try writer.add("inputs", floats: x, shape: [count, inputs])
        if let labeller {
            let logits = labeller.forward(x, rows: count, keep: false)
            let labels = (0..<count).map { r in Int64((0..<classes).max { logits[r * classes + $0] < logits[r * classes + $1] }!) }
            try writer.add("labels", int64s: labels, shape: [count])
        }
        let dir = try makeTemporaryDirectory()
        let path = dir.appendingPathComponent("samples.safetensors").path
        try writer.write(to: path)
        return try LabelledSamples(path: path, features: inputs, classes: classes)
    }

    func options(epochs: Int = 3, batchSize: Int = 4, learningRate: Float = 2e-2) -> RecoveryOptions {
        var o = RecoveryOptions()
        (o.epochs, o.batchSize, o.learningRate) = (epochs, batchSize, learningRate)
        return o
    }

    func testAccuracyIsTheShareOfArgmaxesEqualToTheLabels() throws {
        let teacher = try chain()
        let labelled = try samples(12, seed: 122, labeller: teacher)
        XCTAssertEqual(ClassifierRecovery.accuracy(teacher, labelled), 1)
        let other = try chain(nudge: 3)
        let logits = other.forward(labelled.inputs, rows: 12, keep: false)
        let right = (0..<12).filter { r in (0..<classes).max { logits[r * classes + $0] < logits[r * classes + $1] }! == Int(labelled.labels![r]) }.count
        XCTAssertLessThan(right, 12, "the nudged chain disagrees somewhere")
        XCTAssertEqual(ClassifierRecovery.accuracy(other, labelled), Double(right) / 12)
        XCTAssertTrue(ClassifierRecovery.accuracy(teacher, try samples(3, seed: 123, labeller: nil)).isNaN, "no labels")
    }

    func testRunTrainsTowardsTheTeacherAndReports() throws {
        let teacher = try chain(), student = try chain(nudge: 0.5)
        let training = try samples(10, seed: 124, labeller: teacher), held = try samples(8, seed: 125, labeller: teacher)
        var lines: [String] = []
        var o = options(epochs: 20)
        o.alpha = 1   // distillation only: the loss can fall towards 0
        let run = ClassifierRecovery(student: student, teacher: teacher, data: training, options: o)
        let before = student.tensors.map(\.values)
        let report = try run.run(heldOut: held, progress: { lines.append($0) }, shouldStop: { false })
        XCTAssertEqual(report.outcome, .completed)
        XCTAssertEqual([report.steps, report.stepsPlanned, report.epochs, report.batchSize], [60, 60, 20, 4], "3 steps per epoch")
        XCTAssertEqual(lines.count, 20, "a line per epoch")
        XCTAssertLessThan(try XCTUnwrap(report.lastLoss), 0.7 * (try XCTUnwrap(report.firstLoss)))
        XCTAssertNotEqual(student.tensors.map(\.values), before)
        XCTAssertEqual(report.trainableParameters, hidden * inputs + hidden + classes * hidden + classes)
        XCTAssertEqual(report.trainingSamples, 10)
        XCTAssertEqual(report.trainingFile, training.source)
        XCTAssertTrue(report.usesLabels)
        XCTAssertTrue(report.loss.contains("CE(labels)"), report.loss)
        let h = try XCTUnwrap(report.heldOut)
        XCTAssertEqual(h.metric, "accuracy")
        XCTAssertEqual(h.samples, 8)
        XCTAssertEqual(h.dense, 1, "held-out labels are the teacher's")
        XCTAssertEqual(h.recovered, ClassifierRecovery.accuracy(student, held))

        let unlabelled = try samples(10, seed: 126, labeller: nil)
        let plain = try ClassifierRecovery(student: try chain(nudge: 0.5), teacher: teacher, data: unlabelled, options: options(epochs: 1))
            .run(heldOut: nil, progress: { _ in }, shouldStop: { false })
        XCTAssertFalse(plain.usesLabels)
        XCTAssertTrue(plain.loss.hasPrefix("T²·KL"), plain.loss)
        XCTAssertNil(plain.heldOut)
        assertError(try ClassifierRecovery(student: try chain(nudge: 0.5), teacher: teacher, data: training, options: options(epochs: 1))
                        .run(heldOut: unlabelled, progress: { _ in }, shouldStop: { false }),
                    contains: [unlabelled.source, "held-out samples need labels"])
    }

    /// A teacher with a NaN weight makes the first step non-finite: the run stops there and the student keeps its weights.
    func testDivergingRunKeepsTheLastGoodWeights() throws {
        let student = try chain(nudge: 0.5), before = student.tensors.map(\.values)
        let data = try samples(10, seed: 127, labeller: nil)
        var lines: [String] = []
        let report = try ClassifierRecovery(student: student, teacher: try chain(poison: true), data: data, options: options())
            .run(heldOut: nil, progress: { lines.append($0) }, shouldStop: { false })
        XCTAssertEqual(report.outcome, .diverged)
        XCTAssertEqual(report.steps, 0)
        XCTAssertTrue(report.note?.hasPrefix("diverged: non-finite") == true || report.note?.hasPrefix("diverged: loss") == true,
                      report.note ?? "no note")
        XCTAssertEqual(student.tensors.map(\.values), before)
        XCTAssertTrue(lines.last?.contains("diverged") == true, "\(lines)")
    }

    func testInterruptedRunStopsAfterTheCurrentStep() throws {
        var calls = 0
        let report = try ClassifierRecovery(student: try chain(nudge: 0.5), teacher: try chain(), data: try samples(10, seed: 128, labeller: nil),
                                            options: options())
            .run(heldOut: nil, progress: { _ in }, shouldStop: {
                calls += 1
                return calls > 4
            })
        XCTAssertEqual(report.outcome, .interrupted)
        XCTAssertEqual(report.steps, 4)
        XCTAssertEqual(report.note, "interrupted after 4 of 9 steps")
    }
}
