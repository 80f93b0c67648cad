import CSparseKernels
import Foundation
import SparseKernels

/// Transposable N:M masks (TSENOR): every M×M block of the weight keeps exactly N entries in each
/// of its rows and each of its columns, so both W and Wᵀ are N:M. Per block the mask maximises
/// the kept |w| (a bipartite b-matching):
/// - 2:4 is solved exactly by scoring the 90 feasible 4×4 patterns;
/// - otherwise entropic optimal transport on the mean-normalised |w| (Dykstra: row scaling,
///   column scaling, box clip with its correction, until the sums settle), greedy rounding with
///   repair, then 2-opt exchanges; the same rounding + 2-opt on |w| itself is a per-block
///   safeguard, so a block is never worse than greedy.
/// The per-block solver is C (`tsenor.c`); blocks are independent and solved in parallel on the
/// kernel pool, and every mask is checked.
public enum TransposableMask {
    public struct Options: Sendable {
        /// Sharpness of the entropic problem on the mean-normalised block.
        public var tau: Double = 10
        /// Upper bound on Dykstra iterations (it stops once row and column sums are within 0.1 %).
        public var iterations = 100
        /// Sweeps of 2-opt exchanges over all row pairs.
        public var twoOptRounds = 8
        /// Instruction set of the Dykstra iterations (AVX2 when m is a multiple of 8).
        public var isa: InstructionSet = .current
        public init() {}
    }

    /// Largest supported m.
    public static let maximumM = Int(SS_TSENOR_MAX_M)

    public enum MaskError: Error, CustomStringConvertible {
        case shape(String)
        public var description: String { switch self { case .shape(let s): return s } }
    }

    /// The 0/1 mask (row-major, rows × columns) for `weights`, its blocks solved across `pool`.
    public static func mask(_ weights: [Float], rows: Int, columns: Int, n: Int, m: Int, options: Options = Options(),
                            pool: KernelPool? = .shared) throws -> [Bool] {
        guard m >= 2, m <= maximumM, n >= 1, n < m else {
            throw MaskError.shape("transposable \(n):\(m) needs 1 ≤ n < m ≤ \(maximumM)")
        }
        guard rows % m == 0, columns % m == 0 else {
            throw MaskError.shape("transposable \(n):\(m) masks need both dimensions divisible by \(m); the weight is \(rows)×\(columns)")
        }
        precondition(weights.count == rows * columns, "TransposableMask: \(weights.count) weights for \(rows)×\(columns)")
        let params = ss_tsenor_params(n: Int32(n), m: Int32(m), tau: Float(options.tau),
                                      iterations: Int32(options.iterations), two_opt_rounds: Int32(options.twoOptRounds),
                                      isa: options.isa.cValue)
        let blocks = (rows / m) * (columns / m)
        var result = [Bool](repeating: false, count: rows * columns)
        weights.withUnsafeBufferPointer { w in
            result.withUnsafeMutableBufferPointer { out in
                out.withMemoryRebound(to: UInt8.self) { bytes in
                    let ws = UnsafeSendable(w.baseAddress!), mask = UnsafeSendable(bytes.baseAddress!)
                    // Many more parts than threads: parts are claimed dynamically, so a thread that
                    // is descheduled on a shared machine holds up only a small part.
                    let threads = pool?.threadCount ?? 1
                    let parts = threads > 1 ? min(blocks, 64 * threads) : 1
                    let run: @Sendable (Int) -> Void = { part in
                        var local = params
                        ss_tsenor_blocks(&local, ws.pointer, rows, columns, columns,
                                         blocks * part / parts, blocks * (part + 1) / parts, mask.pointer)
                    }
                    if let pool, parts > 1 { pool.run(parts: parts, run) } else { run(0) }
                }
            }
        }
        guard isTransposable(result, rows: rows, columns: columns, n: n, m: m) else {
            throw MaskError.shape("transposable \(n):\(m): the solver produced an infeasible mask (a bug)")
        }
        return result
    }

    /// One m×m block (row-major) solved on the calling thread; returns the mask and the kept Σ|w|.
    public static func block(_ w: [Float], n: Int, m: Int, options: Options = Options()) -> (mask: [Bool], kept: Double) {
        precondition(w.count == m * m && m <= maximumM && n >= 1 && n < m)
        var params = ss_tsenor_params(n: Int32(n), m: Int32(m), tau: Float(options.tau),
                                      iterations: Int32(options.iterations), two_opt_rounds: Int32(options.twoOptRounds),
                                      isa: options.isa.cValue)
        var mask = [UInt8](repeating: 0, count: m * m)
        let kept = ss_tsenor_block(&params, w, m, &mask, m)
        return (mask.map { $0 != 0 }, Double(kept))
    }

    /// Whether every row and column of every m×m block keeps exactly n entries.
    public static func isTransposable(_ mask: [Bool], rows: Int, columns: Int, n: Int, m: Int) -> Bool {
        guard rows % m == 0, columns % m == 0, mask.count == rows * columns else { return false }
        return mask.withUnsafeBufferPointer { mk in
            // Per row: count in each block-column; per block-row: count in each column.
            var columnCounts = [Int](repeating: 0, count: columns)
            for r in 0..<rows {
                if r % m == 0 { for c in 0..<columns { columnCounts[c] = 0 } }
                var inBlock = 0
                for c in 0..<columns {
                    if mk[r * columns + c] { inBlock += 1; columnCounts[c] += 1 }
                    if c % m == m - 1 {
                        if inBlock != n { return false }
                        inBlock = 0
                    }
                }
                if r % m == m - 1, columnCounts.contains(where: { $0 != n }) { return false }
            }
            return true
        }
    }
}

/// A pointer handed to pool workers; each writes only its own blocks.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let pointer: T
    init(_ p: T) { pointer = p }
}
