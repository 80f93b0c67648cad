/// A linear layer `y = activation(x · Wᵀ + b)` however its weight is stored: `DenseWeights`,
/// `NMWeights`, `BlastWeights`, `CSRWeights`, `BandedOperator`. Implementations are immutable and
/// safe to call from many threads at once.
///
/// A conforming type implements at least one of the two `apply` requirements (each has a default
/// written in terms of the other): the kernel operators implement the strided, pool-aware one;
/// simple wrappers may implement only the contiguous one and get row-split pool support for free.
public protocol LinearOperator: AnyObject, Sendable {
    var inputFeatures: Int { get }
    var outputFeatures: Int { get }
    /// Short description of the storage, e.g. "dense", "nm 2:4", "blast b=4x4 r=152", "csr".
    var storage: String { get }
    /// Numbers stored (weights, factors, bias), not counting index metadata.
    var parameterCount: Int { get }
    /// Bytes held for the weights, including index metadata and padding.
    var byteCount: Int { get }
    /// Floating-point operations (2 per multiply-add) one input row costs as the kernel runs it;
    /// the pool uses it to decide whether a call is worth splitting.
    var flopsPerRow: Int { get }

    /// Densely packed rows (`x`: `rows × inputFeatures`, `y`: `rows × outputFeatures`) on the
    /// calling thread.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
               activation: Activation, isa: InstructionSet)

    /// `rows` rows of `x` (row stride `inputStride`; rows may overlap, `x` is only read) → `rows`
    /// rows of `y` (row stride `outputStride` ≥ `outputFeatures`). With a `pool`, a call large
    /// enough to pay is split across its threads (kernel operators: by output panels); the result
    /// is the same as without. Pointers need no alignment.
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
               into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, isa: InstructionSet)
}

extension LinearOperator {
    /// Stored parameters over those of the dense `outputFeatures × inputFeatures` weight (+ bias).
    public var density: Double {
        Double(parameterCount) / Double(outputFeatures * inputFeatures + outputFeatures)
    }

    public var flopsPerRow: Int { 2 * parameterCount }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, isa: InstructionSet) {
        apply(x, rows: rows, inputStride: inputFeatures, into: y, outputStride: outputFeatures,
              activation: activation, pool: nil, isa: isa)
    }

    /// Default for types that implement only the contiguous `apply`: strided rows go through
    /// contiguous copies, and a large call is split by rows (≥ 32 per part) across the pool.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let k = inputFeatures, n = outputFeatures
        let split = pool.map { $0.shouldSplit(flops: Double(rows * flopsPerRow), rows: rows) && rows >= 64 } ?? false
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        (pool ?? KernelPool.serial).forEachRange(units: split ? rows / 32 : 1, split: split) { [self] parts in
            let units = split ? rows / 32 : 1
            let r0 = rows * parts.lowerBound / units, r1 = rows * parts.upperBound / units
            let count = r1 - r0
            let src = xs.pointer + r0 * inputStride, dst = ys.pointer + r0 * outputStride
            if inputStride == k && outputStride == n {
                apply(src, rows: count, into: dst, activation: activation, isa: isa)
                return
            }
            let xin = UnsafeMutablePointer<Float>.allocate(capacity: count * k)
            let yout = UnsafeMutablePointer<Float>.allocate(capacity: count * n)
            defer { xin.deallocate(); yout.deallocate() }
            for i in 0..<count { (xin + i * k).update(from: src + i * inputStride, count: k) }
            apply(xin, rows: count, into: yout, activation: activation, isa: isa)
            for i in 0..<count { (dst + i * outputStride).update(from: yout + i * n, count: n) }
        }
    }

    /// Densely packed rows on the calling thread, on the current instruction set.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation) {
        apply(x, rows: rows, into: y, activation: activation, isa: .current)
    }

    /// Densely packed rows, split across `pool` when the call is large enough.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet = .current) {
        apply(x, rows: rows, inputStride: inputFeatures, into: y, outputStride: outputFeatures,
              activation: activation, pool: pool, isa: isa)
    }

    /// `activation(x · Wᵀ + b)` for a whole matrix.
    public func apply(_ x: Matrix, activation: Activation = .none, pool: KernelPool? = nil,
                      isa: InstructionSet = .current) -> Matrix {
        precondition(x.columns == inputFeatures, "\(storage): input has \(x.columns) columns, layer expects \(inputFeatures)")
        let rows = x.rows, n = outputFeatures
        let values = [Float](unsafeUninitializedCapacity: rows * n) { buffer, initialized in
            x.values.withUnsafeBufferPointer { input in
                if let src = input.baseAddress, let dst = buffer.baseAddress {
                    apply(src, rows: rows, inputStride: inputFeatures, into: dst, outputStride: n,
                          activation: activation, pool: pool, isa: isa)
                }
            }
            initialized = rows * n
        }
        return Matrix(rows: rows, columns: n, values: values)
    }

    /// Whether `rows` rows of this operator (its work scaled by `costFactor`, > 1 for kernels
    /// slower than dense) are worth splitting across `pool`.
    func splits(rows: Int, pool: KernelPool?, costFactor: Double = 1) -> Bool {
        pool?.shouldSplit(flops: costFactor * Double(rows * flopsPerRow), rows: rows) ?? false
    }

    /// Runs `body` over the 16-row output panels: split across `pool` when `split`, else at once.
    func forEachPanelRange(split: Bool, pool: KernelPool?, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        let panels = (outputFeatures + 15) / 16
        guard let pool, split else { return body(0..<panels) }
        pool.forEachRange(units: panels, split: true, body)
    }

    /// Splits a call of `rows` rows across `pool` by token rows instead of output panels when every
    /// thread gets at least one whole 64-token tile and the rows divide into 16-row multiples
    /// (each part then runs the unsplit kernel on its rows, so its input transpose is split too and
    /// every row takes the same kernel path as unsplit). Returns false (doing nothing) otherwise.
    func applySplitByTokens(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                            into y: UnsafeMutablePointer<Float>, outputStride: Int,
                            activation: Activation, pool: KernelPool?, isa: InstructionSet) -> Bool {
        guard let pool, pool.threadCount > 1, rows % 16 == 0, rows >= 64 * pool.threadCount else { return false }
        let parts = pool.threadCount, blocks = rows / 16
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        pool.run(parts: parts) { [self] part in
            let r0 = 16 * (blocks * part / parts), r1 = 16 * (blocks * (part + 1) / parts)
            apply(xs.pointer + r0 * inputStride, rows: r1 - r0, inputStride: inputStride, into: ys.pointer + r0 * outputStride,
                  outputStride: outputStride, activation: activation, pool: nil, isa: isa)
        }
        return true
    }

    /// Checks the shared `apply` preconditions.
    func checkApply(rows: Int, inputStride: Int, outputStride: Int) {
        precondition(rows >= 0 && inputStride >= 0 && outputStride >= outputFeatures,
                     "\(storage).apply: rows \(rows), strides \(inputStride)/\(outputStride) for \(inputFeatures) → \(outputFeatures)")
    }
}

/// One `apply` call as a kernel sees it on any thread of the pool: `rows` rows of `x` (row stride
/// `inputStride`) into `y` (row stride `outputStride`), with `activation` fused.
public struct KernelCall: @unchecked Sendable {
    let x: UnsafePointer<Float>
    let inputStride: Int
    let y: UnsafeMutablePointer<Float>
    let outputStride: Int
    let rows: Int
    let activation: Activation

    init(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
         activation: Activation) {
        (self.x, self.rows, self.inputStride, self.y, self.outputStride, self.activation) = (x, rows, inputStride, y, outputStride, activation)
    }
}

/// A kernel operator whose kernel is one C call over a range of 16-row output panels (N:M bf16
/// and int8, CSR int8, and through `ColumnKernelOperator` the dense bf16/int8 ones): it states that
/// call once, in `runKernel`, and gets its pool-splitting `apply` from here.
public protocol PanelKernelOperator: LinearOperator {
    /// How the kernel names its instruction-set level: `QuantizedInstructionSet` or `InstructionSet`.
    associatedtype KernelLevel: Sendable
    /// The level an fp32 `InstructionSet` request runs the kernel on.
    static func kernelLevel(_ isa: InstructionSet) -> KernelLevel
    /// The kernel on output panels `panels` of `call` at `level`; returns its `ss_status`.
    func runKernel(_ call: KernelCall, level: KernelLevel, panels: Range<Int>) -> Int32
}

extension PanelKernelOperator {
    /// Runs the kernel over every output panel of `call` (split across `pool` when it pays, else
    /// once over all of them); a failed `ss_status` stops with its message (`KernelError.require`).
    func applyByPanels(_ call: KernelCall, level: KernelLevel, pool: KernelPool?) {
        checkApply(rows: call.rows, inputStride: call.inputStride, outputStride: call.outputStride)
        guard call.rows > 0 else { return }
        forEachPanelRange(split: splits(rows: call.rows, pool: pool), pool: pool) { [self] panels in
            KernelError.require(runKernel(call, level: level, panels: panels),
                                "\(storage) \(inputFeatures)→\(outputFeatures), \(call.rows) rows")
        }
    }

    /// The output columns of panels `panels`, for kernels that take columns.
    func outputColumns(ofPanels panels: Range<Int>) -> Range<Int> {
        (panels.lowerBound * 16)..<min(outputFeatures, panels.upperBound * 16)
    }
}

extension PanelKernelOperator where KernelLevel == QuantizedInstructionSet {
    public static func kernelLevel(_ isa: InstructionSet) -> QuantizedInstructionSet { QuantizedInstructionSet(isa) }

    /// As `apply`, on an explicit quantized level (tests run each one; `QuantizedLevelOperator`).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, level: QuantizedInstructionSet) {
        applyByPanels(KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation),
                      level: level, pool: pool)
    }
}

extension PanelKernelOperator where KernelLevel == InstructionSet {
    public static func kernelLevel(_ isa: InstructionSet) -> InstructionSet { isa }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        applyByPanels(KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation),
                      level: isa, pool: pool)
    }
}

/// Calls `body` with the array's base address, or nil for a nil array.
func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// A copy of `array` in 64-byte aligned memory that lives as long as the owner keeps it.
final class AlignedBuffer<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int

    init(count: Int, zeroed value: Element) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Element>.stride, alignment: 64)
            .bindMemory(to: Element.self, capacity: max(1, count))
        pointer.initialize(repeating: value, count: max(1, count))
    }

    convenience init(_ array: [Element], zero: Element) {
        self.init(count: array.count, zeroed: zero)
        array.withUnsafeBufferPointer { if let base = $0.baseAddress { pointer.update(from: base, count: array.count) } }
    }

    deinit { pointer.deallocate() }

    var byteCount: Int { count * MemoryLayout<Element>.stride }
}
