import Foundation
import SparseKernels

// `kernel-bench --conv`: Conv1d as a banded operator vs direct convolution (im2col + dense GEMM)
// on the GunPoint CNN's layer shapes (models/timeseries), batch 1 and 32, 1 and 2 threads, in one run. Both use the same
// packed dense window weights and the same split rule across the pool (ranges of (row, window)
// pairs); they differ in that im2col copies every window (zero padding included) into a buffer
// before the GEMM, while the band reads interior windows in place as overlapping rows and copies
// only the windows that touch the padding. Also the band with 2:4 window weights.
// Times are wall-clock medians, best of 3 alternating rounds; the ratio is im2col time / band time.
//
//   swift run -c release kernel-bench --conv [--quick]

struct ConvLayer {
    var name: String
    var inChannels: Int
    var outChannels: Int
    var kernelSize: Int
    var length: Int
    var padding: (left: Int, right: Int)
    var dilation: Int
}

/// The conv layers of models/timeseries/model.json (input length after the pools before them).
let convLayers = [
    ConvLayer(name: "conv1", inChannels: 1, outChannels: 8, kernelSize: 7, length: 150, padding: (3, 3), dilation: 1),
    ConvLayer(name: "conv2", inChannels: 8, outChannels: 16, kernelSize: 5, length: 75, padding: (2, 2), dilation: 1),
    ConvLayer(name: "conv3", inChannels: 16, outChannels: 32, kernelSize: 3, length: 37, padding: (4, 0), dilation: 2),
]

struct Pointers: @unchecked Sendable {
    let x: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
}

/// Direct convolution: for each (row, window) range, copy the windows (zeros outside the input)
/// into a buffer, then one GEMM on the window weights.
func im2colConv(_ layer: ConvLayer, weights: DenseWeights, outputLength: Int, x: UnsafePointer<Float>, rows: Int,
                into y: UnsafeMutablePointer<Float>, pool: KernelPool) {
    let cin = layer.inChannels, window = layer.kernelSize * cin, inputRow = layer.length * cin, outRow = outputLength * layer.outChannels
    let units = rows * outputLength
    let split = pool.shouldSplit(flops: Double(units * weights.flopsPerRow), rows: units)
    let p = Pointers(x: x, y: y)
    pool.forEachRange(units: units, split: split) { range in
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: range.count * window)
        defer { buffer.deallocate() }
        for (i, unit) in range.enumerated() {
            let row = unit / outputLength, t = unit % outputLength
            let src = p.x + row * inputRow, dst = buffer + i * window
            let first = t - layer.padding.left
            if layer.dilation == 1 && first >= 0 && first + layer.kernelSize <= layer.length {
                dst.update(from: src + first * cin, count: window)  // an interior window is contiguous: one copy
                continue
            }
            for k in 0..<layer.kernelSize {
                let position = t + k * layer.dilation - layer.padding.left  // stride 1, as in every layer here
                if position < 0 || position >= layer.length {
                    (dst + k * cin).update(repeating: 0, count: cin)
                } else {
                    (dst + k * cin).update(from: src + position * cin, count: cin)
                }
            }
        }
        // consecutive units of one input row are consecutive output windows: write them in place
        var i = 0
        while i < range.count {
            let unit = range.lowerBound + i, row = unit / outputLength, t = unit % outputLength
            let count = min(range.count - i, outputLength - t)
            weights.apply(buffer + i * window, rows: count, inputStride: window, into: p.y + row * outRow + t * layer.outChannels,
                          outputStride: layer.outChannels, activation: .relu, pool: nil, isa: .current)
            i += count
        }
    }
}

@MainActor func runConvBench() throws {
    let average = { loadAverage().map { String(format: "%.2f", $0) }.joined(separator: " ") }
    print("# conv1d on the GunPoint CNN's shapes, \(InstructionSet.current.rawValue), load average before: \(average())")
    print("# wall-clock µs per call (median, best of alternating rounds), ReLU epilogue; ratio = im2col / banded")
    print("layer  Cin Cout  K    T  batch thr   im2col µs   banded µs   ratio   banded 2:4 µs")
    for layer in convLayers {
        let window = randomArray(layer.outChannels * layer.kernelSize * layer.inChannels), bias = randomArray(layer.outChannels)
        let dense = DenseWeights(weights: window, outputFeatures: layer.outChannels, inputFeatures: layer.kernelSize * layer.inChannels, bias: bias)
        let band = try BandedOperator.conv1d(inner: dense, inChannels: layer.inChannels, kernelSize: layer.kernelSize, inputLength: layer.length,
                                             padding: layer.padding, dilation: layer.dilation)
        let nm = try NMWeights(magnitudePruning: window, outputFeatures: layer.outChannels, inputFeatures: layer.kernelSize * layer.inChannels,
                               n: 2, m: 4, bias: bias)
        let sparseBand = try BandedOperator.conv1d(inner: nm, inChannels: layer.inChannels, kernelSize: layer.kernelSize,
                                                   inputLength: layer.length, padding: layer.padding, dilation: layer.dilation)
        let outputLength = band.blocks
        for batch in [1, 32] {
            let x = randomArray(batch * band.inputFeatures)
            var y = [Float](repeating: 0, count: batch * band.outputFeatures), check = y
            for threads in [1, 2] {
                let pool = pools[threads]!
                x.withUnsafeBufferPointer { xs in
                    // same result first (the band is exact: only the summation order within a window may differ)
                    check.withUnsafeMutableBufferPointer {
                        im2colConv(layer, weights: dense, outputLength: outputLength, x: xs.baseAddress!, rows: batch, into: $0.baseAddress!, pool: pool)
                    }
                    y.withUnsafeMutableBufferPointer {
                        band.apply(xs.baseAddress!, rows: batch, into: $0.baseAddress!, activation: .relu, pool: pool)
                    }
                    let worst = zip(y, check).map { abs($0 - $1) }.max()!
                    precondition(worst <= 1e-4, "\(layer.name): band and im2col differ by \(worst)")
                    // Rounds alternate the three, and each keeps its best round: on a shared machine a
                    // burst of other work then hits one round, not one contender.
                    var (direct, banded, sparse) = (Double.infinity, Double.infinity, Double.infinity)
                    for _ in 0..<(quick ? 1 : 3) {
                        y.withUnsafeMutableBufferPointer { ys in
                            direct = min(direct, measure {
                                im2colConv(layer, weights: dense, outputLength: outputLength, x: xs.baseAddress!, rows: batch, into: ys.baseAddress!, pool: pool)
                            })
                            banded = min(banded, measure { band.apply(xs.baseAddress!, rows: batch, into: ys.baseAddress!, activation: .relu, pool: pool) })
                            sparse = min(sparse, measure { sparseBand.apply(xs.baseAddress!, rows: batch, into: ys.baseAddress!, activation: .relu, pool: pool) })
                        }
                    }
                    print(layer.name.padding(toLength: 6, withPad: " ", startingAt: 0)
                          + String(format: " %4d %4d %2d %4d %6d %3d %11.2f %11.2f %7.2f %15.2f", layer.inChannels, layer.outChannels,
                                   layer.kernelSize, layer.length, batch, threads, direct, banded, direct / banded, sparse))
                }
            }
        }
    }
    print("# load average after: \(average())")
}
