import CSparseKernels
import Synchronization

/// An N:M-sparse linear layer: in every group of `m` consecutive inputs, each output row keeps at
/// most `n` weights (m ∈ {4, 8, 16}, 1 ≤ n < m). Values are packed in 16-row panels with 2-bit
/// (m = 4) or 4-bit (m = 8, 16) in-group positions (layout in `nm.h`); one copy serves both the
/// batch-1 kernel (in-register selection) and the batched one (weight broadcast).
public final class NMWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let n: Int
    public let m: Int
    public let bias: [Float]?
    private let values: AlignedBuffer<Float>
    private let indices: AlignedBuffer<UInt64>
    /// Non-zero weights actually kept (≤ n/m of the dense count).
    public let nonZeroCount: Int

    public enum PackError: Error, Equatable, CustomStringConvertible {
        case unsupported(n: Int, m: Int)
        case tooManyNonZeros(n: Int, m: Int)
        case shape(String)
        /// A pack that breaks the layout: `part` is "values" or "indices".
        case invalidPack(part: String, String)
        public var description: String {
            switch self {
            case let .unsupported(n, m): return "\(n):\(m) sparsity is not supported (m must be 4, 8 or 16 and 1 ≤ n < m)"
            case let .tooManyNonZeros(n, m): return "a group of \(m) inputs holds more than \(n) non-zero weights"
            case let .shape(message): return message
            case let .invalidPack(part, message): return "\(part): \(message)"
            }
        }
    }

    /// Packs a row-major `outputFeatures × inputFeatures` weight that is already N:M-sparse (zeros
    /// are pruned weights). Throws when a group of `m` holds more than `n` non-zeros.
    public init(prunedWeights weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        guard outputFeatures > 0, inputFeatures > 0, weights.count == outputFeatures * inputFeatures else {
            throw PackError.shape("NMWeights: \(weights.count) weights for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        guard bias.map({ $0.count == outputFeatures }) ?? true else {
            throw PackError.shape("NMWeights: bias needs \(outputFeatures) values")
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.n = n
        self.m = m
        self.bias = bias
        let valueCount = ss_nm_value_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        let words = ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        let packedValues = AlignedBuffer<Float>(count: valueCount, zeroed: 0)
        // m = 4 uses 32-bit words: half of this buffer.
        let packedIndices = AlignedBuffer<UInt64>(count: m == 4 ? (words + 1) / 2 : words, zeroed: 0)
        let status = weights.withUnsafeBufferPointer {
            ss_nm_pack($0.baseAddress, outputFeatures, inputFeatures, inputFeatures, Int32(n), Int32(m),
                       packedValues.pointer, UnsafeMutableRawPointer(packedIndices.pointer))
        }
        if status != 0 { throw PackError.tooManyNonZeros(n: n, m: m) }
        values = packedValues
        indices = packedIndices
        nonZeroCount = weights.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }

    /// Keeps the weights where `mask` is true (an already chosen N:M mask, e.g. from TSENOR).
    public convenience init(weights: [Float], mask: [Bool], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int,
                            bias: [Float]? = nil) throws {
        guard mask.count == weights.count else {
            throw PackError.shape("NMWeights: mask has \(mask.count) entries for \(weights.count) weights")
        }
        try self.init(prunedWeights: zip(weights, mask).map { $1 ? $0 : 0 }, outputFeatures: outputFeatures,
                      inputFeatures: inputFeatures, n: n, m: m, bias: bias)
    }

    /// Keeps the `n` largest-magnitude weights of every group of `m` inputs (ties: lower index).
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        try self.init(prunedWeights: NMWeights.magnitudeMask(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m),
                      outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m, bias: bias)
    }

    /// `weights` with all but the `n` largest magnitudes of each group of `m` set to zero.
    public static func magnitudeMask(_ weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int) -> [Float] {
        zip(weights, magnitudeKept(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)).map { $1 ? $0 : 0 }
    }

    /// Where the `n` largest magnitudes of each group of `m` inputs are (ties: lower index), as a
    /// row-major mask; kept zeros stay kept.
    public static func magnitudeKept(_ weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int) -> [Bool] {
        precondition(weights.count == outputFeatures * inputFeatures, "magnitudeKept: weight count does not match the shape")
        var mask = [Bool](repeating: false, count: weights.count)
        for row in 0..<outputFeatures {
            var g = 0
            while g < inputFeatures {
                let end = min(g + m, inputFeatures)
                let order = (g..<end).sorted {
                    let a = abs(weights[row * inputFeatures + $0]), b = abs(weights[row * inputFeatures + $1])
                    return a != b ? a > b : $0 < $1
                }
                for col in order.prefix(n) { mask[row * inputFeatures + col] = true }
                g = end
            }
        }
        return mask
    }

    // MARK: The packed form (compressed artifacts)

    /// Panels (16 output rows each) and groups (m inputs each) of a pack: values hold
    /// `panels × groups × n × 16` floats, the index stream `panels × groups × n` words.
    public static func packedShape(outputFeatures: Int, inputFeatures: Int, m: Int) -> (panels: Int, groups: Int) {
        ((outputFeatures + 15) / 16, (inputFeatures + m - 1) / m)
    }

    /// Bit offset of lane `j`'s in-group position inside an index word (nm.h).
    public static func laneShift(m: Int, lane j: Int) -> Int { m == 4 ? 2 * j : 32 * (j & 1) + 4 * (j >> 1) }

    /// Packs exactly the positions `mask` keeps (at most `n` per group of `m` inputs of a row, in
    /// increasing position), in the layout of `ss_nm_pack`: free slots take the lowest unused
    /// positions with weight 0. Unlike packing the non-zeros, a kept weight that happens to be 0
    /// keeps its position, so the index stream is the mask. Index words are widened to 64 bits
    /// (m = 4 uses only the low 32).
    public static func pack(weights: [Float], mask: [Bool], outputFeatures: Int, inputFeatures: Int,
                            n: Int, m: Int) throws -> (values: [Float], indexWords: [UInt64]) {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        guard outputFeatures > 0, inputFeatures > 0, weights.count == outputFeatures * inputFeatures, mask.count == weights.count else {
            throw PackError.shape("NMWeights.pack: \(weights.count) weights and \(mask.count) mask entries for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        let (panels, groups) = packedShape(outputFeatures: outputFeatures, inputFeatures: inputFeatures, m: m)
        var values = [Float](repeating: 0, count: panels * groups * n * 16)
        var words = [UInt64](repeating: 0, count: panels * groups * n)
        for p in 0..<panels {
            for j in 0..<16 {
                let row = p * 16 + j
                let shift = laneShift(m: m, lane: j)
                for g in 0..<groups {
                    let base = (p * groups + g) * n
                    var used = 0, slot = 0
                    if row < outputFeatures {
                        for c in 0..<m where g * m + c < inputFeatures && mask[row * inputFeatures + g * m + c] {
                            guard slot < n else { throw PackError.tooManyNonZeros(n: n, m: m) }
                            values[(base + slot) * 16 + j] = weights[row * inputFeatures + g * m + c]
                            words[base + slot] |= UInt64(c) << shift
                            used |= 1 << c
                            slot += 1
                        }
                    }
                    var c = 0
                    while slot < n {
                        if used & (1 << c) == 0 {
                            words[base + slot] |= UInt64(c) << shift
                            slot += 1
                        }
                        c += 1
                    }
                }
            }
        }
        return (values, words)
    }

    /// Takes a pack (values and index words as `pack` or `packedValues`/`packedIndexWords` give
    /// them) after checking it: the counts match the shape; every lane of every group holds `n`
    /// distinct positions below `m` (exactly n per group); weights are finite, and zero in padding
    /// rows and past the last input. Errors say which part and where.
    public init(packedValues: [Float], indexWords: [UInt64], outputFeatures: Int, inputFeatures: Int,
                n: Int, m: Int, bias: [Float]? = nil) throws {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        guard outputFeatures > 0, inputFeatures > 0 else { throw PackError.shape("NMWeights: empty \(outputFeatures)×\(inputFeatures) matrix") }
        guard bias.map({ $0.count == outputFeatures }) ?? true else { throw PackError.shape("NMWeights: bias needs \(outputFeatures) values") }
        let (panels, groups) = Self.packedShape(outputFeatures: outputFeatures, inputFeatures: inputFeatures, m: m)
        guard packedValues.count == panels * groups * n * 16 else {
            throw PackError.invalidPack(part: "values", "\(packedValues.count) values, a \(outputFeatures)×\(inputFeatures) \(n):\(m) pack has \(panels * groups * n * 16)")
        }
        guard indexWords.count == panels * groups * n else {
            throw PackError.invalidPack(part: "indices", "\(indexWords.count) index words, a \(outputFeatures)×\(inputFeatures) \(n):\(m) pack has \(panels * groups * n)")
        }
        if m == 4, let bad = indexWords.firstIndex(where: { $0 > UInt64(UInt32.max) }) {
            throw PackError.invalidPack(part: "indices", "word \(bad) does not fit the 32 bits of an m = 4 index word")
        }
        if let bad = packedValues.firstIndex(where: { !$0.isFinite }) {
            throw PackError.invalidPack(part: "values", "value \(bad) is not finite")
        }
        let positionMask: UInt64 = m == 4 ? 3 : 15
        for p in 0..<panels {
            for g in 0..<groups {
                let base = (p * groups + g) * n
                for j in 0..<16 {
                    let shift = Self.laneShift(m: m, lane: j)
                    var seen = 0
                    for s in 0..<n {
                        let position = Int((indexWords[base + s] >> shift) & positionMask)
                        func place() -> String { "panel \(p), group \(g), slot \(s), lane \(j) (row \(p * 16 + j), inputs \(g * m)..<\(g * m + m))" }
                        guard position < m else {
                            throw PackError.invalidPack(part: "indices", "\(place()): position \(position) is not below m = \(m)")
                        }
                        guard seen & (1 << position) == 0 else {
                            throw PackError.invalidPack(part: "indices", "\(place()): position \(position) is used twice; each group needs exactly \(n) distinct positions")
                        }
                        seen |= 1 << position
                        if packedValues[(base + s) * 16 + j] != 0 && (p * 16 + j >= outputFeatures || g * m + position >= inputFeatures) {
                            throw PackError.invalidPack(part: "values", "\(place()): a non-zero weight lies outside the \(outputFeatures)×\(inputFeatures) matrix")
                        }
                    }
                }
            }
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.n = n
        self.m = m
        self.bias = bias
        values = AlignedBuffer(packedValues, zero: 0)
        if m == 4 {
            let buffer = AlignedBuffer<UInt64>(count: (indexWords.count + 1) / 2, zeroed: 0)
            let narrow = UnsafeMutableRawPointer(buffer.pointer).bindMemory(to: UInt32.self, capacity: indexWords.count + 1)
            for (i, word) in indexWords.enumerated() { narrow[i] = UInt32(word) }
            indices = buffer
        } else {
            indices = AlignedBuffer(indexWords, zero: 0)
        }
        nonZeroCount = packedValues.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }

    /// The packed values, `panels × groups × n × 16` floats (see `packedShape`).
    public var packedValues: [Float] {
        Array(UnsafeBufferPointer(start: values.pointer, count: values.count))
    }

    /// The index stream, one word per (panel, group, slot), widened to 64 bits for m = 4.
    public var packedIndexWords: [UInt64] {
        let count = ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        if m == 4 {
            let narrow = UnsafeRawPointer(indices.pointer).bindMemory(to: UInt32.self, capacity: count)
            return (0..<count).map { UInt64(narrow[$0]) }
        }
        return Array(UnsafeBufferPointer(start: indices.pointer, count: count))
    }

    /// The positions the index stream keeps, as a row-major mask (n per group; fewer only in a
    /// last group shorter than n).
    public func keptMask() -> [Bool] {
        var mask = [Bool](repeating: false, count: outputFeatures * inputFeatures)
        let (panels, groups) = Self.packedShape(outputFeatures: outputFeatures, inputFeatures: inputFeatures, m: m)
        let words = packedIndexWords
        let positionMask: UInt64 = m == 4 ? 3 : 15
        for p in 0..<panels {
            for j in 0..<16 where p * 16 + j < outputFeatures {
                let row = p * 16 + j, shift = Self.laneShift(m: m, lane: j)
                for g in 0..<groups {
                    for s in 0..<n {
                        let column = g * m + Int((words[(p * groups + g) * n + s] >> shift) & positionMask)
                        if column < inputFeatures { mask[row * inputFeatures + column] = true }
                    }
                }
            }
        }
        return mask
    }

    public var storage: String { "nm \(n):\(m)" }
    public var parameterCount: Int { nonZeroCount + (bias?.count ?? 0) }
    /// Packed values (rows padded to 16, every slot stored) + index words + bias.
    public var byteCount: Int {
        values.byteCount + ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m)) * (m == 4 ? 4 : 8)
            + (bias?.count ?? 0) * 4
    }
    public var flopsPerRow: Int {
        2 * ((outputFeatures + 15) / 16 * 16) * ((inputFeatures + m - 1) / m) * n
    }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let split = splits(rows: rows, pool: pool, costFactor: rows <= 2 ? 1 : Self.batchedCostFactor)
        if split && applySplitByTokens(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride,
                                       activation: activation, pool: pool, isa: isa) { return }
        // A split call's parts carry one id: each thread prepares the input once for all its parts.
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        let call = split ? Self.callIDs.add(1, ordering: .relaxed).newValue : 0
        forEachPanelRange(split: split, pool: pool) { [self] range in
            withOptionalPointer(bias) { b in
                let status = ss_nm_gemm_panels_isa(isa.cValue, values.pointer, UnsafeRawPointer(indices.pointer), Int32(n), Int32(m), b,
                                                   outputFeatures, inputFeatures, xs.pointer, inputStride, ys.pointer, outputStride, rows,
                                                   activation.cKind, range.lowerBound, range.upperBound, call)
                KernelError.require(status, "\(storage) \(inputFeatures)→\(outputFeatures), \(rows) rows")
            }
        }
    }

    /// Ids of split calls (nonzero, never reused): each thread that runs parts of one prepares its
    /// input once for all its parts (the pool hands out 4 parts a thread), in its own scratch.
    /// One preparation on the caller shared by all parts measured slower on two threads at 32–112
    /// rows (1.02–1.11× our dense → 1.14–1.35× on 384² and 1536×384): the other core read it
    /// across cores.
    private static let callIDs = Atomic<UInt64>(0)

    /// Time per kept multiply-add of the batched kernels relative to the dense GEMM's per
    /// multiply-add, for the pool's split decision: 2:4 at 3..64 rows runs at 1.1–1.35× dense
    /// speed with half the multiply-adds, so each kept one costs about 1.6× a dense one. Counted
    /// as 1 (as before), a 2:4 layer that takes as long as a dense one the pool splits stayed on
    /// one thread.
    static let batchedCostFactor = 1.6

    /// The weight back as a dense row-major matrix (zeros where pruned).
    public func denseWeights() -> [Float] {
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        out.withUnsafeMutableBufferPointer {
            ss_nm_unpack(values.pointer, UnsafeRawPointer(indices.pointer), outputFeatures, inputFeatures, Int32(n), Int32(m),
                         $0.baseAddress, inputFeatures)
        }
        return out
    }
}
