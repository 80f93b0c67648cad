import Foundation
import XCTest
@testable import HTTPServer

/// The client-gone flag and its callbacks without a socket (DisconnectTests covers the server's use).
final class HTTPConnectionStateTests: XCTestCase {
    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() { lock.lock(); value += 1; lock.unlock() }
        var count: Int { lock.lock(); defer { lock.unlock() }; return value }
    }

    func testCallbacksRunOnceWhenTheClientGoes() {
        let state = HTTPConnectionState()
        let calls = Counter()
        state.onClientGone { calls.increment() }
        state.onClientGone { calls.increment() }
        XCTAssertFalse(state.isClientGone)
        XCTAssertEqual(calls.count, 0)
        state.markClientGone()
        XCTAssertTrue(state.isClientGone)
        XCTAssertEqual(calls.count, 2)
        state.markClientGone()
        XCTAssertEqual(calls.count, 2, "a second mark runs nothing again")
    }

    func testLateRegistrationRunsAtOnce() {
        let state = HTTPConnectionState()
        state.markClientGone()
        let calls = Counter()
        state.onClientGone { calls.increment() }
        XCTAssertEqual(calls.count, 1)
    }

    func testFinishedRequestsNeverCallBack() {
        let state = HTTPConnectionState()
        let calls = Counter()
        state.onClientGone { calls.increment() }
        state.finish()
        state.markClientGone()
        XCTAssertEqual(calls.count, 0)
        XCTAssertTrue(state.isClientGone)
    }

    /// A callback may register another (or read the flag) without deadlocking: callbacks run outside the lock.
    func testCallbacksRunOutsideTheLock() {
        let state = HTTPConnectionState()
        let calls = Counter()
        state.onClientGone {
            XCTAssertTrue(state.isClientGone)
            state.onClientGone { calls.increment() }
        }
        state.markClientGone()
        XCTAssertEqual(calls.count, 1)
    }

    func testConcurrentMarksRunEachCallbackOnce() {
        let state = HTTPConnectionState()
        let calls = Counter()
        for _ in 0..<50 { state.onClientGone { calls.increment() } }
        DispatchQueue.concurrentPerform(iterations: 8) { _ in state.markClientGone() }
        XCTAssertEqual(calls.count, 50)
    }
}
