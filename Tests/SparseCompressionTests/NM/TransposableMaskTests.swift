import Foundation
import XCTest
import SparseModels
@testable import SparseCompression

final class TransposableMaskTests: XCTestCase {
    func randomHalfNormal(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<count).map { _ in Float(abs(rng.normal())) }
    }

    /// Rows and columns of every m×m block counted directly (independently of the library's check),
    /// for the mask and its transpose.
    func assertFeasible(_ mask: [Bool], rows: Int, columns: Int, n: Int, m: Int, _ label: String) {
        var bad = 0
        for transposed in [false, true] {
            let (r, c) = transposed ? (columns, rows) : (rows, columns)
            func kept(_ i: Int, _ j: Int) -> Bool { transposed ? mask[j * columns + i] : mask[i * columns + j] }
            for bi in 0..<(r / m) { for bj in 0..<(c / m) {
                for x in 0..<m {
                    var inRow = 0, inColumn = 0
                    for y in 0..<m {
                        if kept(bi * m + x, bj * m + y) { inRow += 1 }
                        if kept(bi * m + y, bj * m + x) { inColumn += 1 }
                    }
                    if inRow != n || inColumn != n { bad += 1 }
                }
            } }
        }
        XCTAssertEqual(bad, 0, "\(label): \(bad) rows/columns of blocks without exactly \(n) kept")
    }

    /// 10⁴ random blocks for each of 2:4, 4:8, 8:16 (2500 for 16:32): every row and column of every block
    /// (of W and of Wᵀ) keeps exactly N. The blocks mix half-normal, heavy-tailed, tied, all-zero
    /// and NaN/infinite weights.
    func testTenThousandBlocksAreFeasible() throws {
        // 16:32 on 50 × 50 blocks: its solver runs ~1.5 ms per block in a debug build (C at -O0).
        for (n, m, grid) in [(2, 4, 100), (4, 8, 100), (8, 16, 100), (16, 32, 50)] {
            let side = grid * m
            var rng = SplitMix(seed: UInt64(31 * m + n))
            var w = [Float](repeating: 0, count: side * side)
            for bi in 0..<grid { for bj in 0..<grid {
                let kind = (bi * grid + bj) % 10
                for x in 0..<m { for y in 0..<m {
                    let g = rng.normal()
                    let value: Double
                    switch kind {
                    case 0: value = 1                                   // all tied
                    case 1: value = 0                                   // all zero
                    case 2: value = g / max(1e-3, abs(rng.normal()))    // heavy-tailed (Cauchy-like)
                    case 3: value = x == y ? .nan : (x == 0 ? .infinity : g)
                    case 4: value = Double(Int(g * 2))                  // few distinct values
                    default: value = g
                    }
                    w[(bi * m + x) * side + bj * m + y] = Float(value)
                } }
            } }
            let start = Date()
            let mask = try TransposableMask.mask(w, rows: side, columns: side, n: n, m: m)
            let seconds = Date().timeIntervalSince(start)
            assertFeasible(mask, rows: side, columns: side, n: n, m: m, "\(n):\(m)")
            XCTAssertEqual(mask.filter { $0 }.count, side * side * n / m)
            print("transposable \(n):\(m): \(grid * grid) blocks feasible, \(String(format: "%.2f", seconds)) s")
        }
    }

    func testShapesAndErrors() throws {
        for (n, m, rows, cols) in [(2, 4, 16, 32), (1, 4, 8, 8), (4, 8, 16, 24), (2, 8, 8, 16), (8, 16, 32, 16), (3, 8, 8, 8), (31, 32, 32, 64)] {
            let w = randomHalfNormal(rows * cols, seed: UInt64(n * 100 + m))
            let mask = try TransposableMask.mask(w, rows: rows, columns: cols, n: n, m: m)
            assertFeasible(mask, rows: rows, columns: cols, n: n, m: m, "\(n):\(m) \(rows)x\(cols)")
            XCTAssertTrue(TransposableMask.isTransposable(mask, rows: rows, columns: cols, n: n, m: m))
            var broken = mask
            broken[0].toggle()
            XCTAssertFalse(TransposableMask.isTransposable(broken, rows: rows, columns: cols, n: n, m: m))
        }
        XCTAssertThrowsError(try TransposableMask.mask([Float](repeating: 1, count: 20), rows: 4, columns: 5, n: 2, m: 4))
        XCTAssertThrowsError(try TransposableMask.mask([Float](repeating: 1, count: 64 * 64), rows: 64, columns: 64, n: 2, m: 64))
        XCTAssertThrowsError(try TransposableMask.mask([Float](repeating: 1, count: 16), rows: 4, columns: 4, n: 4, m: 4))
    }

    /// 2:4 by the 90-pattern enumeration equals the brute-force optimum over all 2¹⁶ subsets of a
    /// 4×4 block (filtered to the feasible ones here), on 10⁴ blocks.
    func testTwoOfFourIsTheBruteForceOptimum() throws {
        let feasible = (0..<(1 << 16)).filter { bits in
            (0..<4).allSatisfy { i in ((bits >> (4 * i)) & 15).nonzeroBitCount == 2 }
                && (0..<4).allSatisfy { j in (0..<4).filter { bits & (1 << (4 * $0 + j)) != 0 }.count == 2 }
        }
        XCTAssertEqual(feasible.count, 90)
        let side = 400
        let w = randomHalfNormal(side * side, seed: 24)
        let mask = try TransposableMask.mask(w, rows: side, columns: side, n: 2, m: 4)
        var worst = 0.0
        var a = [Double](repeating: 0, count: 16)
        feasible.withUnsafeBufferPointer { patterns in
            for bi in 0..<100 { for bj in 0..<100 {
                var got = 0.0
                for e in 0..<16 {
                    let index = (bi * 4 + e / 4) * side + bj * 4 + e % 4
                    a[e] = Double(w[index])
                    if mask[index] { got += a[e] }
                }
                var best = 0.0
                for bits in patterns {
                    var score = 0.0
                    for e in 0..<16 where bits & (1 << e) != 0 { score += a[e] }
                    best = max(best, score)
                }
                worst = max(worst, (best - got) / best)
            } }
        }
        XCTAssertLessThanOrEqual(worst, 1e-6, "largest relative gap to the brute-force optimum")
    }

    /// TSENOR's mean kept-weight gap to the exact optimum (a min-cost flow solved here) on
    /// half-normal blocks is ≤ 0.2 % for 4:8, 8:16 and 16:32, and no block is worse than greedy
    /// rounding + repair. Prints the gaps (kept and pruned) of greedy, of the solver without 2-opt
    /// and of the solver as configured.
    func testKeptGapToTheExactOptimum() {
        for (n, m, count) in [(4, 8, 300), (8, 16, 200), (16, 32, 60)] {
            let blocks = (0..<count).map { randomHalfNormal(m * m, seed: UInt64(1000 * m + $0)) }
            var optimum = [Double](repeating: 0, count: count)
            optimum.withUnsafeMutableBufferPointer { out in
                let o = SendableDoubles(out.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: count) { b in
                    o.pointer[b] = Self.exactOptimum(blocks[b].map(Double.init), n: n, m: m)
                }
            }
            var greedyOptions = TransposableMask.Options()
            greedyOptions.iterations = 0  // S is then monotone in |w|: plain greedy rounding
            greedyOptions.twoOptRounds = 0
            var noTwoOpt = TransposableMask.Options()
            noTwoOpt.twoOptRounds = 0
            var report: [String] = []
            for (label, options) in [("greedy", greedyOptions), ("OT + rounding", noTwoOpt), ("TSENOR (default)", TransposableMask.Options())] {
                var keptGap = 0.0, prunedGap = 0.0
                for (b, block) in blocks.enumerated() {
                    let (mask, kept) = TransposableMask.block(block, n: n, m: m, options: options)
                    let exactKept = zip(mask, block).reduce(0.0) { $1.0 ? $0 + Double($1.1) : $0 }
                    XCTAssertEqual(kept, exactKept, accuracy: 1e-4 * exactKept)
                    XCTAssertLessThanOrEqual(exactKept, optimum[b] * (1 + 1e-9), "no mask beats the optimum")
                    let total = block.reduce(0.0) { $0 + Double($1) }
                    keptGap += (optimum[b] - exactKept) / optimum[b]
                    prunedGap += (optimum[b] - exactKept) / (total - optimum[b])
                    if label == "TSENOR (default)" {
                        let greedy = TransposableMask.block(block, n: n, m: m, options: greedyOptions).kept
                        XCTAssertGreaterThanOrEqual(exactKept, greedy * (1 - 1e-6), "\(n):\(m) block \(b) worse than greedy")
                    }
                }
                keptGap /= Double(count)
                prunedGap /= Double(count)
                report.append(String(format: "%@ kept-gap %.4f %% pruned-gap %.4f %%", label, keptGap * 100, prunedGap * 100))
                if label == "TSENOR (default)" { XCTAssertLessThanOrEqual(keptGap, 0.002, "\(n):\(m) mean kept gap") }
            }
            print("transposable \(n):\(m) over \(count) half-normal blocks vs exact: " + report.joined(separator: "; "))
        }
    }

    /// The exact best kept Σ|w| of a transposable n:m block: min-cost flow (source → row, capacity
    /// n; row → column, capacity 1, cost max|w| − |w|; column → sink, capacity n) by successive
    /// shortest paths (dense Dijkstra with potentials), n·m unit augmentations. Flat buffers, so it
    /// is quick enough in debug builds.
    static func exactOptimum(_ a: [Double], n: Int, m: Int) -> Double {
        let nodes = 2 * m + 2, source = 0, sink = 2 * m + 1
        let top = a.max() ?? 0
        // Edges: e and e ^ 1 are each other's reverse. Node v's edges are listed in adjacency[v].
        let edgeCount = 2 * (m * m + 2 * m)
        let to = UnsafeMutablePointer<Int>.allocate(capacity: edgeCount)
        let capacity = UnsafeMutablePointer<Int>.allocate(capacity: edgeCount)
        let cost = UnsafeMutablePointer<Double>.allocate(capacity: edgeCount)
        let adjacency = UnsafeMutablePointer<Int>.allocate(capacity: nodes * (m + 1))
        let degree = UnsafeMutablePointer<Int>.allocate(capacity: nodes)
        let potential = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
        let distance = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
        let via = UnsafeMutablePointer<Int>.allocate(capacity: nodes)
        let done = UnsafeMutablePointer<Bool>.allocate(capacity: nodes)
        defer { for p in [to, capacity, adjacency, degree, via] { p.deallocate() }; cost.deallocate(); potential.deallocate(); distance.deallocate(); done.deallocate() }
        degree.initialize(repeating: 0, count: nodes)
        potential.initialize(repeating: 0, count: nodes)
        var edges = 0
        func addEdge(_ u: Int, _ v: Int, _ c: Int, _ w: Double) {
            to[edges] = v; capacity[edges] = c; cost[edges] = w
            adjacency[u * (m + 1) + degree[u]] = edges; degree[u] += 1
            to[edges + 1] = u; capacity[edges + 1] = 0; cost[edges + 1] = -w
            adjacency[v * (m + 1) + degree[v]] = edges + 1; degree[v] += 1
            edges += 2
        }
        for i in 0..<m { addEdge(source, 1 + i, n, 0) }
        let firstCell = edges
        for i in 0..<m { for j in 0..<m { addEdge(1 + i, 1 + m + j, 1, top - a[i * m + j]) } }
        for j in 0..<m { addEdge(1 + m + j, sink, n, 0) }
        for _ in 0..<(n * m) {
            for v in 0..<nodes { distance[v] = .infinity; via[v] = -1; done[v] = false }
            distance[source] = 0
            for _ in 0..<nodes {
                var u = -1
                for v in 0..<nodes where !done[v] && distance[v] < .infinity && (u < 0 || distance[v] < distance[u]) { u = v }
                if u < 0 { break }
                done[u] = true
                for k in 0..<degree[u] {
                    let e = adjacency[u * (m + 1) + k]
                    guard capacity[e] > 0 else { continue }
                    let v = to[e], d = distance[u] + cost[e] + potential[u] - potential[v]
                    if d < distance[v] - 1e-12 { distance[v] = d; via[v] = e }
                }
            }
            precondition(distance[sink] < .infinity, "no augmenting path")
            for v in 0..<nodes where distance[v] < .infinity { potential[v] += distance[v] }
            var v = sink
            while v != source {
                let e = via[v]
                capacity[e] -= 1
                capacity[e ^ 1] += 1
                v = to[e ^ 1]
            }
        }
        var kept = 0.0
        for cell in 0..<(m * m) where capacity[firstCell + 2 * cell] == 0 { kept += a[cell] }
        return kept
    }

    /// The exact solver itself against brute force over every feasible 1:4, 2:4 and 3:4 pattern.
    func testExactSolverMatchesBruteForce() {
        for n in 1...3 {
            let feasible = (0..<(1 << 16)).filter { bits in
                (0..<4).allSatisfy { i in ((bits >> (4 * i)) & 15).nonzeroBitCount == n }
                    && (0..<4).allSatisfy { j in (0..<4).filter { bits & (1 << (4 * $0 + j)) != 0 }.count == n }
            }
            for seed in 0..<30 {
                let a = randomHalfNormal(16, seed: UInt64(500 + 10 * n + seed)).map(Double.init)
                let best = feasible.map { bits in (0..<16).reduce(0.0) { bits & (1 << $1) != 0 ? $0 + a[$1] : $0 } }.max()!
                XCTAssertEqual(Self.exactOptimum(a, n: n, m: 4), best, accuracy: 1e-9)
            }
        }
    }
}

private struct SendableDoubles: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    init(_ p: UnsafeMutablePointer<Double>) { pointer = p }
}
