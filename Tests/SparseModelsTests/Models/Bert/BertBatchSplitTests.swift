import XCTest
@testable import SparseModels

/// Per-thread groups of whole sequences: contiguous, covering the batch, balanced within 25 %, or
/// one group when the batch is small or cannot be balanced.
final class BertBatchSplitTests: XCTestCase {
    private let threshold = BertBatchSplit.splitThresholdFlops

    private func cost(_ lengths: ArraySlice<Int>) -> Int { lengths.map { $0 * (2300 + $0) }.reduce(0, +) }

    func testEqualSequencesSplitEvenly() {
        let lengths = [Int](repeating: 128, count: 8)
        XCTAssertEqual(BertBatchSplit.groups(lengths: lengths, parts: 2, splitThreshold: threshold), [0..<4, 4..<8])
        XCTAssertEqual(BertBatchSplit.groups(lengths: lengths, parts: 4, splitThreshold: threshold), [0..<2, 2..<4, 4..<6, 6..<8])
    }

    /// Whatever the lengths, a split covers 0..<count with contiguous non-empty ranges and its
    /// largest part costs at most 1.25 × the mean.
    func testSplitsAreContiguousCoveringAndBalanced() {
        var seed: UInt64 = 7
        for _ in 0..<200 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let count = Int(seed >> 60) + 2
            let lengths = (0..<count).map { i in 8 + Int((seed >> UInt64(i % 50)) % 300) }
            for parts in 2...4 {
                let groups = BertBatchSplit.groups(lengths: lengths, parts: parts, splitThreshold: threshold)
                XCTAssertEqual(groups.first?.lowerBound, 0)
                XCTAssertEqual(groups.last?.upperBound, count)
                for (a, b) in zip(groups, groups.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertTrue(groups.allSatisfy { !$0.isEmpty })
                if groups.count > 1 {
                    XCTAssertEqual(groups.count, parts)
                    let total = cost(lengths[...])
                    XCTAssertLessThanOrEqual(groups.map { cost(lengths[$0]) }.max()! * 4, total * 5 / parts, "\(lengths) / \(parts)")
                }
            }
        }
    }

    func testSmallOrUnbalanceableBatchesStayWhole() {
        XCTAssertEqual(BertBatchSplit.groups(lengths: [2, 2, 2, 2], parts: 2, splitThreshold: threshold), [0..<4], "too little work")
        XCTAssertEqual(BertBatchSplit.groups(lengths: [512, 512], parts: 4, splitThreshold: threshold), [0..<2], "fewer sequences than parts")
        XCTAssertEqual(BertBatchSplit.groups(lengths: [512, 8, 8, 8], parts: 2, splitThreshold: threshold), [0..<4],
                       "one long sequence cannot be balanced within 25 %")
        XCTAssertEqual(BertBatchSplit.groups(lengths: [128, 128], parts: 1, splitThreshold: threshold), [0..<2])
        XCTAssertEqual(BertBatchSplit.groups(lengths: [], parts: 2, splitThreshold: 0), [0..<0])
        XCTAssertEqual(BertBatchSplit.groups(lengths: [5, 5], parts: 2, splitThreshold: 0), [0..<1, 1..<2], "threshold 0 splits any batch")
    }

    /// Runs for one thread: consecutive, covering, at most `limit` tokens unless one sequence alone
    /// is longer; 128 tokens for MiniLM's FFN width.
    func testCacheGroups() {
        XCTAssertEqual(BertBatchSplit.cacheTokens(ffn: 1536), 128)
        XCTAssertEqual(BertBatchSplit.cacheTokens(ffn: 1 << 30), 1)
        XCTAssertEqual(BertBatchSplit.cacheGroups(lengths: [Int](repeating: 128, count: 4), limit: 128), [0..<1, 1..<2, 2..<3, 3..<4])
        XCTAssertEqual(BertBatchSplit.cacheGroups(lengths: [16, 16, 100, 300, 10, 118, 1], limit: 128),
                       [0..<2, 2..<3, 3..<4, 4..<6, 6..<7])
        XCTAssertEqual(BertBatchSplit.cacheGroups(lengths: [], limit: 128), [])
        var seed: UInt64 = 11
        for _ in 0..<100 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let lengths = (0..<Int(seed >> 59) + 1).map { i in 1 + Int((seed >> UInt64(i % 40)) % 200) }
            let groups = BertBatchSplit.cacheGroups(lengths: lengths, limit: 128)
            XCTAssertEqual(groups.first?.lowerBound, 0)
            XCTAssertEqual(groups.last?.upperBound, lengths.count)
            for (a, b) in zip(groups, groups.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
            for g in groups {
                XCTAssertTrue(g.count == 1 || lengths[g].reduce(0, +) <= 128, "\(lengths[g])")
                if g.upperBound < lengths.count { XCTAssertGreaterThan(lengths[g].reduce(0, +) + lengths[g.upperBound], 128, "greedy") }
            }
        }
    }
}
