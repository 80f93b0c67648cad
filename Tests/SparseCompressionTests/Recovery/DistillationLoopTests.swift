import Foundation
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// The optimisation loop of encoder recovery on a quadratic objective it can solve: shuffled
/// mini-batches that visit every sample once per epoch, reproducible from the seed, the run's own
/// peak rate, progress lines, and the three ways a run stops early (asked to, a non-finite loss,
/// a non-finite gradient) with the parameters each leaves.
final class DistillationLoopTests: XCTestCase {
    /// ‖θ − t_i‖² averaged over a batch of samples i, with its gradient; records each call.
    final class Quadratic {
        let theta = TrainableTensor([0, 0, 0])
        let targets: [[Float]]
        var batches: [[Int]] = []
        var seen: [[Float]] = []
        var materialized = 0
        /// Call numbers (from 1) that return a NaN loss, or a finite loss with an infinite gradient.
        var nanLossAt: Int?
        var infiniteGradientAt: Int?

        init(samples: Int) {
            var rng = SeededRandom(seed: 31)
            targets = (0..<samples).map { _ in [1 + 0.2 * rng.next(), -2 + 0.2 * rng.next(), 0.5 + 0.2 * rng.next()] }
        }

        func objective(_ batch: ArraySlice<Int>) -> Double {
            batches.append(Array(batch))
            seen.append(theta.values)
            if batches.count == nanLossAt { return .nan }
            var loss = 0.0
            for i in batch {
                for d in 0..<3 {
                    let diff = theta.values[d] - targets[i][d]
                    loss += Double(diff * diff)
                    theta.gradient[d] += 2 * diff / Float(batch.count)
                }
            }
            if batches.count == infiniteGradientAt { theta.gradient[0] = .infinity }
            return loss / Double(batch.count)
        }
    }

    final class Lines: @unchecked Sendable { var lines: [String] = [] }

    func loop(batchSize: Int, stopAfter calls: Int? = nil, lines: Lines = Lines()) -> DistillationLoop {
        var options = RecoveryOptions()
        options.batchSize = batchSize
        options.learningRate = 0   // the run's own peak rate applies, not this one
        var asked = 0
        return DistillationLoop(options: options, progress: { lines.lines.append($0) }, shouldStop: {
            asked += 1
            return calls.map { asked > $0 } ?? false
        })
    }

    func run(_ loop: DistillationLoop, _ q: Quadratic, epochs: Int, learningRate: Float = 0.05, seed: UInt64 = 1,
             clock: inout DistillationLoop.Clock, name: String = "block") -> DistillationLoop.Block {
        loop.run(name, samples: q.targets.count, epochs: epochs, learningRate: learningRate, tensors: [q.theta],
                 materialize: { q.materialized += 1 }, seed: seed, clock: &clock, objective: q.objective)
    }

    func testAStepLimitStopsMidEpochWithTheScheduleOverTheStepsRun() {
        let lines = Lines(), q = Quadratic(samples: 10), l = loop(batchSize: 4, lines: lines)
        XCTAssertEqual([l.steps(samples: 10, epochs: 2), l.steps(samples: 10, epochs: 2, limit: 4), l.steps(samples: 10, epochs: 1, limit: 9)],
                       [6, 4, 3])
        var clock = DistillationLoop.Clock(totalSteps: 4)
        let block = l.run("block", samples: 10, epochs: 2, limit: 4, learningRate: 0.05, tensors: [q.theta], materialize: {}, seed: 1,
                          clock: &clock, objective: q.objective)
        XCTAssertEqual([block.steps, clock.steps], [4, 4])
        XCTAssertEqual(q.batches.map(\.count), [4, 4, 2, 4], "the first epoch whole, then one step of the second")
        XCTAssertEqual(lines.lines.count, 2, "a line per epoch begun")
        // the decay spans the 4 steps run: the fourth update is smaller than a 6-step schedule's fourth
        var free = DistillationLoop.Clock(totalSteps: 6)
        let q2 = Quadratic(samples: 10)
        _ = run(l, q2, epochs: 2, clock: &free)
        func moved(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + abs($1.0 - $1.1) } }
        XCTAssertLessThan(moved(q.theta.values, q.seen[3]), 0.6 * moved(q2.seen[4], q2.seen[3]))
    }

    func testEveryEpochVisitsEverySampleOnceInShuffledBatches() {
        let lines = Lines(), q = Quadratic(samples: 10), l = loop(batchSize: 4, lines: lines)
        XCTAssertEqual([l.stepsPerEpoch(samples: 10), l.stepsPerEpoch(samples: 8), l.stepsPerEpoch(samples: 1)], [3, 2, 1])
        var clock = DistillationLoop.Clock(totalSteps: 6)
        let block = run(l, q, epochs: 2, clock: &clock)
        XCTAssertEqual(block.layer, "block")
        XCTAssertEqual(block.steps, 6)
        XCTAssertEqual(clock.steps, 6)
        XCTAssertEqual(clock.outcome, .completed)
        XCTAssertEqual(q.materialized, 6, "the weights are refreshed after every update")
        XCTAssertEqual(q.batches.map(\.count), [4, 4, 2, 4, 4, 2])
        let epochs = [q.batches[0..<3].flatMap { $0 }, q.batches[3..<6].flatMap { $0 }]
        for order in epochs { XCTAssertEqual(order.sorted(), Array(0..<10)) }
        XCTAssertNotEqual(epochs[0], epochs[1], "each epoch is shuffled anew")
        XCTAssertNotEqual(epochs[0], Array(0..<10))
        XCTAssertEqual(lines.lines.count, 2, "a line per epoch")
        XCTAssertTrue(lines.lines.allSatisfy { $0.contains("block") }, "\(lines.lines)")

        let again = Quadratic(samples: 10), other = Quadratic(samples: 10)
        var c2 = DistillationLoop.Clock(totalSteps: 6), c3 = DistillationLoop.Clock(totalSteps: 6)
        _ = run(loop(batchSize: 4), again, epochs: 2, clock: &c2)
        _ = run(loop(batchSize: 4), other, epochs: 2, seed: 2, clock: &c3)
        XCTAssertEqual(again.batches, q.batches, "the seed fixes the order")
        XCTAssertNotEqual(other.batches, q.batches)
        XCTAssertEqual(again.theta.values, q.theta.values)
    }

    func testTrainingAtTheRunsPeakRateLowersTheLoss() throws {
        let q = Quadratic(samples: 16)
        var clock = DistillationLoop.Clock(totalSteps: 160)
        let block = run(loop(batchSize: 4), q, epochs: 40, learningRate: 0.05, clock: &clock)
        let first = try XCTUnwrap(block.firstLoss), last = try XCTUnwrap(block.lastLoss)
        XCTAssertLessThan(last, 0.1 * first, "first \(first), last epoch \(last)")
        XCTAssertEqual(q.theta.values[1], -2, accuracy: 0.2)

        let frozen = Quadratic(samples: 16)
        var c2 = DistillationLoop.Clock(totalSteps: 8)
        _ = run(loop(batchSize: 4), frozen, epochs: 2, learningRate: 0, clock: &c2)
        XCTAssertEqual(frozen.theta.values, [0, 0, 0], "peak rate 0: nothing moves")
    }

    /// An epoch of 100 steps or more also reports each quarter.
    func testLongEpochsReportEachQuarter() {
        let lines = Lines(), q = Quadratic(samples: 200)
        var clock = DistillationLoop.Clock(totalSteps: 100)
        _ = run(loop(batchSize: 2, lines: lines), q, epochs: 1, clock: &clock)
        XCTAssertEqual(lines.lines.count, 4, "\(lines.lines)")
        XCTAssertEqual(lines.lines.filter { $0.contains("last 25 steps") }.count, 3, "\(lines.lines)")
    }

    func testStopRequestEndsTheRunAfterTheCurrentStep() {
        let q = Quadratic(samples: 10)
        var clock = DistillationLoop.Clock(totalSteps: 9)
        let block = run(loop(batchSize: 2, stopAfter: 2), q, epochs: 3, clock: &clock, name: "layer 2/6")
        XCTAssertEqual(block.steps, 2)
        XCTAssertEqual(clock.steps, 2)
        XCTAssertEqual(q.batches.count, 2)
        XCTAssertEqual(clock.outcome, .interrupted)
        XCTAssertTrue(clock.note?.contains("interrupted in layer 2/6 after 2 of 9 steps") == true, clock.note ?? "no note")
        XCTAssertNil(block.lastLoss, "no epoch finished")
    }

    /// A NaN loss puts back the parameters that gave the last finite loss, and stops.
    func testNonFiniteLossRestoresTheLastGoodParameters() {
        let q = Quadratic(samples: 10)
        q.nanLossAt = 4
        var clock = DistillationLoop.Clock(totalSteps: 10)
        let block = run(loop(batchSize: 2), q, epochs: 2, learningRate: 0.1, clock: &clock)
        XCTAssertEqual(q.batches.count, 4)
        XCTAssertEqual(block.steps, 3)
        XCTAssertEqual(clock.outcome, .diverged)
        XCTAssertTrue(clock.note?.contains("loss nan") == true, clock.note ?? "no note")
        XCTAssertNotEqual(q.seen[2], q.seen[3])
        XCTAssertEqual(q.theta.values, q.seen[2], "the parameters of call 3, the last finite loss")
        XCTAssertEqual(q.materialized, 4, "the restored weights are refreshed too")
    }

    /// A finite loss with a non-finite gradient stops before the update.
    func testNonFiniteGradientStopsBeforeTheUpdate() {
        let q = Quadratic(samples: 10)
        q.infiniteGradientAt = 3
        var clock = DistillationLoop.Clock(totalSteps: 10)
        let block = run(loop(batchSize: 2), q, epochs: 2, learningRate: 0.1, clock: &clock)
        XCTAssertEqual(block.steps, 2)
        XCTAssertEqual(clock.outcome, .diverged)
        XCTAssertTrue(clock.note?.contains("non-finite gradient") == true, clock.note ?? "no note")
        XCTAssertEqual(q.theta.values, q.seen[2], "not updated, not restored")
        XCTAssertTrue(q.theta.values.allSatisfy(\.isFinite))
    }

    /// One clock over several runs (an encoder's layers, then end to end).
    func testTheClockCountsAcrossRuns() {
        let lines = Lines(), l = loop(batchSize: 4, lines: lines)
        var clock = DistillationLoop.Clock(totalSteps: 5)
        let a = run(l, Quadratic(samples: 12), epochs: 1, clock: &clock, name: "first")
        let b = run(l, Quadratic(samples: 8), epochs: 1, clock: &clock, name: "second")
        XCTAssertEqual([a.steps, b.steps, clock.steps], [3, 2, 5])
        XCTAssertEqual(a.layer, "first")
        XCTAssertEqual(b.layer, "second")
        XCTAssertTrue(lines.lines.last?.contains("5/5") == true, "\(lines.lines)")
    }
}
