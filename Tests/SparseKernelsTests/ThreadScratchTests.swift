import CSparseKernels
import XCTest

/// Per-thread scratch grows on demand and is given back after one huge request.
final class ThreadScratchTests: XCTestCase {
    func testScratchShrinksAfterAHugeRequest() {
        let slot: Int32 = 3
        XCTAssertNotNil(ss_thread_scratch(slot, 1000))
        let small = ss_thread_scratch_capacity(slot)
        XCTAssertGreaterThanOrEqual(small, 1000)
        XCTAssertNotNil(ss_thread_scratch(slot, 900), "a smaller request reuses the buffer")
        XCTAssertEqual(ss_thread_scratch_capacity(slot), small)

        XCTAssertNotNil(ss_thread_scratch(slot, 16 << 20))  // 64 MiB
        XCTAssertGreaterThanOrEqual(ss_thread_scratch_capacity(slot), 16 << 20)
        XCTAssertNotNil(ss_thread_scratch(slot, 8 << 20), "half the size: kept")
        XCTAssertGreaterThanOrEqual(ss_thread_scratch_capacity(slot), 16 << 20)
        let buffer = ss_thread_scratch(slot, 1000)
        XCTAssertNotNil(buffer)
        XCTAssertLessThan(ss_thread_scratch_capacity(slot), 1 << 20, "the huge buffer is given back")
        buffer?[999] = 1  // usable at the size asked for

        XCTAssertNotNil(ss_thread_scratch(slot, 1 << 19))
        XCTAssertNotNil(ss_thread_scratch(slot, 100))
        XCTAssertGreaterThanOrEqual(ss_thread_scratch_capacity(slot), 1 << 19, "up to 4 MiB stays for reuse")
        XCTAssertEqual(ss_thread_scratch_capacity(-1), 0)
    }
}
