import Foundation
import XCTest
@testable import SparseServe

final class ComputeQueueTests: XCTestCase {
    /// Records job labels in execution order.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
    }

    func testWorkersCarryAKernelThreadName() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/proc/thread-self/comm"))
        let queue = ComputeQueue(threads: 1, maxQueueSize: 4)
        let done = DispatchSemaphore(value: 0)
        let name = Log()
        queue.submit { name.add((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""); done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(name.all, ["compute-0\n"], "what top, perf and trace_cpu.py see")
    }

    func testLanesAreServedInTurn() {
        let queue = ComputeQueue(threads: 1, maxQueueSize: 100)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let log = Log()
        queue.submit(lane: "a") { gate.wait() }
        for i in 0..<10 { queue.submit(lane: "a") { log.add("a\(i)"); done.signal() } }
        for i in 0..<2 { queue.submit(lane: "b") { log.add("b\(i)"); done.signal() } }
        gate.signal()
        for _ in 0..<12 { XCTAssertEqual(done.wait(timeout: .now() + 5), .success) }
        let order = log.all
        // b's two jobs interleave with a's instead of waiting behind all ten (which lane goes first
        // depends on whether the gate job left lane a before the others arrived).
        XCTAssertEqual(Set(order.prefix(4)), ["a0", "a1", "b0", "b1"])
        XCTAssertEqual(order.filter { $0.hasPrefix("a") }, (0..<10).map { "a\($0)" })
    }

    func testBoundIsTotalAcrossLanesAndShutdownRefuses() {
        let queue = ComputeQueue(threads: 1, maxQueueSize: 3)
        let gate = DispatchSemaphore(value: 0)
        XCTAssertTrue(queue.submit(lane: "a") { gate.wait() })
        // wait until the blocking job is running, so the queue is empty
        let deadline = Date().addingTimeInterval(5)
        while queue.runningCount == 0 && Date() < deadline { usleep(1000) }
        XCTAssertTrue(queue.submit(lane: "a") {})
        XCTAssertTrue(queue.submit(lane: "b") {})
        XCTAssertTrue(queue.submit(lane: "c") {})
        XCTAssertFalse(queue.submit(lane: "d") {})
        XCTAssertEqual(queue.queuedCount, 3)
        gate.signal()
        queue.shutdown()
        XCTAssertFalse(queue.submit(lane: "a") {})
    }
}
