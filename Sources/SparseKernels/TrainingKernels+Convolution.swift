import CSparseKernels

/// The C kernels of recovery training for 1-D convolutional classifiers (`train_conv.c`): im2col
/// and col2im, max pooling that keeps each window's argmax, average pooling, and their backward
/// passes, on time-major rows (value t·channels + c).
extension TrainingKernels {
    /// A 1-D convolution's geometry: output step t, tap k reads input step
    /// t·stride − padLeft + k·dilation (zero outside the input).
    public struct Conv1dShape: Sendable, Equatable {
        public var length: Int
        public var channels: Int
        public var kernelSize: Int
        public var stride: Int
        public var dilation: Int
        public var padLeft: Int
        public var outputLength: Int

        /// A convolution over `length` steps padded by `padding` (left, right) steps; the output
        /// length follows (at least 1 window must fit).
        public init(length: Int, channels: Int, kernelSize: Int, stride: Int, dilation: Int, padding: (left: Int, right: Int)) {
            (self.length, self.channels, self.kernelSize) = (length, channels, kernelSize)
            (self.stride, self.dilation, padLeft) = (stride, dilation, padding.left)
            outputLength = (length + padding.left + padding.right - dilation * (kernelSize - 1) - 1) / stride + 1
        }

        /// Floats of one window (the width of the im2col matrix).
        public var window: Int { kernelSize * channels }

        var c: ss_conv1d_shape {
            ss_conv1d_shape(length: length, channels: channels, kernel: kernelSize, stride: stride, dilation: dilation, pad_left: padLeft,
                            out_len: outputLength)
        }
    }

    /// The windows of `rows` rows of `x` (`rows × length·channels`): `rows·outputLength × window`.
    public static func im2col(_ x: [Float], rows: Int, shape: Conv1dShape, isa: InstructionSet = .current) -> [Float] {
        precondition(x.count == rows * shape.length * shape.channels, "im2col: \(x.count) values are not \(rows) rows")
        var s = shape.c
        return filled(rows * shape.outputLength * shape.window, "im2col: invalid geometry \(shape)") { ss_train_im2col_isa(isa.cValue, &s, x, rows, $0) }
    }

    /// The gradient of the input of `im2col` from that of its windows.
    public static func col2im(_ dcols: [Float], rows: Int, shape: Conv1dShape, isa: InstructionSet = .current) -> [Float] {
        precondition(dcols.count == rows * shape.outputLength * shape.window, "col2im: \(dcols.count) values are not \(rows) rows of windows")
        var s = shape.c
        return filled(rows * shape.length * shape.channels, "col2im: invalid geometry \(shape)") { ss_train_col2im_isa(isa.cValue, &s, dcols, rows, $0) }
    }

    /// A pooling window over time: `kernelSize` steps every `stride`, `outputLength` windows
    /// inside `length` steps of `channels`.
    public struct PoolShape: Sendable, Equatable {
        public var length: Int
        public var channels: Int
        public var kernelSize: Int
        public var stride: Int
        public var outputLength: Int

        public init(length: Int, channels: Int, kernelSize: Int, stride: Int) {
            (self.length, self.channels, self.kernelSize, self.stride) = (length, channels, kernelSize, stride)
            outputLength = (length - kernelSize) / stride + 1
        }

        var inputCount: Int { length * channels }
        var outputCount: Int { outputLength * channels }
    }

    /// Max pooling; also returns the input step of each output's first maximum.
    public static func maxPool(_ x: [Float], rows: Int, shape p: PoolShape, isa: InstructionSet = .current) -> (values: [Float], argmax: [Int32]) {
        precondition(x.count == rows * p.inputCount, "maxPool: \(x.count) values are not \(rows) rows")
        var arg = [Int32](repeating: 0, count: rows * p.outputCount)
        let y = arg.withUnsafeMutableBufferPointer { pa in
            filled(rows * p.outputCount, "maxPool: invalid window \(p)") {
                ss_train_maxpool_isa(isa.cValue, x, rows, p.length, p.channels, p.kernelSize, p.stride, p.outputLength, $0, pa.baseAddress!)
            }
        }
        return (y, arg)
    }

    /// The gradient of max pooling's input: each output's gradient at its argmax step.
    public static func maxPoolBackward(_ dy: [Float], argmax: [Int32], rows: Int, shape p: PoolShape, isa: InstructionSet = .current) -> [Float] {
        precondition(dy.count == rows * p.outputCount && argmax.count == dy.count, "maxPoolBackward: sizes do not match")
        return filled(rows * p.inputCount, "maxPoolBackward: an argmax outside the window") {
            ss_train_maxpool_backward_isa(isa.cValue, dy, argmax, rows, p.length, p.channels, p.outputLength, $0)
        }
    }

    /// Average pooling.
    public static func averagePool(_ x: [Float], rows: Int, shape p: PoolShape, isa: InstructionSet = .current) -> [Float] {
        precondition(x.count == rows * p.inputCount, "averagePool: \(x.count) values are not \(rows) rows")
        return filled(rows * p.outputCount, "averagePool: invalid window \(p)") {
            ss_train_avgpool_isa(isa.cValue, x, rows, p.length, p.channels, p.kernelSize, p.stride, p.outputLength, $0)
        }
    }

    /// The gradient of average pooling's input.
    public static func averagePoolBackward(_ dy: [Float], rows: Int, shape p: PoolShape, isa: InstructionSet = .current) -> [Float] {
        precondition(dy.count == rows * p.outputCount, "averagePoolBackward: \(dy.count) values are not \(rows) rows")
        return filled(rows * p.inputCount, "averagePoolBackward: invalid window \(p)") {
            ss_train_avgpool_backward_isa(isa.cValue, dy, rows, p.length, p.channels, p.kernelSize, p.stride, p.outputLength, $0)
        }
    }

    /// `count` floats written by `kernel`, which must return SS_OK (else: `failure`).
    private static func filled(_ count: Int, _ failure: @autoclosure () -> String,
                               _ kernel: (UnsafeMutablePointer<Float>) -> ss_status) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        let status = out.withUnsafeMutableBufferPointer { kernel($0.baseAddress!) }
        precondition(status == SS_OK, failure())
        return out
    }
}
