/// A block-banded (block-Toeplitz) linear operator: the matrix a 1-D convolution becomes when its
/// input and output are flattened time-major.
///
/// Layout. An input row holds `inputFeatures` floats; an output row holds `blocks × blockRows`
/// floats, block `t` (e.g. output time step t, `blockRows` channels) at `t·blockRows`. Output
/// block t reads the window of `taps` segments of `tapWidth` consecutive inputs, segment k starting
/// at input column
///
///     start(t, k) = t·blockStep + firstColumn + k·tapStride
///
/// (columns outside `0..<inputFeatures` read as zero: padding), and applies the same `inner`
/// operator to every window:
///
///     y[t·blockRows + o] = act(bias[o] + Σ_k Σ_c W[o][k·tapWidth + c] · x[start(t, k) + c])
///
/// where `inner` (`blockRows × taps·tapWidth`, any `LinearOperator`: dense, N:M, CSR …) holds W
/// and the bias. For a Conv1d with `C_in` input and `C_out` output channels, kernel size `ks`,
/// stride `s`, dilation `d` and left padding `pl` over a (time × channel) input:
/// `blockRows = C_out`, `tapWidth = C_in`, `taps = ks`, `tapStride = d·C_in`, `blockStep = s·C_in`,
/// `firstColumn = -pl·C_in`, and W[o][k·C_in + c] = weight[o][c][k] (see `conv1d`).
///
/// Execution: the band's indices are implicit. When the taps are contiguous (`tapStride ==
/// tapWidth`), every window that lies inside the input is a row of a virtual matrix whose row
/// stride is `blockStep` (rows overlap), so all interior windows of an input row run as one GEMM
/// on `inner` without copying (im2col-free). A dilated stride-1 convolution (taps d·tapWidth
/// apart, `blockStep == tapWidth`) first splits the input row into its d phases (steps ≡ φ mod d,
/// one copy of the input, not of every window); in a phase an interior window is contiguous, so
/// the windows of each phase run as one GEMM with output stride d blocks. Windows that touch the
/// padding, and the interior of other dilated bands, are copied into a zero-padded buffer. The
/// work equals direct convolution's: `blocks · inner.flopsPerRow` per input row.
public final class BandedOperator: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let blocks: Int
    public let blockRows: Int
    public let blockStep: Int
    public let firstColumn: Int
    public let taps: Int
    public let tapStride: Int
    public let tapWidth: Int
    /// The operator applied to every window (`blockRows × taps·tapWidth`).
    public let inner: any LinearOperator

    public struct ShapeError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(inner: any LinearOperator, inputFeatures: Int, blocks: Int, blockStep: Int, firstColumn: Int,
                taps: Int, tapStride: Int, tapWidth: Int) throws {
        guard inputFeatures > 0, blocks > 0, blockStep >= 0, taps > 0, tapWidth > 0, tapStride >= tapWidth || taps == 1 else {
            throw ShapeError(description: "BandedOperator: inputs \(inputFeatures), blocks \(blocks), step \(blockStep), taps \(taps) × \(tapWidth) (stride \(tapStride)) is not a valid band")
        }
        guard inner.inputFeatures == taps * tapWidth else {
            throw ShapeError(description: "BandedOperator: the inner operator takes \(inner.inputFeatures) inputs, a window has \(taps * tapWidth)")
        }
        self.inner = inner
        self.inputFeatures = inputFeatures
        self.blocks = blocks
        self.blockRows = inner.outputFeatures
        self.blockStep = blockStep
        self.firstColumn = firstColumn
        self.taps = taps
        self.tapStride = taps == 1 ? tapWidth : tapStride
        self.tapWidth = tapWidth
    }

    /// A Conv1d over a time-major input of `inputLength` steps × `weight`'s input channels, as a
    /// band with a dense inner operator. `weight` is PyTorch's `[outChannels][inChannels][kernelSize]`
    /// (row-major), `bias` has `outChannels` values; `padding` is (left, right) in time steps.
    public static func conv1d(weight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int, kernelSize: Int,
                              inputLength: Int, stride: Int = 1, padding: (left: Int, right: Int) = (0, 0),
                              dilation: Int = 1) throws -> BandedOperator {
        guard inChannels > 0, outChannels > 0, kernelSize > 0,
              weight.count == outChannels * inChannels * kernelSize, bias.map({ $0.count == outChannels }) ?? true else {
            throw ShapeError(description: "conv1d: weight/bias sizes or geometry are invalid")
        }
        let w = windowWeights(weight, inChannels: inChannels, outChannels: outChannels, kernelSize: kernelSize)
        let inner = DenseWeights(weights: w, outputFeatures: outChannels, inputFeatures: kernelSize * inChannels, bias: bias)
        return try conv1d(inner: inner, inChannels: inChannels, kernelSize: kernelSize, inputLength: inputLength,
                          stride: stride, padding: padding, dilation: dilation)
    }

    /// A Conv1d whose window weights (`outChannels × kernelSize·inChannels`, the layout of
    /// `windowWeights`, with the bias) are already an operator — dense, N:M, CSR, ….
    public static func conv1d(inner: any LinearOperator, inChannels: Int, kernelSize: Int, inputLength: Int,
                              stride: Int = 1, padding: (left: Int, right: Int) = (0, 0), dilation: Int = 1) throws -> BandedOperator {
        guard inChannels > 0, kernelSize > 0, stride > 0, dilation > 0, padding.left >= 0, padding.right >= 0, inputLength > 0 else {
            throw ShapeError(description: "conv1d: geometry is invalid (channels \(inChannels), kernel \(kernelSize), length \(inputLength), stride \(stride), dilation \(dilation), padding \(padding))")
        }
        let padded = inputLength + padding.left + padding.right
        let covered = span(kernelSize: kernelSize, dilation: dilation)
        guard padded >= covered else {
            throw ShapeError(description: "conv1d: the kernel spans \(covered) steps but the padded input has \(padded)")
        }
        let outputLength = (padded - covered) / stride + 1
        return try BandedOperator(inner: inner, inputFeatures: inputLength * inChannels, blocks: outputLength,
                                  blockStep: stride * inChannels, firstColumn: -padding.left * inChannels,
                                  taps: kernelSize, tapStride: dilation * inChannels, tapWidth: inChannels)
    }

    /// PyTorch's Conv1d weight `[out][in][k]` reordered to the window layout `[out][k·in + c]`.
    public static func windowWeights(_ weight: [Float], inChannels: Int, outChannels: Int, kernelSize: Int) -> [Float] {
        precondition(weight.count == outChannels * inChannels * kernelSize, "windowWeights: \(weight.count) values")
        var w = [Float](repeating: 0, count: weight.count)
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                for k in 0..<kernelSize { w[o * kernelSize * inChannels + k * inChannels + c] = weight[(o * inChannels + c) * kernelSize + k] }
            }
        }
        return w
    }

    /// Time steps one output of a kernel covers: dilation·(kernelSize − 1) + 1.
    public static func span(kernelSize: Int, dilation: Int) -> Int { dilation * (kernelSize - 1) + 1 }

    /// Output steps of a convolution (0 when the kernel does not fit the padded input).
    public static func outputLength(inputLength: Int, kernelSize: Int, stride: Int, padding: (left: Int, right: Int),
                                    dilation: Int) -> Int {
        let padded = inputLength + padding.left + padding.right, covered = span(kernelSize: kernelSize, dilation: dilation)
        return padded < covered ? 0 : (padded - covered) / stride + 1
    }

    /// Left and right padding (time steps) of a "same"-length stride-1 convolution and of a causal one.
    public static func samePadding(kernelSize: Int, dilation: Int = 1) -> (left: Int, right: Int) {
        let total = dilation * (kernelSize - 1)
        return (total / 2, total - total / 2)
    }
    public static func causalPadding(kernelSize: Int, dilation: Int = 1) -> (left: Int, right: Int) {
        (dilation * (kernelSize - 1), 0)
    }

    public var outputFeatures: Int { blocks * blockRows }
    public var storage: String { "banded \(blocks)x[\(inner.storage)]" }
    public var parameterCount: Int { inner.parameterCount }
    public var byteCount: Int { inner.byteCount }
    public var flopsPerRow: Int { blocks * inner.flopsPerRow }

    private var window: Int { taps * tapWidth }
    private var contiguous: Bool { tapStride == tapWidth }
    /// Dilated with stride one block column: runs phase by phase (see the type's description).
    private var phased: Bool {
        !contiguous && tapStride % tapWidth == 0 && blockStep == tapWidth && firstColumn % tapWidth == 0
            && inputFeatures % tapWidth == 0
    }

    /// Windows [lo, hi) of one input row lie inside the input.
    private var interior: Range<Int> {
        // start(t) >= 0 and start(t) + span <= inputFeatures
        let span = (taps - 1) * tapStride + tapWidth
        let lo = firstColumn >= 0 ? 0 : blockStep == 0 ? blocks : (-firstColumn + blockStep - 1) / blockStep
        let room = inputFeatures - span - firstColumn
        let hi = room < 0 ? 0 : blockStep == 0 ? blocks : min(blocks, room / blockStep + 1)
        return min(lo, blocks)..<max(min(lo, blocks), hi)
    }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let split = pool?.shouldSplit(flops: Double(rows * flopsPerRow), rows: rows * blocks) ?? false
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        // Units are (input row, window) pairs; each part runs a contiguous range of them.
        (pool ?? KernelPool.serial).forEachRange(units: rows * blocks, split: split) { [self] units in
            var unit = units.lowerBound
            while unit < units.upperBound {
                let row = unit / blocks, t0 = unit % blocks
                let t1 = min(blocks, t0 + (units.upperBound - unit))
                run(xs.pointer + row * inputStride, into: ys.pointer + row * outputStride, windows: t0..<t1,
                    activation: activation, isa: isa)
                unit += t1 - t0
            }
        }
    }

    /// Windows `windows` of one input row.
    private func run(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, windows: Range<Int>,
                     activation: Activation, isa: InstructionSet) {
        var direct = contiguous || phased ? interior.clamped(to: windows) : windows.lowerBound..<windows.lowerBound
        if direct.isEmpty { direct = windows.lowerBound..<windows.lowerBound }
        if !direct.isEmpty && contiguous {
            inner.apply(x + direct.lowerBound * blockStep + firstColumn, rows: direct.count, inputStride: blockStep,
                        into: y + direct.lowerBound * blockRows, outputStride: blockRows, activation: activation, pool: nil, isa: isa)
        } else if !direct.isEmpty {
            runPhases(x, into: y, windows: direct, activation: activation, isa: isa)
        }
        // The rest through a zero-padded copy, up to 64 windows at a time.
        guard direct.count < windows.count else { return }
        let rest = [windows.lowerBound..<direct.lowerBound, direct.upperBound..<windows.upperBound]
        let chunk = 64
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: min(chunk, windows.count) * window)
        defer { buffer.deallocate() }
        for range in rest where !range.isEmpty {
            var t0 = range.lowerBound
            while t0 < range.upperBound {
                let t1 = min(range.upperBound, t0 + chunk)
                for t in t0..<t1 { gather(x, window: t, into: buffer + (t - t0) * window) }
                inner.apply(buffer, rows: t1 - t0, inputStride: window, into: y + t0 * blockRows, outputStride: blockRows,
                            activation: activation, pool: nil, isa: isa)
                t0 = t1
            }
        }
    }

    /// Interior windows of a phased band: the input row's steps regrouped by phase (step mod d),
    /// then per phase one GEMM whose rows are consecutive windows of that phase.
    private func runPhases(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, windows: Range<Int>,
                           activation: Activation, isa: InstructionSet) {
        let c = tapWidth, d = tapStride / tapWidth, steps = inputFeatures / tapWidth, firstStep = firstColumn / tapWidth
        let phases = UnsafeMutablePointer<Float>.allocate(capacity: inputFeatures)
        defer { phases.deallocate() }
        var offsets = [Int](repeating: 0, count: d)
        var filled = 0
        for phase in 0..<d {
            offsets[phase] = filled
            for step in stride(from: phase, to: steps, by: d) {
                (phases + filled).update(from: x + step * c, count: c)
                filled += c
            }
        }
        // Window t starts at step t + firstStep (≥ 0 inside the interior): phase (t + firstStep) mod d,
        // index (t + firstStep) / d in it; window t + d is the next row of the same phase.
        for t0 in windows.lowerBound..<min(windows.lowerBound + d, windows.upperBound) {
            let step = t0 + firstStep, rows = (windows.upperBound - 1 - t0) / d + 1
            inner.apply(phases + offsets[step % d] + (step / d) * c, rows: rows, inputStride: c,
                        into: y + t0 * blockRows, outputStride: d * blockRows, activation: activation, pool: nil, isa: isa)
        }
    }

    /// Copies window t's taps into `out` (zeros where it reads outside the input).
    private func gather(_ x: UnsafePointer<Float>, window t: Int, into out: UnsafeMutablePointer<Float>) {
        for k in 0..<taps {
            let start = t * blockStep + firstColumn + k * tapStride
            let dst = out + k * tapWidth
            let lo = max(0, -start), hi = min(tapWidth, inputFeatures - start)
            if lo >= hi {
                dst.update(repeating: 0, count: tapWidth)
                continue
            }
            if lo > 0 { dst.update(repeating: 0, count: lo) }
            (dst + lo).update(from: x + start + lo, count: hi - lo)
            if hi < tapWidth { (dst + hi).update(repeating: 0, count: tapWidth - hi) }
        }
    }

    /// The full `outputFeatures × inputFeatures` matrix (for tests and error reports). Needs the
    /// inner operator's dense weight (`innerWeights`, `blockRows × taps·tapWidth`).
    public func denseWeights(innerWeights w: [Float]) -> [Float] {
        precondition(w.count == blockRows * window, "denseWeights: inner weight has \(w.count) values, expected \(blockRows * window)")
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        for t in 0..<blocks {
            for k in 0..<taps {
                let start = t * blockStep + firstColumn + k * tapStride
                for c in 0..<tapWidth where start + c >= 0 && start + c < inputFeatures {
                    for o in 0..<blockRows {
                        out[(t * blockRows + o) * inputFeatures + start + c] += w[o * window + k * tapWidth + c]
                    }
                }
            }
        }
        return out
    }
}
