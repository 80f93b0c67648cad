import Foundation

/// Server-side ceilings on compressing a model at load: compression parameters are checked
/// against each layer's shape, and a layer's estimated peak memory and work against these limits,
/// before anything is allocated; the whole load runs under a wall-clock budget checked between
/// layers. Requests that exceed them fail with a `CompressionLimitError` naming the limit.
public struct CompressionLimits: Sendable, Equatable {
    /// Largest estimated peak allocation compressing one layer may need.
    public var maxLayerBytes: Int
    /// Seconds one model's compression may take: layers whose estimated work does not fit in
    /// what is left are refused up front, and the load stops between layers once it is used up.
    public var maxSeconds: Double
    /// Floating-point operations per second assumed when estimating a layer's work (deliberately
    /// low: a shared machine under load).
    public var assumedOperationsPerSecond: Double

    public init(maxLayerBytes: Int = 4 << 30, maxSeconds: Double = 600, assumedOperationsPerSecond: Double = 4e9) {
        self.maxLayerBytes = maxLayerBytes
        self.maxSeconds = maxSeconds
        self.assumedOperationsPerSecond = assumedOperationsPerSecond
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var configured = CompressionLimits()
    private static let deadlineKey = "SparseModels.CompressionLimits.deadline"

    /// The limits loads in this process use (a server sets them from its config at start).
    public static var shared: CompressionLimits {
        get { lock.lock(); defer { lock.unlock() }; return configured }
        set { lock.lock(); configured = newValue; lock.unlock() }
    }

    /// Runs `body` (a model load on this thread) with the time budget of `shared` counting from now.
    public static func withTimeBudget<T>(_ body: () throws -> T) rethrows -> T {
        let dictionary = Thread.current.threadDictionary
        let outer = dictionary[deadlineKey]
        dictionary[deadlineKey] = Date(timeIntervalSinceNow: shared.maxSeconds)
        defer { dictionary[deadlineKey] = outer }
        return try body()
    }

    /// Seconds left of the current load's time budget (the whole budget outside `withTimeBudget`).
    static func secondsLeft() -> Double {
        guard let deadline = Thread.current.threadDictionary[deadlineKey] as? Date else { return shared.maxSeconds }
        return deadline.timeIntervalSinceNow
    }

    /// Checks `method` for a layer `name` of `outputs × inputs` against its shape and these limits.
    public static func check(_ method: LayerCompression, layer name: String, outputs: Int, inputs: Int) throws {
        try method.validate(outputFeatures: outputs, inputFeatures: inputs)
        let limits = shared
        let bytes = method.estimatedPeakBytes(outputFeatures: outputs, inputFeatures: inputs)
        if bytes > limits.maxLayerBytes {
            throw CompressionLimitError("compressing layer '\(name)' (\(outputs)×\(inputs)) as \(method) needs about \(bytes >> 20) MiB, over the limit of \(limits.maxLayerBytes >> 20) MiB")
        }
        let left = secondsLeft()
        if left <= 0 {
            throw CompressionLimitError("compression ran out of its time budget of \(limits.maxSeconds) s before layer '\(name)'")
        }
        let seconds = method.estimatedOperations(outputFeatures: outputs, inputFeatures: inputs) / limits.assumedOperationsPerSecond
        if seconds > left {
            throw CompressionLimitError("compressing layer '\(name)' (\(outputs)×\(inputs)) as \(method) is estimated at \(Int(seconds.rounded(.up))) s, more than the \(Int(left)) s left of the time budget (\(limits.maxSeconds) s)")
        }
    }
}

/// Compression parameters that do not fit a layer, or a compression over the load limits.
public struct CompressionLimitError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension LayerCompression {
    /// Checks the parameters against a row-major `outputFeatures × inputFeatures` layer before
    /// anything is allocated (ranges, divisibility, ranks that would store more than the layer).
    public func validate(outputFeatures m: Int, inputFeatures n: Int) throws {
        guard m > 0, n > 0 else { throw CompressionLimitError("a \(m)×\(n) layer cannot be compressed") }
        switch self {
        case .dense: return
        case .pinned(let inner): try inner.validate(outputFeatures: m, inputFeatures: n)
        case let .quantized(inner, q):
            try inner.validate(outputFeatures: m, inputFeatures: n)
            try q.check(inner, outputs: m, inputs: n)
        case let .nm(nKept, group), let .transposableNM(nKept, group):
            let maximum = isTransposable ? Self.maximumTransposableM : 16
            guard group >= 2, group <= maximum, nKept >= 1, nKept < group else {
                throw CompressionLimitError("\(nKept):\(group) needs 1 ≤ n < m ≤ \(maximum)")
            }
        case .csr(let density):
            guard density.isFinite, density > 0, density <= 1 else { throw CompressionLimitError("csr density \(density) is not in (0, 1]") }
        case let .blast(blocks, rank, ratio, iterations):
            try Self.validateBlast(blocks: blocks, rank: rank, ratio: ratio, iterations: iterations, m: m, n: n)
        case let .l1inf(_, radius, ratio):
            if let radius, !(radius.isFinite && radius >= 0) { throw CompressionLimitError("l1inf radius \(radius) must be a finite number ≥ 0") }
            if let ratio, !(ratio.isFinite && ratio > 0 && ratio <= 1) { throw CompressionLimitError("l1inf radiusRatio \(ratio) is not in (0, 1]") }
        }
    }

    /// TSENOR's largest group (`SS_TSENOR_MAX_M`).
    static let maximumTransposableM = 32

    private var isTransposable: Bool {
        if case .transposableNM = self { return true }
        return false
    }

    /// The largest BLAST rank worth storing: above it the factors hold more parameters than the layer.
    public static func maximumBlastRank(blocks b: Int, outputFeatures m: Int, inputFeatures n: Int) -> Int {
        max(1, (m * n) / (m + n + b * b))
    }

    private static func validateBlast(blocks b: Int, rank: Int?, ratio: Double?, iterations: Int, m: Int, n: Int) throws {
        guard b >= 1, b <= 1024, m % b == 0, n % b == 0 else {
            throw CompressionLimitError("blast blocks \(b) must divide both dimensions of the \(m)×\(n) layer")
        }
        guard (1...10_000).contains(iterations) else { throw CompressionLimitError("blast iterations \(iterations) is not in 1...10000") }
        if let ratio, !(ratio.isFinite && ratio > 0 && ratio < 1) { throw CompressionLimitError("blast parameterRatio \(ratio) is not in (0, 1)") }
        let maximum = maximumBlastRank(blocks: b, outputFeatures: m, inputFeatures: n)
        if let rank, !(1...maximum).contains(rank) {
            throw CompressionLimitError("blast rank \(rank) does not fit the \(m)×\(n) layer with \(b)×\(b) blocks: it must be in 1...\(maximum) (above \(maximum) the factors store more than the dense layer)")
        }
    }

    /// Estimated peak bytes compressing an `m × n` layer allocates (inputs, working copies, the
    /// packed result and the dense form it is timed against).
    public func estimatedPeakBytes(outputFeatures m: Int, inputFeatures n: Int) -> Int {
        let (mn, overflowed) = m.multipliedReportingOverflow(by: n)
        guard !overflowed, mn < Int.max / 64 else { return .max }
        switch self {
        case .pinned(let inner): return inner.estimatedPeakBytes(outputFeatures: m, inputFeatures: n)
        case .quantized(let inner, _): return inner.estimatedPeakBytes(outputFeatures: m, inputFeatures: n) + 12 * mn
        case .dense: return 8 * mn
        case .nm, .transposableNM: return 20 * mn
        case .csr, .l1inf: return 24 * mn
        case let .blast(b, rank, ratio, _):
            let r = rank ?? Self.blastRank(b, ratio, m, n)
            guard r > 0, r < 1 << 24 else { return .max }
            // scaled + transposed copies, factors in double, AV/AᵀU in float, per-block Gram matrices.
            let factors = 8 * r * (m + n + b * b) + 4 * r * b * (m + n) + 16 * b * r * r
            return 16 * mn + factors
        }
    }

    /// Estimated floating-point operations of the compression itself.
    public func estimatedOperations(outputFeatures m: Int, inputFeatures n: Int) -> Double {
        let mn = Double(m) * Double(n)
        switch self {
        case .pinned(let inner): return inner.estimatedOperations(outputFeatures: m, inputFeatures: n)
        case .quantized(let inner, _): return inner.estimatedOperations(outputFeatures: m, inputFeatures: n) + 4 * mn
        case .dense: return mn
        case .nm, .csr: return 50 * mn
        case let .transposableNM(_, group): return 200 * mn * Double(group)
        case .l1inf: return 100 * mn
        case let .blast(b, rank, ratio, iterations):
            let r = Double(rank ?? Self.blastRank(b, ratio, m, n))
            return Double(iterations) * (4 * mn * r + 4 * Double(b) * Double(m + n) * r * r)
        }
    }
}
