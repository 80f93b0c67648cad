import Foundation
import XCTest
import SparseKernels

/// The kernel pool: every part runs exactly once, split operators give the single-thread result,
/// a one-thread pool, many concurrent callers, and no thread growth (workers are persistent and
/// exit with their pool).
final class KernelPoolTests: XCTestCase {
    final class Counts: @unchecked Sendable {
        let lock = NSLock()
        var seen = [Int](repeating: 0, count: 257)
        func hit(_ i: Int) { lock.lock(); seen[i] += 1; lock.unlock() }
    }

    func testEveryPartRunsOnce() {
        for threads in [1, 2, 3] {
            let pool = KernelPool(threads: threads)
            XCTAssertEqual(pool.threadCount, threads)
            for round in 0..<60 {
                let counts = Counts()
                let parts = 1 + (round * 37) % 257
                pool.run(parts: parts) { counts.hit($0) }
                XCTAssertEqual(Array(counts.seen[0..<parts]), [Int](repeating: 1, count: parts), "threads=\(threads) parts=\(parts)")
                if round % 10 == 0 { Thread.sleep(forTimeInterval: 0.003) }  // let workers park, then wake them
            }
            pool.run(parts: 0) { _ in XCTFail("no parts") }
        }
    }

    /// All operator kinds, forced to split (threshold 0), give exactly the single-thread result.
    func testSplitOperatorsEqualSingleThread() throws {
        var random = TestRandom(seed: 21)
        let (k, n) = (96, 200)
        let w = random.array(n * k), bias = random.array(n)
        let operators: [any LinearOperator] = [
            DenseWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias),
            try NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 2, m: 4, bias: bias),
            try NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 3, m: 8, bias: bias),
            CSRWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, density: 0.2, bias: bias),
            try BlastWeights(u: random.array(n * 12), v: random.array(k * 12), s: random.array(4 * 3 * 12), outputFeatures: n,
                             inputFeatures: k, rowBlocks: 4, columnBlocks: 3, rank: 12, bias: bias),
            try BandedOperator.conv1d(weight: random.array(24 * 4 * 3), bias: random.array(24), inChannels: 4, outChannels: 24,
                                      kernelSize: 3, inputLength: 24, padding: (1, 1)),
        ]
        for threads in [1, 2, 3] {
            let pool = KernelPool(threads: threads, minimumSplitSeconds: 0)
            for op in operators {
                for rows in [1, 2, 5, 40, 128, 192] {  // 128, 192: split by token rows
                    let x = random.array(rows * op.inputFeatures)
                    for isa in InstructionSet.available {
                        let single = OperatorChecker.run(op, x: x, rows: rows, activation: .gelu, isa: isa)
                        let split = OperatorChecker.run(op, x: x, rows: rows, activation: .gelu, isa: isa, pool: pool)
                        XCTAssertEqual(split, single, "\(op.storage) threads=\(threads) rows=\(rows) \(isa)")
                    }
                }
            }
        }
    }

    /// Several threads call one pool at once (one splits, the others run inline): results exact.
    func testConcurrentCallers() throws {
        var random = TestRandom(seed: 22)
        let (k, n, rows) = (384, 520, 64)
        let dense = DenseWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
        let sparse = try NMWeights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, n: 2, m: 4)
        let x = random.array(rows * k)
        let want = [dense.apply(Matrix(rows: rows, columns: k, values: x), activation: .gelu).values,
                    sparse.apply(Matrix(rows: rows, columns: k, values: x), activation: .relu).values]
        let pool = KernelPool(threads: 3, minimumSplitSeconds: 0)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for round in 0..<5 {
                let useDense = (i + round) % 2 == 0
                let op: any LinearOperator = useDense ? dense : sparse
                let got = op.apply(Matrix(rows: rows, columns: k, values: x), activation: useDense ? .gelu : .relu, pool: pool)
                XCTAssertEqual(got.values, want[useDense ? 0 : 1])
            }
        }
    }

    /// Calls never create threads; a released pool's workers exit. Counts this process's threads
    /// named like kernel workers ("sparse-serve-kernel-N", truncated to 15 characters by Linux).
    func testNoThreadGrowth() throws {
        func kernelThreads() -> Int? {
            guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
            return tasks.filter { task in
                (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?.hasPrefix("sparse-serve-ke") ?? false
            }.count
        }
        /// The count once pools released earlier have finished shutting down (up to 2 s).
        func settled(atMost limit: Int? = nil) -> Int {
            var last = kernelThreads() ?? 0
            for _ in 0..<200 {
                Thread.sleep(forTimeInterval: 0.01)
                let now = kernelThreads() ?? 0
                if now == last && (limit.map { now <= $0 } ?? true) { return now }
                last = now
            }
            return last
        }
        guard kernelThreads() != nil else { throw XCTSkip("no /proc/self/task") }
        var random = TestRandom(seed: 23)
        let layer = DenseWeights(weights: random.array(64 * 64), outputFeatures: 64, inputFeatures: 64)
        let x = random.array(32 * 64)
        let before = settled()
        do {
            let pool = KernelPool(threads: 3, minimumSplitSeconds: 0)
            XCTAssertEqual(settled(), before + 2, "two workers (the caller is the third thread)")
            for _ in 0..<500 { _ = layer.apply(Matrix(rows: 32, columns: 64, values: x), activation: .relu, pool: pool) }
            XCTAssertEqual(kernelThreads(), before + 2, "no threads per call")
        }
        XCTAssertEqual(settled(atMost: before), before, "workers of a released pool must exit")
    }

    func testSplitDecision() {
        let pool = KernelPool(threads: 2), single = KernelPool(threads: 1)
        XCTAssertFalse(pool.shouldSplit(flops: 2 * 384 * 384, rows: 1))          // ~7 µs GEMV
        XCTAssertTrue(pool.shouldSplit(flops: 2 * 128 * 384 * 1536, rows: 128)) // ~1.5 ms GEMM
        XCTAssertFalse(single.shouldSplit(flops: 1e12, rows: 128))
        KernelPool.configureShared(threads: 2)
        XCTAssertEqual(KernelPool.shared.threadCount, 2)
    }
}
