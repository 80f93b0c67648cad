import CSparseKernels

/// An N:M-sparse linear layer with int8 weights and fp32 activations (weight-only): the
/// `NMWeights` pack (any n:m, m = 4, 8, 16) with int8 values, one scale per output row or per row
/// and group of inputs (a multiple of m); the selection kernel widens the values in registers
/// (`nm_int8_weights.h`). 1 byte per kept weight plus the index bits (fp32 N:M: 4 plus the bits).
public final class NMWeightOnlyInt8Weights: PanelKernelOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let n: Int
    public let m: Int
    public let granularity: Int8Granularity
    public let bias: [Float]?
    /// Row-major scales, `outputFeatures × granularity.scalesPerRow(inputFeatures:)`.
    public let scales: [Float]
    /// Kept weights (≤ n/m of the dense count).
    public let nonZeroCount: Int
    private let values: AlignedBuffer<Int8>
    private let indices: AlignedBuffer<UInt64>
    private let packedScales: AlignedBuffer<Float>

    /// Quantizes the kept weights of an fp32 N:M layer (round to nearest; same mask and positions).
    public convenience init(_ source: NMWeights, granularity: Int8Granularity) throws {
        let (out, inputs) = (source.outputFeatures, source.inputFeatures)
        try Self.checkGroup(granularity, m: source.m)
        let (q, s) = try quantizeInt8(source.denseWeights(), rows: out, columns: inputs, granularity: granularity)
        let (packed, words) = try NMWeights.pack(weights: q.map { Float($0) }, mask: source.keptMask(), outputFeatures: out,
                                                 inputFeatures: inputs, n: source.n, m: source.m)
        let pack = try NMWeights(packedValues: packed, indexWords: words, outputFeatures: out, inputFeatures: inputs,
                                 n: source.n, m: source.m, bias: source.bias)
        try self.init(integerPack: pack, scales: s, granularity: granularity)
    }

    /// Takes a checked N:M pack whose values are the int8 integers (−127...127) and their scales
    /// (finite, positive, `outputFeatures × scalesPerRow`).
    public init(integerPack pack: NMWeights, scales: [Float], granularity: Int8Granularity) throws {
        try Self.checkGroup(granularity, m: pack.m)
        let perRow = granularity.scalesPerRow(inputFeatures: pack.inputFeatures)
        try QuantizationError.checkScales(scales, expected: pack.outputFeatures * perRow, what: "N:M int8 \(granularity)")
        let floats = pack.packedValues
        if let bad = floats.firstIndex(where: { $0 != $0.rounded() || abs($0) > 127 }) {
            throw QuantizationError.shape("N:M int8: packed value \(bad) is \(floats[bad]), not an integer in -127...127")
        }
        inputFeatures = pack.inputFeatures
        outputFeatures = pack.outputFeatures
        n = pack.n
        m = pack.m
        self.granularity = granularity
        bias = pack.bias
        self.scales = scales
        nonZeroCount = pack.nonZeroCount
        values = AlignedBuffer(floats.map { Int8($0) }, zero: 0)
        indices = Self.indexBuffer(pack.packedIndexWords, m: m)
        packedScales = AlignedBuffer(count: ss_nmw8_scale_count(outputFeatures, inputFeatures, Int32(m), granularity.cGroup), zeroed: 0)
        try KernelError.check(ss_nmw8_pack_scales(scales, outputFeatures, inputFeatures, Int32(m), granularity.cGroup,
                                                  packedScales.pointer), "N:M int8 scales")
    }

    /// Group scales must not straddle an N:M group: the width is a multiple of m.
    static func checkGroup(_ granularity: Int8Granularity, m: Int) throws {
        guard case .group(let width) = granularity else { return }
        guard width > 0 else { throw QuantizationError.invalidGroup(width) }
        guard width % m == 0 else {
            throw QuantizationError.shape("N:M int8: group width \(width) is not a multiple of m = \(m) (a group of m inputs shares one scale)")
        }
    }

    /// Index words in the kernel's width: 32-bit for m = 4 (`nm.h`), else 64-bit (`NMBF16Weights` too).
    static func indexBuffer(_ words: [UInt64], m: Int) -> AlignedBuffer<UInt64> {
        guard m == 4 else { return AlignedBuffer(words, zero: 0) }
        let buffer = AlignedBuffer<UInt64>(count: (words.count + 1) / 2, zeroed: 0)
        let narrow = UnsafeMutableRawPointer(buffer.pointer).bindMemory(to: UInt32.self, capacity: words.count + 1)
        for (i, word) in words.enumerated() { narrow[i] = UInt32(truncatingIfNeeded: word) }
        return buffer
    }

    public var storage: String { "nm \(n):\(m) int8 \(granularity)" }
    public var parameterCount: Int { nonZeroCount + scales.count + (bias?.count ?? 0) }
    /// int8 values, index words, packed scales and bias.
    public var byteCount: Int {
        values.byteCount + ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m)) * (m == 4 ? 4 : 8)
            + packedScales.byteCount + (bias?.count ?? 0) * 4
    }
    public var flopsPerRow: Int { 2 * ((outputFeatures + 15) / 16 * 16) * ((inputFeatures + m - 1) / m) * n }

    /// The packed int8 values (`panels × groups × n × 16`), for artifacts.
    public var packedValues: [Int8] { Array(UnsafeBufferPointer(start: values.pointer, count: values.count)) }

    /// The dequantised weight (zeros where pruned), row-major.
    public func denseWeights() -> [Float] {
        let floats = packedValues.map { Float($0) }
        var q = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        q.withUnsafeMutableBufferPointer {
            ss_nm_unpack(floats, UnsafeRawPointer(indices.pointer), outputFeatures, inputFeatures, Int32(n), Int32(m), $0.baseAddress,
                         inputFeatures)
        }
        let perRow = granularity.scalesPerRow(inputFeatures: inputFeatures), width = granularity.cGroup
        return q.indices.map { i in
            let row = i / inputFeatures, column = i % inputFeatures
            return q[i] * scales[row * perRow + (width == 0 ? 0 : column / width)]
        }
    }

    /// The kernel on output panels `panels` (`PanelKernelOperator` gives the `apply` forms).
    public func runKernel(_ call: KernelCall, level: InstructionSet, panels: Range<Int>) -> Int32 {
        withOptionalPointer(bias) { b in
            ss_nmw8_gemm_panels_isa(level.cValue, values.pointer, UnsafeRawPointer(indices.pointer), packedScales.pointer, Int32(n),
                                    Int32(m), granularity.cGroup, b, outputFeatures, inputFeatures, call.x, call.inputStride,
                                    call.y, call.outputStride, call.rows, call.activation.cKind, panels.lowerBound, panels.upperBound)
        }
    }
}
