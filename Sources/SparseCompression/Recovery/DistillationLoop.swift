import Foundation
import SparseKernels

/// The optimisation loop of encoder recovery: AdamW with linear warm-up and cosine decay over
/// shuffled mini-batches of whole sequences, one progress line per epoch (and per quarter epoch
/// when an epoch has 100 steps or more). The objective (forward
/// pass, loss, backward pass) is the caller's. A non-finite loss restores the parameters of the
/// last finite loss and stops the run; a non-finite gradient stops it before the update;
/// `shouldStop` stops it after the current step. `Clock` carries progress and the outcome across
/// several runs (one per encoder layer, then end to end).
struct DistillationLoop {
    typealias Block = RecoveryReport.Block

    struct Clock {
        let started = Date()
        let totalSteps: Int
        var steps = 0
        var outcome = RecoveryReport.Outcome.completed
        var note: String?
    }

    let options: RecoveryOptions
    let progress: (String) -> Void
    let shouldStop: () -> Bool

    func stepsPerEpoch(samples: Int) -> Int { (samples + options.batchSize - 1) / options.batchSize }

    /// Steps of `epochs` passes over `samples`, at most `limit`.
    func steps(samples: Int, epochs: Int, limit: Int? = nil) -> Int {
        min(epochs * stepsPerEpoch(samples: samples), limit ?? .max)
    }

    /// Trains `tensors` (`materialize` refreshes the weights the forward pass uses) for `epochs`
    /// passes over `samples` sequences, or the first `limit` steps of them, at peak rate `learningRate`. `objective(batch)` runs the
    /// forward pass and the loss and, when the loss is finite, the backward pass (adding the
    /// gradients), and returns the loss.
    func run(_ name: String, samples: Int, epochs: Int, limit: Int? = nil, learningRate: Float, tensors: [TrainableTensor],
             materialize: () -> Void, seed: UInt64, clock: inout Clock, objective: (ArraySlice<Int>) -> Double) -> Block {
        var schedule = options
        schedule.learningRate = learningRate
        let perEpoch = stepsPerEpoch(samples: samples), total = steps(samples: samples, epochs: epochs, limit: limit)
        var block = Block(layer: name, steps: 0, firstLoss: nil, lastLoss: nil)
        var rng = SplitMix(seed: seed)
        var order = Array(0..<samples), lastGood = tensors.map(\.values)
        for epoch in 0..<epochs where block.steps < total {
            order.shuffle(using: &rng)
            var epochLoss = 0.0, windowLoss = 0.0
            let epochSteps = min(perEpoch, total - block.steps), quarter = epochSteps >= 100 ? epochSteps / 4 : 0
            for b in 0..<epochSteps {
                guard !stopped(name, &clock) else { return block }
                for tensor in tensors { tensor.zeroGradient() }
                let loss = objective(order[b * options.batchSize ..< min(samples, (b + 1) * options.batchSize)])
                guard update(tensors, loss: loss, step: block.steps, of: total, schedule: schedule, lastGood: &lastGood, clock: &clock) else {
                    materialize()
                    return block
                }
                materialize()
                block.firstLoss = block.firstLoss ?? loss
                block.steps += 1
                clock.steps += 1
                epochLoss += loss
                windowLoss += loss
                if quarter > 0, (b + 1) % quarter == 0, b + 1 < epochSteps {
                    progress(line(name, epoch: epoch, of: epochs, loss: windowLoss / Double(quarter), clock: clock) + " (last \(quarter) steps)")
                    windowLoss = 0
                }
            }
            block.lastLoss = epochLoss / Double(max(1, epochSteps))
            progress(line(name, epoch: epoch, of: epochs, loss: block.lastLoss ?? .nan, clock: clock))
        }
        return block
    }

    /// A progress line: block, epoch, steps, loss, elapsed time and ETA.
    private func line(_ name: String, epoch: Int, of epochs: Int, loss: Double, clock: Clock) -> String {
        let elapsed = Date().timeIntervalSince(clock.started)
        return String(format: "recover: %@ epoch %d/%d  step %d/%d  loss %.6f  %.1f s  ETA %.0f s", name, epoch + 1, epochs, clock.steps,
                      clock.totalSteps, loss, elapsed, elapsed / Double(max(1, clock.steps)) * Double(clock.totalSteps - clock.steps))
    }

    /// Whether `shouldStop` asks to stop (the clock then says so).
    private func stopped(_ name: String, _ clock: inout Clock) -> Bool {
        guard shouldStop() else { return false }
        clock.outcome = .interrupted
        clock.note = "interrupted in \(name) after \(clock.steps) of \(clock.totalSteps) steps"
        return true
    }

    /// The AdamW step after a finite loss with finite gradients (true); otherwise the run stops
    /// (false): a non-finite loss puts back `lastGood`, the parameters of the last finite loss.
    private func update(_ tensors: [TrainableTensor], loss: Double, step: Int, of total: Int, schedule: RecoveryOptions,
                        lastGood: inout [[Float]], clock: inout Clock) -> Bool {
        let finiteGradient = loss.isFinite && tensors.allSatisfy { TrainingKernels.sumOfSquares($0.gradient, count: $0.gradient.count).isFinite }
        if finiteGradient {
            lastGood = tensors.map(\.values)
            let adam = TrainingKernels.Adam(learningRate: schedule.learningRate(step: step, of: total), weightDecay: options.weightDecay)
            for tensor in tensors { tensor.step(adam, step: step + 1) }
            return true
        }
        if !loss.isFinite {
            for (tensor, good) in zip(tensors, lastGood) { tensor.values = good }
        }
        clock.outcome = .diverged
        clock.note = "diverged: non-finite \(loss.isFinite ? "gradient" : "loss \(loss)") at step \(clock.steps + 1); kept the last weights with a finite loss"
        return false
    }
}
