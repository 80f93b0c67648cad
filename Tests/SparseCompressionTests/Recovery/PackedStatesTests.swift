import SparseKernels
import XCTest
@testable import SparseCompression

/// Token states of several sequences packed back to back: spans, gathering sequences in any order,
/// and runs of about N tokens (never empty).
final class PackedStatesTests: XCTestCase {
    func testSpansGatherAndChunks() {
        let s = PackedStates(spans: PackedStates.spans(lengths: [2, 3, 1]), width: 1, values: [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(s.spans, [.init(start: 0, length: 2), .init(start: 2, length: 3), .init(start: 5, length: 1)])
        XCTAssertEqual(s.tokens, 6)
        XCTAssertEqual(PackedStates(spans: [], width: 4, values: []).tokens, 0)
        let g = s.gather([2, 0])
        XCTAssertEqual(g.values, [5, 0, 1])
        XCTAssertEqual(g.spans, [.init(start: 0, length: 1), .init(start: 1, length: 2)])
        XCTAssertEqual(s.chunks(tokens: 3), [0..<1, 1..<2, 2..<3])
        XCTAssertEqual(s.chunks(tokens: 6), [0..<3])
        XCTAssertEqual(s.chunks(tokens: 1), [0..<1, 1..<2, 2..<3], "at least one sequence per run")
    }
}
