import CSparseKernels
import SparseKernels

/// What a linear layer's calibration inputs tell about it: the Gram matrix H = Σ x xᵀ (the
/// layer-wise loss ‖X Wᵀ − X Ŵᵀ‖² is tr((W − Ŵ) H (W − Ŵ)ᵀ)), accumulated in double from float
/// products by the C kernel, split across the kernel pool. With `cross`, also Σ x xᵈᵀ against the
/// dense model's inputs to the same layer (the refit's targets), and the column sums of both.
/// All matrices are `features × features`, row-major; the augmented forms append the constant 1
/// input (for the bias) as a last row and column.
public struct InputStatistics: Sendable {
    public let features: Int
    public private(set) var tokens = 0
    /// Σ x xᵀ (full, symmetric).
    public private(set) var gram: [Double]
    /// Σ x (dense x)ᵀ when tracking the dense inputs.
    public private(set) var cross: [Double]?
    public private(set) var sums: [Double]
    public private(set) var denseSums: [Double]?

    public init(features: Int, cross: Bool) {
        self.features = features
        gram = [Double](repeating: 0, count: features * features)
        self.cross = cross ? gram : nil
        sums = [Double](repeating: 0, count: features)
        denseSums = cross ? sums : nil
    }

    /// Adds `rows` inputs x (row-major, `features` wide) and, when tracking them, the dense model's
    /// inputs to the same layer for the same tokens.
    public mutating func add(_ x: UnsafePointer<Float>, dense: UnsafePointer<Float>?, rows: Int, pool: KernelPool = .shared) throws {
        let f = features
        try Self.accumulate(x, x, rows: rows, features: f, upper: true, into: &gram, pool: pool)
        if cross != nil, let dense {
            try Self.accumulate(x, dense, rows: rows, features: f, upper: false, into: &cross!, pool: pool)
            for t in 0..<rows { for c in 0..<f { denseSums![c] += Double(dense[t * f + c]) } }
        }
        for t in 0..<rows { for c in 0..<f { sums[c] += Double(x[t * f + c]) } }
        tokens += rows
    }

    /// H with its lower triangle filled (call once after the last `add`).
    public mutating func finish() {
        gram.withUnsafeMutableBufferPointer { ss_gram_mirror($0.baseAddress!, features) }
    }

    /// H plus the bias input: [[H, Σx], [Σxᵀ, T]].
    public var augmentedGram: [Double] { Self.augment(gram, sums, sums, tokens, features) }

    /// Σ x_aug x_dense,augᵀ (nil when the dense inputs were not tracked).
    public var augmentedCross: [Double]? {
        guard let cross, let denseSums else { return nil }
        return Self.augment(cross, sums, denseSums, tokens, features)
    }

    static func augment(_ m: [Double], _ rowSums: [Double], _ columnSums: [Double], _ tokens: Int, _ f: Int) -> [Double] {
        var out = [Double](repeating: 0, count: (f + 1) * (f + 1))
        for i in 0..<f {
            for j in 0..<f { out[i * (f + 1) + j] = m[i * f + j] }
            out[i * (f + 1) + f] = rowSums[i]
            out[f * (f + 1) + i] = columnSums[i]
        }
        out[f * (f + 1) + f] = Double(tokens)
        return out
    }

    /// out += aᵀ b over `rows` tokens; rows of `out` split across the pool in parts of equal work.
    static func accumulate(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, rows: Int, features f: Int, upper: Bool,
                           into out: inout [Double], pool: KernelPool) throws {
        let parts = max(1, min(pool.threadCount * 2, f / 16))
        let bounds = (0...parts).map { p -> Int in
            guard upper else { return f * p / parts }
            // equal areas of the upper triangle: rows [0, r) hold f² − (f − r)² over 2
            return f - Int((Double(f * f) * Double(parts - p) / Double(parts)).squareRoot().rounded())
        }
        let status = SendableStatus(parts)
        let (pa, pb) = (SendablePointer(a), SendablePointer(b))
        out.withUnsafeMutableBufferPointer { o in
            let po = SendablePointer(o.baseAddress!)
            pool.run(parts: parts) { p in
                status.set(p, ss_gram_accumulate(InstructionSet.current.cValue, pa.pointer, f, pb.pointer, f, rows, f,
                                                  bounds[p], bounds[p + 1], upper ? 1 : 0, po.pointer, f))
            }
        }
        try status.check("Gram matrix of \(rows) × \(f) calibration inputs")
    }
}

/// One C status per pool part; `check` throws the first failure.
/// Each part writes only its own slot of a fixed buffer (no Swift array access is shared across threads).
final class SendableStatus: @unchecked Sendable {
    private let values: UnsafeMutableBufferPointer<ss_status>
    init(_ parts: Int) { values = .allocate(capacity: parts); values.initialize(repeating: SS_OK) }
    deinit { values.deallocate() }
    func set(_ part: Int, _ value: ss_status) { values[part] = value }
    func check(_ operation: @autoclosure () -> String) throws {
        if let bad = values.first(where: { $0 != SS_OK }) { try KernelError.check(bad.rawValue, operation()) }
    }
}
