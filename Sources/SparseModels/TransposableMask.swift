import Foundation

/// Transposable N:M masks (TSENOR): every M×M block of the weight keeps exactly N entries in each
/// of its rows and each of its columns, so both W and Wᵀ are N:M. Per block the mask maximises
/// the kept |w| (a bipartite b-matching):
/// - 2:4 is solved exactly by enumerating the 90 feasible 4×4 patterns;
/// - otherwise entropic optimal transport on the mean-normalised |w| (Dykstra: row scaling,
///   column scaling, box clip with its correction), greedy rounding with swap repair, then 2-opt
///   swaps; a per-block safeguard keeps the greedy-on-|w| mask when it is better.
/// Blocks are independent and solved in parallel.
public enum TransposableMask {
    public struct Options: Sendable {
        public var tau: Double = 10
        public var iterations = 200
        public var twoOptRounds = 20
        public init() {}
    }

    public enum MaskError: Error, CustomStringConvertible {
        case shape(String)
        public var description: String { switch self { case .shape(let s): return s } }
    }

    /// The 0/1 mask (row-major, rows × columns) for `weights`.
    public static func mask(_ weights: [Float], rows: Int, columns: Int, n: Int, m: Int, options: Options = Options()) throws -> [Bool] {
        guard m >= 2, n >= 1, n < m else { throw MaskError.shape("transposable \(n):\(m) needs 1 ≤ n < m") }
        guard rows % m == 0, columns % m == 0 else {
            throw MaskError.shape("transposable \(n):\(m) masks need both dimensions divisible by \(m); the weight is \(rows)×\(columns)")
        }
        let blockRows = rows / m, blockCols = columns / m
        let total = blockRows * blockCols
        let result = UnsafeMutableBufferPointer<Bool>.allocate(capacity: rows * columns)
        result.initialize(repeating: false)
        defer { result.deallocate() }
        let out = SendableBools(result)
        let patterns = (n == 2 && m == 4) ? twoOfFour : []
        DispatchQueue.concurrentPerform(iterations: total) { index in
            let bi = index / blockCols, bj = index % blockCols
            var block = [Double](repeating: 0, count: m * m)
            for x in 0..<m { for y in 0..<m { block[x * m + y] = Double(abs(weights[(bi * m + x) * columns + bj * m + y])) } }
            let chosen = patterns.isEmpty ? solve(block, n: n, m: m, options: options) : best(of: patterns, block)
            for x in 0..<m { for y in 0..<m where chosen[x * m + y] { out.buffer[(bi * m + x) * columns + bj * m + y] = true } }
        }
        return Array(result)
    }

    /// Whether every row and column of every m×m block keeps exactly n entries.
    public static func isTransposable(_ mask: [Bool], rows: Int, columns: Int, n: Int, m: Int) -> Bool {
        guard rows % m == 0, columns % m == 0 else { return false }
        for bi in 0..<(rows / m) { for bj in 0..<(columns / m) {
            for x in 0..<m {
                if (0..<m).filter({ mask[(bi * m + x) * columns + bj * m + $0] }).count != n { return false }
                if (0..<m).filter({ mask[(bi * m + $0) * columns + bj * m + x] }).count != n { return false }
            }
        } }
        return true
    }

    /// All 4×4 0/1 matrices with two ones in every row and column (there are 90).
    static let twoOfFour: [[Bool]] = {
        let rowChoices = (0..<16).filter { $0.nonzeroBitCount == 2 }
        var out: [[Bool]] = []
        for a in rowChoices { for b in rowChoices { for c in rowChoices { for d in rowChoices {
            let rowsBits = [a, b, c, d]
            let columnsOK = (0..<4).allSatisfy { col in rowsBits.filter { $0 & (1 << col) != 0 }.count == 2 }
            if columnsOK { out.append(rowsBits.flatMap { r in (0..<4).map { r & (1 << $0) != 0 } }) }
        } } } }
        return out
    }()

    static func best(of patterns: [[Bool]], _ block: [Double]) -> [Bool] {
        var bestScore = -Double.infinity, bestIndex = 0
        for (i, p) in patterns.enumerated() {
            var score = 0.0
            for k in 0..<16 where p[k] { score += block[k] }
            if score > bestScore { bestScore = score; bestIndex = i }
        }
        return patterns[bestIndex]
    }

    static func score(_ mask: [Bool], _ block: [Double]) -> Double {
        zip(mask, block).reduce(0) { $0 + ($1.0 ? $1.1 : 0) }
    }

    /// Entropic OT + rounding + 2-opt, safeguarded by greedy on |w|.
    static func solve(_ block: [Double], n: Int, m: Int, options: Options) -> [Bool] {
        let mean = max(1e-30, block.reduce(0, +) / Double(block.count))
        var s = block.map { exp(options.tau * ($0 / mean - 1)) }
        var q = [Double](repeating: 1, count: m * m)
        let target = Double(n)
        for _ in 0..<options.iterations {
            for x in 0..<m {
                let sum = (0..<m).reduce(0.0) { $0 + s[x * m + $1] }
                if sum > 0 { for y in 0..<m { s[x * m + y] *= target / sum } }
            }
            for y in 0..<m {
                let sum = (0..<m).reduce(0.0) { $0 + s[$1 * m + y] }
                if sum > 0 { for x in 0..<m { s[x * m + y] *= target / sum } }
            }
            for k in 0..<(m * m) {
                let p = s[k] * q[k]
                s[k] = min(p, 1)
                q[k] = s[k] > 0 ? p / s[k] : 1
            }
        }
        var fromOT = round(s, scores: block, n: n, m: m)
        var fromGreedy = round(block, scores: block, n: n, m: m)
        twoOpt(&fromOT, block, m: m, rounds: options.twoOptRounds)
        twoOpt(&fromGreedy, block, m: m, rounds: options.twoOptRounds)
        return score(fromOT, block) >= score(fromGreedy, block) ? fromOT : fromGreedy
    }

    /// Greedy on `priority`, then swaps until every row and column holds n (feasibility repair).
    static func round(_ priority: [Double], scores w: [Double], n: Int, m: Int) -> [Bool] {
        var mask = [Bool](repeating: false, count: m * m)
        var rowCount = [Int](repeating: 0, count: m), colCount = [Int](repeating: 0, count: m)
        for k in (0..<(m * m)).sorted(by: { priority[$0] > priority[$1] }) {
            let x = k / m, y = k % m
            if rowCount[x] < n && colCount[y] < n {
                mask[k] = true
                rowCount[x] += 1
                colCount[y] += 1
            }
        }
        // Each unsaturated row pairs with an unsaturated column (their deficits are equal). For
        // such (i, j), with mask[i][j] already set, swap through a kept (i', j'): add (i, j'),
        // (i', j), remove (i', j'), choosing the best gain.
        while let i = rowCount.firstIndex(where: { $0 < n }), let j = colCount.firstIndex(where: { $0 < n }) {
            if !mask[i * m + j] {
                mask[i * m + j] = true
                rowCount[i] += 1
                colCount[j] += 1
                continue
            }
            var bestGain = -Double.infinity, bestPair: (Int, Int)?
            for i2 in 0..<m where i2 != i { for j2 in 0..<m where j2 != j {
                guard mask[i2 * m + j2], !mask[i * m + j2], !mask[i2 * m + j] else { continue }
                let gain = w[i * m + j2] + w[i2 * m + j] - w[i2 * m + j2]
                if gain > bestGain { bestGain = gain; bestPair = (i2, j2) }
            } }
            guard let (i2, j2) = bestPair else { break }
            mask[i * m + j2] = true
            mask[i2 * m + j] = true
            mask[i2 * m + j2] = false
            rowCount[i] += 1
            colCount[j] += 1
        }
        return mask
    }

    /// Improving 2×2 swaps: kept (a, b), (c, d) and dropped (a, d), (c, b) trade places when that
    /// keeps more; row and column counts are unchanged.
    static func twoOpt(_ mask: inout [Bool], _ w: [Double], m: Int, rounds: Int) {
        for _ in 0..<rounds {
            var improved = false
            for a in 0..<m { for c in (a + 1)..<max(a + 1, m) {
                for b in 0..<m { for d in 0..<m where b != d {
                    guard mask[a * m + b], mask[c * m + d], !mask[a * m + d], !mask[c * m + b] else { continue }
                    if w[a * m + d] + w[c * m + b] > w[a * m + b] + w[c * m + d] + 1e-15 {
                        mask[a * m + b] = false; mask[c * m + d] = false
                        mask[a * m + d] = true; mask[c * m + b] = true
                        improved = true
                    }
                } }
            } }
            if !improved { return }
        }
    }
}

/// A shared output buffer; each block writes only its own cells.
private struct SendableBools: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Bool>
    init(_ b: UnsafeMutableBufferPointer<Bool>) { buffer = b }
}
