import Foundation
import SparseModels
import XCTest
@testable import SparseServe

/// Doubles its input and records the batch sizes it ran (thread-safe).
final class DoublingModel: InferenceModel, @unchecked Sendable {
    let architecture = "test"
    let inputs = [TensorSpec(name: "x", datatype: .fp32, shape: [-1, 2])]
    let outputs = [TensorSpec(name: "y", datatype: .fp32, shape: [-1, 2])]
    private let lock = NSLock()
    private(set) var batches: [Int] = []
    let delay: TimeInterval

    init(delay: TimeInterval = 0) { self.delay = delay }

    func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let x = inputs["x"]!
        guard case .fp32(let v) = x.storage else { throw InvalidInputError("fp32 only") }
        if v.contains(-1) { throw InvalidInputError("poison value") }
        lock.lock(); batches.append(x.shape[0]); lock.unlock()
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        return ["y": Tensor(shape: x.shape, storage: .fp32(v.map { $0 * 2 }))]
    }
}

final class BatchSchedulerTests: XCTestCase {
    func pending(_ values: [Float], deadline: UInt64? = nil, cancelled: Bool = false,
                 _ done: @escaping @Sendable (Result<[String: Tensor], Error>) -> Void) -> PendingInference {
        let t = Tensor(shape: [values.count / 2, 2], storage: .fp32(values))
        return PendingInference(request: InferenceRequest(id: nil, inputs: ["x": t], requestedOutputs: nil),
                                rows: values.count / 2, signature: ["x": [2]], arrived: DispatchTime.now().uptimeNanoseconds,
                                deadline: deadline, isCancelled: { cancelled }, complete: { result, _ in done(result) })
    }

    func testConcurrentRequestsShareBatchesAndGetTheirOwnRows() throws {
        let model = DoublingModel()
        var config = BatchingConfig()
        config.maxBatchSize = 8
        config.maxQueueDelayMicroseconds = 20_000
        let scheduler = BatchScheduler(model: model, config: config, compute: ComputeQueue(threads: 2, maxQueueSize: 100))
        let results = ResultBox()
        let done = expectation(description: "all answered")
        done.expectedFulfillmentCount = 12
        for i in 0..<12 {
            let v = Float(i)
            XCTAssertTrue(scheduler.enqueue(pending([v, v + 0.5]) { r in results.set(i, r); done.fulfill() }))
        }
        wait(for: [done], timeout: 10)
        for i in 0..<12 {
            let y = try XCTUnwrap(try results.get(i).get()["y"])
            XCTAssertEqual(y, Tensor(shape: [1, 2], storage: .fp32([Float(i) * 2, (Float(i) + 0.5) * 2])))
        }
        XCTAssertEqual(model.batches.reduce(0, +), 12)
        XCTAssertTrue(model.batches.allSatisfy { $0 <= 8 })
        XCTAssertLessThan(model.batches.count, 12, "a 20 ms window must coalesce some requests: \(model.batches)")
    }

    func testQueueLimitAndExpiryAndCancellation() throws {
        let model = DoublingModel(delay: 0.05)
        var config = BatchingConfig()
        config.maxBatchSize = 1
        config.maxQueueSize = 2
        let compute = ComputeQueue(threads: 1, maxQueueSize: 100)
        let scheduler = BatchScheduler(model: model, config: config, compute: compute)
        let results = ResultBox()
        let expired = expectation(description: "expired answered")
        let served = expectation(description: "served")
        let dropped = expectation(description: "cancelled request completed without running")
        // Occupy the only compute thread so the queue fills up.
        compute.submit { Thread.sleep(forTimeInterval: 0.2) }
        XCTAssertTrue(scheduler.enqueue(pending([1, 1], deadline: DispatchTime.now().uptimeNanoseconds + 1_000_000) { r in results.set(0, r); expired.fulfill() }))
        XCTAssertTrue(scheduler.enqueue(pending([2, 2], cancelled: true) { r in results.set(2, r); dropped.fulfill() }))
        XCTAssertFalse(scheduler.enqueue(pending([3, 3]) { _ in XCTFail("a refused request must not be answered") }), "queue of 2 is full")
        wait(for: [expired, dropped], timeout: 5)
        XCTAssertTrue(scheduler.enqueue(pending([5, 5]) { r in results.set(1, r); served.fulfill() }))
        wait(for: [served], timeout: 5)
        XCTAssertThrowsError(try results.get(0).get()) { e in
            XCTAssertEqual((e as? ProtocolError)?.status, 503)
            XCTAssertTrue((e as? ProtocolError)?.message.contains("queue timeout") ?? false)
        }
        XCTAssertEqual(try results.get(1).get()["y"], Tensor(shape: [1, 2], storage: .fp32([10, 10])))
        XCTAssertThrowsError(try results.get(2).get()) { e in
            XCTAssertEqual((e as? ProtocolError)?.reason, .cancelled)
        }
        XCTAssertEqual(model.batches, [1], "the expired and cancelled requests never ran")
    }

    func testIdleDispatchSkipsTheDelayOnlyWhenNothingIsRunning() throws {
        let model = DoublingModel()
        var config = BatchingConfig()
        config.maxBatchSize = 8
        config.maxQueueDelayMicroseconds = 3_000_000
        let compute = ComputeQueue(threads: 1, maxQueueSize: 10)
        let eager = BatchScheduler(model: model, config: config, compute: compute)
        let answered = expectation(description: "lone request answered without the 3 s delay")
        XCTAssertTrue(eager.enqueue(pending([1, 1]) { _ in answered.fulfill() }))
        wait(for: [answered], timeout: 1.5)

        config.dispatchWhenIdle = false
        let patient = BatchScheduler(model: model, config: config, compute: compute)
        let held = expectation(description: "held for the delay")
        held.isInverted = true
        XCTAssertTrue(patient.enqueue(pending([1, 1]) { _ in held.fulfill() }))
        wait(for: [held], timeout: 0.3)
    }

    /// With `maxBatchTokens`, a batch takes the oldest request and then every later one that still
    /// fits the budget (short ones fill what long ones leave); a request over the budget runs alone.
    func testTokenBudgetCutsBatchesAndRunsLargeRequestsAlone() throws {
        let model = DoublingModel()
        var config = BatchingConfig()
        config.maxBatchSize = 8
        config.maxBatchTokens = 100
        let compute = ComputeQueue(threads: 1, maxQueueSize: 10)
        let scheduler = BatchScheduler(model: model, config: config, compute: compute)
        // The only compute thread waits until every request is queued, so the first drain sees them all.
        let hold = DispatchSemaphore(value: 0)
        XCTAssertTrue(compute.submit { hold.wait() })
        let results = ResultBox()
        let done = expectation(description: "answered")
        let tokens = [60, 60, 30, 150, 10]
        done.expectedFulfillmentCount = tokens.count
        for (i, t) in tokens.enumerated() {
            var item = pending([Float(i), Float(i)]) { r in results.set(i, r); done.fulfill() }
            item.tokens = t
            XCTAssertTrue(scheduler.enqueue(item))
        }
        hold.signal()
        wait(for: [done], timeout: 5)
        XCTAssertEqual(model.batches, [3, 1, 1], "60+30+10, then 60, then the 150-token request alone")
        for i in tokens.indices {
            XCTAssertEqual(try results.get(i).get()["y"], Tensor(shape: [1, 2], storage: .fp32([Float(2 * i), Float(2 * i)])))
        }
    }

    func testPoisonedRequestDoesNotFailItsNeighbours() throws {
        let model = DoublingModel()
        var config = BatchingConfig()
        config.maxBatchSize = 4
        config.maxQueueDelayMicroseconds = 50_000
        let scheduler = BatchScheduler(model: model, config: config, compute: ComputeQueue(threads: 1, maxQueueSize: 10))
        let results = ResultBox()
        let done = expectation(description: "answered")
        done.expectedFulfillmentCount = 3
        for (i, v) in [Float(1), -1, 3].enumerated() {
            _ = scheduler.enqueue(pending([v, v]) { r in results.set(i, r); done.fulfill() })
        }
        wait(for: [done], timeout: 5)
        XCTAssertNoThrow(try results.get(0).get())
        XCTAssertThrowsError(try results.get(1).get())
        XCTAssertEqual(try results.get(2).get()["y"], Tensor(shape: [1, 2], storage: .fp32([6, 6])))
    }

    func testConcatenateAndSplitRows() throws {
        let a = Tensor(shape: [1, 2], storage: .int64([1, 2]))
        let b = Tensor(shape: [2, 2], storage: .int64([3, 4, 5, 6]))
        let c = try Tensor.concatenate([a, b])
        XCTAssertEqual(c, Tensor(shape: [3, 2], storage: .int64([1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(c.rows(1..<3), b)
        XCTAssertThrowsError(try Tensor.concatenate([a, Tensor(shape: [1, 3], storage: .int64([1, 2, 3]))]))
    }
}

/// Collects results from completion handlers on other threads.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<[String: Tensor], Error>] = [:]
    func set(_ i: Int, _ r: Result<[String: Tensor], Error>) { lock.lock(); results[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<[String: Tensor], Error> {
        lock.lock(); defer { lock.unlock() }
        return results[i] ?? .failure(ProtocolError(500, "no result \(i)"))
    }
}
