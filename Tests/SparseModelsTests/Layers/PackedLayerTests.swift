import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
import SparseCompression

/// Stored forms of every method: pack → tensors → file → read → operator gives the same operator,
/// and broken forms are refused naming the part.
final class PackedLayerTests: XCTestCase {
    /// A deterministic weight with distinct magnitudes.
    static func weight(_ rows: Int, _ columns: Int, seed: UInt64 = 7) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<(rows * columns)).map { _ in Float(rng.normal()) }
    }

    static func bias(_ n: Int) -> [Float] { (0..<n).map { Float($0 % 7) * 0.125 - 0.3 } }

    static let methods: [(LayerCompression, rows: Int, columns: Int)] = [
        (.dense, 24, 40),
        (.nm(n: 2, m: 4), 40, 66),          // row and input tails
        (.nm(n: 3, m: 8), 33, 64),
        (.nm(n: 5, m: 16), 20, 50),
        (.transposableNM(n: 2, m: 4), 32, 48),
        (.transposableNM(n: 3, m: 8), 32, 32),
        (.csr(density: 0.3), 30, 45),
        (.blast(blocks: 2, rank: 5, parameterRatio: nil, iterations: 20), 32, 48),
        (.l1inf(groups: .columns, radius: nil, radiusRatio: 0.6), 24, 40),
        (.l1inf(groups: .rows, radius: nil, radiusRatio: 0.6), 24, 40),
    ]

    func testEveryMethodRoundTripsThroughTensors() throws {
        for (method, rows, columns) in Self.methods {
            let w = Self.weight(rows, columns)
            for bias in [Self.bias(rows), nil] {
                let (packed, knownError) = try method.pack(weights: w, outputFeatures: rows, inputFeatures: columns, bias: bias)
                XCTAssertEqual(packed.method, method.methodName)
                XCTAssertEqual(packed.storedBytes, packed.parts().reduce(0) { $0 + $1.data.count }, "\(method)")
                let reread = try roundTrip(packed, prefix: "layer.\(packed.method)")
                let a = try packed.makeOperator(), b = try reread.makeOperator()
                XCTAssertEqual(a.storage, b.storage)
                XCTAssertEqual(a.parameterCount, b.parameterCount)
                let dense = packed.denseWeights(a)
                XCTAssertEqual(dense, reread.denseWeights(b), "\(method)")
                XCTAssertEqual(dense == nil, method.methodName == "l1inf", "only compacted forms lack a dense form")
                // The operators compute the same thing, bitwise, at batch 1 and in a GEMM.
                for batch in [1, 5, 40] {
                    let x = Matrix(rows: batch, columns: columns, values: Self.weight(batch, columns, seed: 99))
                    XCTAssertEqual(a.apply(x, activation: .relu).values, b.apply(x, activation: .relu).values, "\(method) batch \(batch)")
                }
                // And what the form represents is the compressed weight (zeros where pruned).
                let built = try BuiltLinearLayer(packed: reread, parameters: [:], pinned: true, reference: w, relativeError: knownError, time: false)
                if let dense { XCTAssertEqual(built.facts.relativeError, LayerCompression.relativeError(w, dense), accuracy: 1e-12) }
                if method == .dense { XCTAssertEqual(built.facts.relativeError, 0) } else { XCTAssertGreaterThan(built.facts.relativeError, 0) }
                XCTAssertEqual(built.facts.denseBytes, 4 * (rows * columns + (bias == nil ? 0 : rows)))
            }
        }
    }

    /// The mask-exact Swift pack lays out what `ss_nm_pack` does when the mask is the non-zeros.
    func testSwiftPackEqualsTheKernelPack() throws {
        for (n, m, rows, columns) in [(2, 4, 40, 66), (1, 4, 16, 8), (3, 8, 33, 70), (4, 8, 17, 64), (7, 16, 31, 50), (15, 16, 16, 33)] {
            let pruned = NMWeights.magnitudeMask(Self.weight(rows, columns), outputFeatures: rows, inputFeatures: columns, n: n, m: m)
            let kernel = try NMWeights(prunedWeights: pruned, outputFeatures: rows, inputFeatures: columns, n: n, m: m)
            let (values, words) = try NMWeights.pack(weights: pruned, mask: pruned.map { $0 != 0 }, outputFeatures: rows,
                                                     inputFeatures: columns, n: n, m: m)
            XCTAssertEqual(values, kernel.packedValues, "\(n):\(m)")
            XCTAssertEqual(words, kernel.packedIndexWords, "\(n):\(m)")
            let rebuilt = try NMWeights(packedValues: values, indexWords: words, outputFeatures: rows, inputFeatures: columns, n: n, m: m)
            XCTAssertEqual(rebuilt.denseWeights(), pruned)
            XCTAssertEqual(rebuilt.keptMask(), pruned.map { $0 != 0 })
        }
    }

    /// A kept weight that is exactly zero keeps its position, so a transposable mask survives.
    func testKeptZerosKeepTheirPositions() throws {
        var w = Self.weight(8, 8)
        let mask = try TransposableMask.mask(w, rows: 8, columns: 8, n: 2, m: 4)
        let first = mask.firstIndex(of: true)!
        w[first] = 0
        let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: 8, inputFeatures: 8, n: 2, m: 4)
        let op = try NMWeights(packedValues: values, indexWords: words, outputFeatures: 8, inputFeatures: 8, n: 2, m: 4)
        XCTAssertEqual(op.keptMask(), mask)
        let packed = PackedLayer(outputFeatures: 8, inputFeatures: 8, form: .nm(n: 2, m: 4, transposable: true, values: values, indexWords: words), bias: nil)
        XCTAssertNoThrow(try packed.makeOperator())
        XCTAssertEqual(packed.maskCheck, "exactly 2 of every 4 inputs per row; exactly 2 per column of every 4×4 block")
    }

    func testBrokenNMPacksAreRefused() throws {
        let (rows, columns) = (32, 32)
        let w = Self.weight(rows, columns)
        for (n, m) in [(2, 4), (3, 8)] {
            let good = try LayerCompression.nm(n: n, m: m).pack(weights: w, outputFeatures: rows, inputFeatures: columns, bias: nil).packed
            guard case let .nm(_, _, _, values, words) = good.form else { return XCTFail() }
            func with(values v: [Float] = values, words i: [UInt64] = words, transposable: Bool = false, rows r: Int = rows) -> PackedLayer {
                PackedLayer(outputFeatures: r, inputFeatures: columns, form: .nm(n: n, m: m, transposable: transposable, values: v, indexWords: i), bias: nil)
            }
            // Slot 1 of lane 0 repeats slot 0's position: that group no longer holds n distinct positions.
            var repeated = words
            let shift = NMWeights.laneShift(m: m, lane: 0), mask: UInt64 = m == 4 ? 3 : 15
            repeated[1] = (repeated[1] & ~(mask << shift)) | (repeated[0] & (mask << shift))
            assertFormError(with(words: repeated), part: "indices", contains: ["used twice", "exactly \(n) distinct", "panel 0, group 0, slot 1, lane 0"])
            if m == 8 {
                var outOfRange = words
                outOfRange[0] |= 0xF << NMWeights.laneShift(m: 8, lane: 3)
                assertFormError(with(words: outOfRange), part: "indices", contains: ["position 15 is not below m = 8", "lane 3"])
            } else {
                assertFormError(with(words: words.enumerated().map { $0.offset == 2 ? $0.element | (1 << 40) : $0.element }), part: "indices",
                                contains: ["does not fit the 32 bits"])
            }
            assertFormError(with(words: Array(words.dropLast())), part: "indices", contains: ["index words"])
            assertFormError(with(values: values + [0]), part: "values", contains: ["values"])
            var nan = values
            nan[5] = .nan
            assertFormError(with(values: nan), part: "values", contains: ["value 5 is not finite"])
            // A weight in a padding row (31 real rows of a 32-row pack).
            // Panel 1, group 0, slot 0, lane 15 is row 31: a padding row of a 31-row matrix.
            var padded = values
            let lastPanelLane = ((1 * ((columns + m - 1) / m) + 0) * n + 0) * 16 + 15
            padded[lastPanelLane] = 2
            assertFormError(with(values: padded, rows: 31), part: "values", contains: ["outside the 31×32 matrix"])
            // A magnitude mask is not transposable: refused when the metadata claims it is.
            assertFormError(with(transposable: true), part: "indices", contains: ["block (0, 0)", "transposable"])
        }
    }

    func testBrokenCSRBlastAndCompactedFormsAreRefused() throws {
        let w = Self.weight(6, 8)
        let csr = try LayerCompression.csr(density: 0.5).pack(weights: w, outputFeatures: 6, inputFeatures: 8, bias: nil).packed
        guard case let .csr(rowStart, columns, values) = csr.form else { return XCTFail() }
        func csrWith(rows r: [Int32] = rowStart, columns c: [Int32] = columns, values v: [Float] = values) -> PackedLayer {
            PackedLayer(outputFeatures: 6, inputFeatures: 8, form: .csr(rowStart: r, columns: c, values: v), bias: nil)
        }
        var badColumn = columns
        badColumn[0] = 8
        assertFormError(csrWith(columns: badColumn), part: "colidx", contains: ["row 0", "column 8 is outside 0..<8"])
        var unsorted = columns
        unsorted.swapAt(0, 1)
        assertFormError(csrWith(columns: unsorted), part: "colidx", contains: ["not strictly increasing"])
        assertFormError(csrWith(rows: rowStart.map { $0 + 1 }), part: "rowptr", contains: ["starting at 0"])
        assertFormError(csrWith(columns: Array(columns.dropLast()), values: Array(values.dropLast())), part: "rowptr", contains: ["ends at"])

        let blast = PackedLayer(outputFeatures: 8, inputFeatures: 8, form: .blast(rowBlocks: 2, columnBlocks: 2, rank: 2,
                                u: [Float](repeating: 1, count: 16), v: [Float](repeating: 1, count: 15), s: [Float](repeating: 1, count: 8)), bias: nil)
        assertFormError(blast, part: "V", contains: ["15 values", "8×2"])
        let wideBlocks = PackedLayer(outputFeatures: 8, inputFeatures: 8, form: .blast(rowBlocks: 9, columnBlocks: 2, rank: 2,
                                     u: [Float](repeating: 1, count: 16), v: [Float](repeating: 1, count: 16), s: [Float](repeating: 1, count: 36)), bias: nil)
        assertFormError(wideBlocks, part: "s", contains: ["9×2 blocks"])

        func compacted(gather: [Int32]?, kept: [Int32]? = nil, dropped: [Int32]? = nil, constants: [Float]? = nil, outputWidth: Int = 6) -> PackedLayer {
            let rows = kept?.count ?? outputWidth, columns = gather?.count ?? 8
            return PackedLayer(outputFeatures: 6, inputFeatures: 8, form: .compacted(.init(
                method: "l1inf", weight: [Float](repeating: 1, count: rows * columns), inputWidth: 8, outputWidth: outputWidth, gather: gather,
                scatterKept: kept, scatterDropped: dropped, scatterConstants: constants, storage: "test")), bias: nil)
        }
        XCTAssertNoThrow(try compacted(gather: [0, 3], kept: [1, 4], dropped: [0, 2, 3, 5], constants: [1, 2, 3, 4]).makeOperator())
        assertFormError(compacted(gather: [0, 8]), part: "gather", contains: ["index 8 is outside 0..<8"])
        assertFormError(compacted(gather: [3, 1]), part: "gather", contains: ["not strictly increasing"])
        assertFormError(compacted(gather: []), part: "gather", contains: ["reads no input"])
        assertFormError(compacted(gather: nil, kept: [1, 4], dropped: [0, 2, 3], constants: [1, 2, 3]), part: "scatter_dropped",
                        contains: ["split 0..<6"])
        assertFormError(compacted(gather: nil, kept: [1, 4], dropped: [0, 2, 3, 4], constants: [1, 2, 3, 4]), part: "scatter_dropped",
                        contains: ["split 0..<6"])
        assertFormError(compacted(gather: nil, kept: [1, 4], dropped: [0, 2, 3, 5], constants: [1, 2]), part: "scatter_constants",
                        contains: ["2 constants for 4 dropped"])
        assertFormError(compacted(gather: nil, kept: [1, 4], dropped: nil, constants: nil), part: "scatter_kept", contains: ["come together"])
        assertFormError(compacted(gather: nil, outputWidth: 7), part: "weight", contains: ["cannot stand for a 6×8 layer"])
        let badBias = PackedLayer(outputFeatures: 6, inputFeatures: 8, form: .dense(weight: w), bias: [1, 2, 3])
        assertFormError(badBias, part: "bias", contains: ["3 values for 6 outputs"])
    }

    /// `read` checks each part's dtype and shape before anything else, naming the tensor.
    func testReadChecksDtypesAndShapes() throws {
        let packed = try LayerCompression.nm(n: 2, m: 4).pack(weights: Self.weight(16, 16), outputFeatures: 16, inputFeatures: 16, bias: Self.bias(16)).packed
        var parts = packed.parts()
        func file(_ parts: [PackedLayer.Part]) throws -> SafeTensors {
            var writer = SafeTensorsWriter()
            for p in parts { try writer.add("fc.nm.\(p.name)", dtype: p.dtype, shape: p.shape, bytes: p.data) }
            return try SafeTensors(data: writer.serialized(), source: "parts.safetensors")
        }
        func read(_ f: SafeTensors) throws -> PackedLayer {
            try PackedLayer.read(from: f, prefix: "fc.nm", layout: packed.layout, outputFeatures: 16, inputFeatures: 16, hasBias: true)
        }
        XCTAssertNoThrow(try read(try file(parts)))
        parts[1].dtype = .i32
        assertError(try read(try file(parts)), contains: ["parts.safetensors", "'fc.nm.indices'", "dtype is I32", "U32"])
        parts = packed.parts()
        parts[0].shape = [1, 4, 4, 8]
        assertError(try read(try file(parts)), contains: ["'fc.nm.values'", "shape is [1, 4, 4, 8]", "expected [1, 4, 2, 16]"])
        parts = packed.parts()
        parts.removeLast()
        assertError(try read(try file(parts)), contains: ["'fc.nm.bias'", "no such tensor"])
    }
}

/// Shared by the packed-layer tests.
extension XCTestCase {
    /// Writes `packed` under `prefix` into a safetensors image and reads it back.
    func roundTrip(_ packed: PackedLayer, prefix: String) throws -> PackedLayer {
        var writer = SafeTensorsWriter()
        for part in packed.parts() { try writer.add("\(prefix).\(part.name)", dtype: part.dtype, shape: part.shape, bytes: part.data) }
        let file = try SafeTensors(data: writer.serialized(), source: "round.safetensors")
        XCTAssertEqual(file.names, PackedLayer.partNames(packed.layout, hasBias: packed.bias != nil).map { "\(prefix).\($0)" })
        return try PackedLayer.read(from: file, prefix: prefix, layout: packed.layout, outputFeatures: packed.outputFeatures,
                                    inputFeatures: packed.inputFeatures, hasBias: packed.bias != nil)
    }

    func assertFormError(_ packed: PackedLayer, part: String, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try packed.makeOperator(), file: file, line: line) { error in
            guard let e = error as? PackedLayer.FormError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.part, part, "\(e)", file: file, line: line)
            for f in fragments { XCTAssertTrue(e.description.contains(f), "'\(e)' lacks '\(f)'", file: file, line: line) }
        }
    }
}
