import CSparseKernels

/// How int8 weight scales are shared: one per output row, or one per row and group of inputs.
public enum Int8Granularity: Sendable, Equatable, CustomStringConvertible {
    case channel
    case group(Int)

    /// The C kernels' encoding: 0 for per-row scales, else the group width.
    var cGroup: Int {
        if case .group(let width) = self { return width }
        return 0
    }

    /// Scales per output row for `inputFeatures` inputs.
    public func scalesPerRow(inputFeatures: Int) -> Int {
        if case .group(let width) = self { return (inputFeatures + width - 1) / width }
        return 1
    }

    public var description: String {
        if case .group(let width) = self { return "group \(width)" }
        return "channel"
    }
}

/// Why quantized weights were refused (at quantization or when loading stored ones).
public enum QuantizationError: Error, Equatable, CustomStringConvertible {
    /// Counts or dimensions that do not match.
    case shape(String)
    /// A scale that is not finite and positive: index into the row-major scales.
    case invalidScale(index: Int, value: Float)
    /// A weight (or bf16 value) that is not finite: its row-major index.
    case nonFiniteWeight(index: Int)
    /// A group width that is not positive.
    case invalidGroup(Int)

    public var description: String {
        switch self {
        case .shape(let message): return message
        case let .invalidScale(index, value): return "scale \(index) is \(value); scales must be finite and positive, with 127 × scale finite"
        case .nonFiniteWeight(let index): return "weight \(index) is not finite"
        case .invalidGroup(let width): return "group width \(width) must be positive"
        }
    }

    /// Checks stored W8A8 tensors: `values` of an `outputs × inputs` matrix (inputs ≤ 65536, so
    /// int32 sums cannot overflow), one finite positive scale per output row, an optional bias.
    static func checkRowScaled(values: Int, scales: [Float], bias: [Float]?, outputs: Int, inputs: Int, what: String) throws {
        guard outputs > 0, inputs > 0, inputs <= 65536, values == outputs * inputs else {
            throw QuantizationError.shape("\(what): \(values) values for a \(outputs)×\(inputs) matrix (at most 65536 inputs)")
        }
        try checkScales(scales, expected: outputs, what: what)
        try checkBias(bias, outputs: outputs, what: what)
    }

    /// Checks an optional bias: one value per output.
    static func checkBias(_ bias: [Float]?, outputs: Int, what: String) throws {
        if let bias, bias.count != outputs { throw QuantizationError.shape("\(what): bias has \(bias.count) values, expected \(outputs)") }
    }

    /// Checks a scale array: `expected` entries, each > 0 and small enough that 127 × scale (the
    /// largest dequantised weight) is finite — a larger one makes inf weights and NaN outputs.
    static func checkScales(_ scales: [Float], expected: Int, what: String) throws {
        guard scales.count == expected else { throw QuantizationError.shape("\(what): \(scales.count) scales, expected \(expected)") }
        if let bad = scales.firstIndex(where: { !isUsableScale($0) }) {
            throw QuantizationError.invalidScale(index: bad, value: scales[bad])
        }
    }
}

/// Instruction-set levels of the int8 and bf16 kernels: the fp32 levels plus AVX-512 with the
/// VNNI and BF16 dot-product instructions (`vpdpbusd`, `vdpbf16ps`), and that plus AMX tiles
/// (kernels without an AMX path run their dot-product one at `amx`).
public enum QuantizedInstructionSet: Int32, Sendable, CaseIterable, Comparable {
    case portable = 0, avx2 = 1, avx512 = 2, avx512Dot = 3, amx = 4

    /// What the hardware supports, ignoring SPARSESERVE_ISA (tests run every level up to it).
    public static var hardware: QuantizedInstructionSet { QuantizedInstructionSet(rawValue: Int32(ss_hardware_qisa().rawValue)) ?? .portable }
    public static var available: [QuantizedInstructionSet] { allCases.filter { $0 <= hardware } }

    /// The level an fp32 `InstructionSet` request runs quantized kernels on: AVX-512 means the
    /// best AVX-512 level this process allows (the dot-product one unless SPARSESERVE_ISA caps it).
    public init(_ isa: InstructionSet) {
        switch isa {
        case .portable: self = .portable
        case .avx2: self = .avx2
        case .avx512: self = QuantizedInstructionSet(rawValue: Int32(ss_detect_qisa().rawValue)).map { max($0, .avx512) } ?? .avx512
        }
    }

    var cValue: ss_qisa { ss_qisa(rawValue: UInt32(rawValue)) }

    /// Whether a kernel with an AMX path runs a call's rows on tiles: this level allowed on this
    /// CPU, at least `SS_AMX_MIN_ROWS` (8) rows, and input rows of a whole number of 64-byte blocks.
    func runsAMXTiles(rows: Int, rowBytes: Int) -> Bool {
        rows >= Int(SS_AMX_MIN_ROWS) && rowBytes % 64 == 0 && ss_clamp_qisa(cValue).rawValue >= SS_QISA_AMX.rawValue
    }

    public static func < (a: QuantizedInstructionSet, b: QuantizedInstructionSet) -> Bool { a.rawValue < b.rawValue }
}

/// Symmetric int8 quantization of a row-major `rows × columns` matrix: scale = absmax / 127 per
/// row or per row and group (1 for an all-zero group), q = round(w / scale).
public func quantizeInt8(_ weights: [Float], rows: Int, columns: Int, granularity: Int8Granularity) throws -> (values: [Int8], scales: [Float]) {
    guard rows > 0, columns > 0, weights.count == rows * columns else {
        throw QuantizationError.shape("\(weights.count) weights for a \(rows)×\(columns) matrix")
    }
    if case .group(let width) = granularity, width <= 0 { throw QuantizationError.invalidGroup(width) }
    if let bad = weights.firstIndex(where: { !$0.isFinite }) { throw QuantizationError.nonFiniteWeight(index: bad) }
    var values = [Int8](repeating: 0, count: rows * columns)
    var scales = [Float](repeating: 0, count: rows * granularity.scalesPerRow(inputFeatures: columns))
    let status = ss_int8_quantize_weights(weights, rows, columns, columns, granularity.cGroup, &values, &scales)
    try KernelError.check(status, "int8 quantization")
    return (values, scales)
}

/// Operators whose kernels run on an explicit `QuantizedInstructionSet`; the `InstructionSet`
/// form of `apply` maps onto one (tests pin each level through the explicit form).
public protocol QuantizedLevelOperator: LinearOperator {
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, level: QuantizedInstructionSet)
}

extension QuantizedLevelOperator {
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>,
                      outputStride: Int, activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        apply(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation,
              pool: pool, level: QuantizedInstructionSet(isa))
    }
}

extension AlignedBuffer where Element == Float {
    /// Per-row values padded with zeros to whole 16-row panels (the kernels read whole panels).
    static func paddedRows(_ values: [Float], outputs: Int) -> AlignedBuffer<Float> {
        let buffer = AlignedBuffer<Float>(count: ss_q8_padded_rows(outputs), zeroed: 0)
        buffer.pointer.update(from: values, count: outputs)
        return buffer
    }
}

/// Operators that compute any panel-aligned range of output columns (so BLAST can split its
/// factor GEMMs by output panels): fp32 `DenseWeights`, `BF16Weights`, `Int8DynamicWeights`, `Int8Weights`.
public protocol ColumnRangeOperator: LinearOperator {
    /// `apply` on output columns `outputColumns` only (bounds multiples of 16, or the upper one
    /// `outputFeatures`; nil: all).
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, outputColumns: Range<Int>?, isa: InstructionSet)
    /// The weight the kernel multiplies by (dequantised), row-major.
    func unpackedWeights() -> [Float]
}

extension DenseWeights: ColumnRangeOperator {}

/// A `ColumnRangeOperator` whose kernel is one C call over a panel-aligned range of output columns
/// (`BF16Weights`, `Int8DynamicWeights`, `Int8Weights`): it states that call once, in
/// `runKernel(_:level:columns:)`, and gets both `apply` forms (split by output panels across a
/// pool, `PanelKernelOperator`, or one column range on the calling thread) from here.
public protocol ColumnKernelOperator: ColumnRangeOperator, PanelKernelOperator {
    /// The kernel on output columns `columns` of `call` at `level`; returns its `ss_status`.
    func runKernel(_ call: KernelCall, level: KernelLevel, columns: Range<Int>) -> Int32
    /// The weight the kernel multiplies by (dequantised), row-major.
    func denseWeights() -> [Float]
}

extension ColumnKernelOperator {
    public func runKernel(_ call: KernelCall, level: KernelLevel, panels: Range<Int>) -> Int32 {
        runKernel(call, level: level, columns: outputColumns(ofPanels: panels))
    }

    public func unpackedWeights() -> [Float] { denseWeights() }

    /// Output columns `outputColumns` only (nil: all), on the calling thread (`ColumnRangeOperator`).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, outputColumns: Range<Int>?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let columns = outputColumns ?? 0..<outputFeatures
        let call = KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation)
        KernelError.require(runKernel(call, level: Self.kernelLevel(isa), columns: columns),
                            "\(storage) \(inputFeatures)→\(outputFeatures), columns \(columns)")
    }
}

/// How BLAST stores its factors U and V: fp32, bf16, int8 with dynamic activations (`int8`), or
/// weight-only int8 with fp32 activations (`int8WeightOnly`; one scale per row of U_i and of V_jᵀ).
public enum BlastFactorStorage: String, Sendable, CaseIterable {
    case fp32, bf16, int8
    case int8WeightOnly = "int8 weight-only"

    /// The factor operator for a row-major `outputs × inputs` weight.
    func makeOperator(weights: [Float], outputs: Int, inputs: Int, bias: [Float]?) throws -> any ColumnRangeOperator {
        switch self {
        case .fp32: return DenseWeights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, bias: bias)
        case .bf16: return try BF16Weights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, bias: bias)
        case .int8: return try Int8DynamicWeights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, bias: bias)
        case .int8WeightOnly:
            return try Int8Weights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, granularity: .channel, bias: bias)
        }
    }
}

/// A stored int8 scale the kernels can use: positive, with 127 × scale finite.
public func isUsableScale(_ scale: Float) -> Bool { scale > 0 && (scale * 127).isFinite }

/// One chunk of input rows quantized for a W8A8 kernel (bytes and per-row scales, as the kernel's
/// own quantization lays them out) and where its outputs go.
struct QuantizedRows: @unchecked Sendable {
    let bytes: UnsafePointer<UInt8>
    let scales: UnsafePointer<Float>
    let count: Int
    let y: UnsafeMutablePointer<Float>
}

extension PanelKernelOperator {
    /// Splits a call across `pool` by token rows when it has rows for two parts of the pool's
    /// `minimumTokenSplitRows`: up to `partsPerThread` parts per thread (claimed dynamically) of
    /// whole 8-row tiles, each running the kernel over every output panel of its own rows
    /// (`runKernel`; a W8A8 kernel quantizes them into its thread's scratch). One fork/join per
    /// call and no serial step; no thread reads rows another quantized, and the threads write
    /// disjoint rows of `y` (split by output panels, both write every row and share the cache lines
    /// at part edges). Every part has at least one 8-row tile, so each row takes the kernel path it
    /// takes unsplit (the 2:4 batched kernel from 2 rows): same outputs bit for bit. Returns false
    /// (doing nothing) for fewer rows.
    ///
    /// `tileRows` and `minimumRows` (default 8 and the pool's `minimumTokenSplitRows`) set the row
    /// tile and the fewest rows per part: the AMX W8A8 kernel splits in whole 16-row tile blocks.
    func applySplitByTokenRows(_ call: KernelCall, level: KernelLevel, pool: KernelPool, tileRows: Int = 8,
                               minimumRows: Int? = nil) -> Bool {
        let tiles = call.rows / tileRows, panels = 0..<(outputFeatures + 15) / 16
        let parts = min(KernelPool.partsPerThread * pool.threadCount, call.rows / (minimumRows ?? pool.minimumTokenSplitRows), tiles)
        guard pool.threadCount > 1, parts >= 2 else { return false }
        checkApply(rows: call.rows, inputStride: call.inputStride, outputStride: call.outputStride)
        pool.run(parts: parts) { [self] part in
            let r0 = tileRows * (tiles * part / parts)
            let r1 = part == parts - 1 ? call.rows : tileRows * (tiles * (part + 1) / parts)
            let rows = KernelCall(call.x + r0 * call.inputStride, rows: r1 - r0, inputStride: call.inputStride,
                                  into: call.y + r0 * call.outputStride, outputStride: call.outputStride, activation: call.activation)
            KernelError.require(runKernel(rows, level: level, panels: panels),
                                "\(storage) \(inputFeatures)→\(outputFeatures), rows \(r0)..<\(r1) of \(call.rows)")
        }
        return true
    }

    /// A call on AMX tiles (~3x the dot-product level's rate, so its work counts `costFactor`):
    /// split only by token rows in whole 16-row blocks, each part preparing its own rows, when
    /// the estimate reaches the pool's threshold; a split by panels or into smaller parts was slower.
    func applyOnAMXTiles(_ call: KernelCall, level: KernelLevel, pool: KernelPool?, costFactor: Double) {
        if let pool, splits(rows: call.rows, pool: pool, costFactor: costFactor),
           applySplitByTokenRows(call, level: level, pool: pool, tileRows: 16, minimumRows: 16) { return }
        applyByPanels(call, level: level, pool: nil)
    }

    /// A W8A8 call split across `pool` with each chunk of rows (~256 KB of bytes, as the kernels'
    /// own chunks) quantized once into the calling thread's scratch slot 3 (rows split across the
    /// pool from 32 rows), and the chunk's output panels then split across the threads over those
    /// bytes: the kernels would otherwise
    /// quantize every row again in each of the pool's parts (4 per thread). `quantize(x, m, bytes,
    /// scales)` writes m rows of `rowBytes`; `kernel(rows, columns)` runs over them.
    func applySharingQuantization(_ call: KernelCall, pool: KernelPool, rowBytes: Int,
                                  quantize: @escaping @Sendable (UnsafePointer<Float>, Int, UnsafeMutablePointer<UInt8>,
                                                                 UnsafeMutablePointer<Float>) -> Int32,
                                  kernel: @escaping @Sendable (QuantizedRows, Range<Int>) -> Int32) {
        checkApply(rows: call.rows, inputStride: call.inputStride, outputStride: call.outputStride)
        let chunk = max(8, 262_144 / rowBytes / 8 * 8), count = min(call.rows, chunk)
        let scalesOffset = (count * rowBytes + 63) / 64 * 64
        guard let scratch = ss_thread_scratch(3, (scalesOffset + 4 * count + 3) / 4) else { fatalError("\(storage): out of memory") }
        let bytes = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt8.self)
        let scales = (UnsafeMutableRawPointer(scratch) + scalesOffset).assumingMemoryBound(to: Float.self)
        for r0 in stride(from: 0, to: call.rows, by: chunk) {
            let m = min(chunk, call.rows - r0)
            let rows = QuantizedRows(bytes: bytes, scales: scales, count: m, y: call.y + r0 * call.outputStride)
            let input = UnsafeSendablePointer(call.x + r0 * call.inputStride)
            pool.forEachRange(units: m, split: m >= 32) { [self] part in
                KernelError.require(quantize(input.pointer + part.lowerBound * call.inputStride, part.count,
                                             UnsafeMutablePointer(mutating: rows.bytes + part.lowerBound * rowBytes),
                                             UnsafeMutablePointer(mutating: rows.scales + part.lowerBound)), "\(storage) quantize")
            }
            forEachPanelRange(split: true, pool: pool) { [self] panels in
                KernelError.require(kernel(rows, outputColumns(ofPanels: panels)),
                                    "\(storage) \(inputFeatures)→\(outputFeatures), \(m) quantized rows")
            }
        }
    }
}
