import Foundation
import SparseKernels

/// A linear layer's weight in the form its compression method stores it — the tensors a
/// compressed artifact holds (`sparse-serve compress`) — and the operator built from it.
/// Compressing at load goes through this form too, so an endpoint that compresses a model and one
/// that loads the artifact of the same compression build identical operators.
public struct PackedLayer: Sendable {
    public enum Form: Sendable {
        /// The weight as it is, `[out, in]`.
        case dense(weight: [Float])
        /// The N:M kernel's pack (`nm.h`): values `[panels, groups, n, 16]` and index words
        /// `[panels, groups, n]` — 2-bit positions in 32-bit words for m = 4, 4-bit positions in
        /// 64-bit words for m = 8, 16 (held widened to 64 bits here).
        case nm(n: Int, m: Int, transposable: Bool, values: [Float], indexWords: [UInt64])
        /// Row pointers `[out + 1]`, column indices and values `[nnz]`.
        case csr(rowStart: [Int32], columns: [Int32], values: [Float])
        /// BLAST factors: U `[out, r]` (the U_i stacked), V `[in, r]` (the V_j stacked), s `[b1, b2, r]`.
        case blast(rowBlocks: Int, columnBlocks: Int, rank: Int, u: [Float], v: [Float], s: [Float])
        /// A dense layer on a subset of its inputs and outputs (`CompactedDense`): an ℓ1,∞ layer,
        /// or a dense neighbour that ℓ1,∞ compaction shrank. `bias` is then the kept outputs' bias
        /// (dropped inputs' constants folded in).
        case compacted(Compaction)
        /// A dense, N:M or BLAST form with int8 (+ fp32 scales) or bf16 weights (`PackedLayer+Quantized`).
        case quantized(QuantizedForm)
    }

    /// What a `CompactedDense` holds.
    public struct Compaction: Sendable, Equatable {
        /// The layer's method: "l1inf", or "dense" for a neighbour shrunk by one.
        public var method: String
        /// Kept outputs × kept inputs, row-major.
        public var weight: [Float]
        /// Width of the input the operator is given (the layer's, or the previous layer's kept
        /// neurons) and of the output it writes.
        public var inputWidth: Int
        public var outputWidth: Int
        /// The input columns it reads (nil: all `inputWidth`).
        public var gather: [Int32]?
        /// Where its outputs go in an `outputWidth`-wide output, and the dropped neurons with
        /// their pre-activation constants (nil: its output is the kept outputs, narrow).
        public var scatterKept: [Int32]?
        public var scatterDropped: [Int32]?
        public var scatterConstants: [Float]?
        /// The operator's storage description.
        public var storage: String

        var keptInputs: Int { gather?.count ?? inputWidth }
        var keptOutputs: Int { scatterKept?.count ?? outputWidth }
    }

    /// The structure of a stored form, as an artifact's metadata declares it before its tensors are read.
    public enum Layout: Sendable, Equatable {
        case dense
        case nm(n: Int, m: Int, transposable: Bool)
        case csr
        case blast(rowBlocks: Int, columnBlocks: Int, rank: Int)
        case compacted(method: String, inputWidth: Int, outputWidth: Int, gather: Bool, scatter: Bool, storage: String)
        /// A dense, N:M or BLAST layout with quantized weights.
        indirect case quantized(Layout, WeightQuantization)
    }

    /// A stored form that breaks its method's rules; `part` names the tensor part ("values",
    /// "indices", "bias", …) when one is to blame.
    public struct FormError: Error, CustomStringConvertible, Sendable {
        public var part: String?
        public var reason: String
        public var description: String { part.map { "\($0): \(reason)" } ?? reason }
    }

    /// One stored tensor: `part` is the last component of its name, `<layer>.<method>.<part>`.
    public struct Part: Sendable {
        public var name: String
        public var dtype: SafeTensorsDType
        public var shape: [Int]
        public var data: Data
    }

    /// The layer's shape (a compacted operator is narrower).
    public let outputFeatures: Int
    public let inputFeatures: Int
    public let form: Form
    /// The bias the stored form holds (for a compacted layer: of its kept outputs).
    public let bias: [Float]?
    /// Whether the source layer has a bias (for its dense size).
    public let sourceHasBias: Bool

    public init(outputFeatures: Int, inputFeatures: Int, form: Form, bias: [Float]?, sourceHasBias: Bool? = nil) {
        self.outputFeatures = outputFeatures
        self.inputFeatures = inputFeatures
        self.form = form
        self.bias = bias
        self.sourceHasBias = sourceHasBias ?? (bias != nil)
    }

    /// The stored form of a compacted operator standing for an `outputFeatures × inputFeatures` layer.
    package init(compacted op: CompactedDense, method: String, outputFeatures: Int, inputFeatures: Int, sourceHasBias: Bool) {
        let compaction = Compaction(method: method, weight: op.inner.unpackedWeights(), inputWidth: op.inputFeatures,
                                    outputWidth: op.outputFeatures, gather: op.gather.map { $0.map { Int32($0) } },
                                    scatterKept: op.scatter.map { $0.kept.map { Int32($0) } },
                                    scatterDropped: op.scatter.map { $0.dropped.map { Int32($0) } },
                                    scatterConstants: op.scatter?.constants, storage: op.storage)
        self.init(outputFeatures: outputFeatures, inputFeatures: inputFeatures, form: .compacted(compaction), bias: op.inner.bias,
                  sourceHasBias: sourceHasBias)
    }

    /// "dense", "nm", "csr", "blast" or "l1inf": the middle component of the tensor names.
    public var method: String { layout.method }

    public var layout: Layout {
        switch form {
        case .dense: return .dense
        case let .nm(n, m, transposable, _, _): return .nm(n: n, m: m, transposable: transposable)
        case .csr: return .csr
        case let .blast(b1, b2, r, _, _, _): return .blast(rowBlocks: b1, columnBlocks: b2, rank: r)
        case .compacted(let c):
            return .compacted(method: c.method, inputWidth: c.inputWidth, outputWidth: c.outputWidth, gather: c.gather != nil,
                              scatter: c.scatterKept != nil, storage: c.storage)
        case .quantized(let q): return .quantized(q.baseLayout, q.scheme)
        }
    }

    /// Bytes of the dense FP32 weight and bias this layer replaces.
    public var denseBytes: Int { 4 * (outputFeatures * inputFeatures + (sourceHasBias ? outputFeatures : 0)) }

    /// Bytes of the stored tensors (`parts()`), index metadata and bias included.
    public var storedBytes: Int {
        let floats: Int
        var other = 0
        switch form {
        case .dense(let w): floats = w.count
        case let .nm(_, m, _, values, words): floats = values.count; other = words.count * (m == 4 ? 4 : 8)
        case let .csr(rowStart, columns, values): floats = values.count; other = 4 * (rowStart.count + columns.count)
        case let .blast(_, _, _, u, v, s): floats = u.count + v.count + s.count
        case .compacted(let c):
            floats = c.weight.count + (c.scatterConstants?.count ?? 0)
            other = 4 * ((c.gather?.count ?? 0) + (c.scatterKept?.count ?? 0) + (c.scatterDropped?.count ?? 0))
        case .quantized(let q): floats = 0; other = q.storedBytes
        }
        return 4 * (floats + (bias?.count ?? 0)) + other
    }

    // MARK: Tensors

    /// The tensors that store this layer, in a fixed order (bias last).
    public func parts() -> [Part] {
        var out: [Part] = []
        func floats(_ name: String, _ values: [Float], _ shape: [Int]) {
            out.append(Part(name: name, dtype: .f32, shape: shape, data: littleEndianBytes(values.map(\.bitPattern))))
        }
        func ints(_ name: String, _ values: [Int32], _ shape: [Int]) {
            out.append(Part(name: name, dtype: .i32, shape: shape, data: littleEndianBytes(values)))
        }
        switch form {
        case .dense(let w):
            floats("weight", w, [outputFeatures, inputFeatures])
        case let .nm(n, m, _, values, words):
            let (panels, groups) = NMWeights.packedShape(outputFeatures: outputFeatures, inputFeatures: inputFeatures, m: m)
            floats("values", values, [panels, groups, n, 16])
            if m == 4 {
                out.append(Part(name: "indices", dtype: .u32, shape: [panels, groups, n], data: littleEndianBytes(words.map { UInt32(truncatingIfNeeded: $0) })))
            } else {
                out.append(Part(name: "indices", dtype: .u64, shape: [panels, groups, n], data: littleEndianBytes(words)))
            }
        case let .csr(rowStart, columns, values):
            floats("values", values, [values.count])
            ints("colidx", columns, [columns.count])
            ints("rowptr", rowStart, [rowStart.count])
        case let .blast(b1, b2, r, u, v, s):
            floats("U", u, [outputFeatures, r])
            floats("V", v, [inputFeatures, r])
            floats("s", s, [b1, b2, r])
        case .compacted(let c):
            floats("weight", c.weight, [c.keptOutputs, c.keptInputs])
            if let gather = c.gather { ints("gather", gather, [gather.count]) }
            if let kept = c.scatterKept, let dropped = c.scatterDropped, let constants = c.scatterConstants {
                ints("scatter_kept", kept, [kept.count])
                ints("scatter_dropped", dropped, [dropped.count])
                floats("scatter_constants", constants, [constants.count])
            }
        case .quantized(let q):
            out += Self.quantizedParts(q, outputFeatures: outputFeatures, inputFeatures: inputFeatures)
        }
        if let bias { floats("bias", bias, [bias.count]) }  // a compacted layer's: of its kept outputs
        return out
    }

    /// Part names of a layout, in `parts()` order.
    public static func partNames(_ layout: Layout, hasBias: Bool) -> [String] {
        var names: [String]
        switch layout {
        case .dense: names = ["weight"]
        case .nm: names = ["values", "indices"]
        case .csr: names = ["values", "colidx", "rowptr"]
        case .blast: names = ["U", "V", "s"]
        case let .compacted(_, _, _, gather, scatter, _):
            names = ["weight"] + (gather ? ["gather"] : []) + (scatter ? ["scatter_kept", "scatter_dropped", "scatter_constants"] : [])
        case let .quantized(base, scheme): names = quantizedPartNames(base, scheme)
        }
        return hasBias ? names + ["bias"] : names
    }

    /// Reads a layer stored under `prefix` (`<prefix>.<part>`, the prefix being `<layer>.<method>`)
    /// in `layout`, checking every part's dtype and shape; content is checked by `makeOperator`.
    /// Errors name the file and the tensor.
    public static func read(from file: SafeTensors, prefix: String, layout: Layout, outputFeatures: Int, inputFeatures: Int,
                            hasBias: Bool, sourceHasBias: Bool? = nil) throws -> PackedLayer {
        let reader = PartReader(file: file, prefix: prefix, what: layout.method, outputFeatures: outputFeatures, inputFeatures: inputFeatures)
        func floats(_ part: String, _ shape: [Int]?) throws -> [Float] { try reader.floats(part, shape) }
        func words<T: FixedWidthInteger>(_ part: String, _ dtype: SafeTensorsDType, _ shape: [Int]?, as type: T.Type) throws -> [T] {
            try reader.words(part, dtype, shape, as: type)
        }
        let form: Form
        switch layout {
        case .dense:
            form = .dense(weight: try floats("weight", [outputFeatures, inputFeatures]))
        case let .nm(n, m, transposable):
            guard [4, 8, 16].contains(m), n >= 1, n < m else {
                throw SafeTensorsError(file: file.source, tensor: "\(prefix).values", reason: "\(n):\(m) is not a supported N:M pattern")
            }
            let (panels, groups) = NMWeights.packedShape(outputFeatures: outputFeatures, inputFeatures: inputFeatures, m: m)
            let values = try floats("values", [panels, groups, n, 16])
            let indexWords: [UInt64] = m == 4
                ? try words("indices", .u32, [panels, groups, n], as: UInt32.self).map(UInt64.init)
                : try words("indices", .u64, [panels, groups, n], as: UInt64.self)
            form = .nm(n: n, m: m, transposable: transposable, values: values, indexWords: indexWords)
        case .csr:
            let rowStart = try words("rowptr", .i32, [outputFeatures + 1], as: Int32.self)
            let columns = try words("colidx", .i32, nil, as: Int32.self)
            let values = try floats("values", [columns.count])
            form = .csr(rowStart: rowStart, columns: columns, values: values)
        case let .blast(b1, b2, r):
            form = .blast(rowBlocks: b1, columnBlocks: b2, rank: r, u: try floats("U", [outputFeatures, r]),
                          v: try floats("V", [inputFeatures, r]), s: try floats("s", [b1, b2, r]))
        case let .compacted(method, inputWidth, outputWidth, hasGather, hasScatter, storage):
            let gather = hasGather ? try words("gather", .i32, nil, as: Int32.self) : nil
            var kept: [Int32]?, dropped: [Int32]?, constants: [Float]?
            if hasScatter {
                kept = try words("scatter_kept", .i32, nil, as: Int32.self)
                dropped = try words("scatter_dropped", .i32, nil, as: Int32.self)
                constants = try floats("scatter_constants", [dropped!.count])
            }
            let keptOutputs = kept?.count ?? outputWidth
            let weight = try floats("weight", [keptOutputs, gather?.count ?? inputWidth])
            let compaction = Compaction(method: method, weight: weight, inputWidth: inputWidth, outputWidth: outputWidth, gather: gather,
                                        scatterKept: kept, scatterDropped: dropped, scatterConstants: constants, storage: storage)
            let bias = hasBias ? try floats("bias", [keptOutputs]) : nil
            return PackedLayer(outputFeatures: outputFeatures, inputFeatures: inputFeatures, form: .compacted(compaction), bias: bias,
                               sourceHasBias: sourceHasBias)
        case let .quantized(base, scheme):
            form = .quantized(try readQuantized(reader, base, scheme))
        }
        let bias = hasBias ? try floats("bias", [outputFeatures]) : nil
        return PackedLayer(outputFeatures: outputFeatures, inputFeatures: inputFeatures, form: form, bias: bias, sourceHasBias: sourceHasBias)
    }

    // MARK: Operator

    /// Checks the stored form and builds its operator (the compressed form, never timed). Throws
    /// `FormError` naming the part at fault.
    public func makeOperator() throws -> any LinearOperator {
        let (out, inputs) = (outputFeatures, inputFeatures)
        let fail = FormError.init, finite = Self.finite
        guard out > 0, inputs > 0 else { throw fail(nil, "the layer shape \(out)×\(inputs) is empty") }
        if let bias {
            var expected = out
            if case .compacted(let c) = form { expected = c.keptOutputs }
            guard bias.count == expected else { throw fail("bias", "\(bias.count) values for \(expected) outputs") }
            try finite("bias", bias)
        }
        switch form {
        case .dense(let w):
            guard w.count == out * inputs else { throw fail("weight", "\(w.count) values for a \(out)×\(inputs) weight") }
            try finite("weight", w)
            return DenseWeights(weights: w, outputFeatures: out, inputFeatures: inputs, bias: bias)
        case let .nm(n, m, transposable, values, words):
            let op: NMWeights
            do {
                op = try NMWeights(packedValues: values, indexWords: words, outputFeatures: out, inputFeatures: inputs, n: n, m: m, bias: bias)
            } catch let NMWeights.PackError.invalidPack(part, reason) {
                throw fail(part, reason)
            } catch {
                throw fail("values", "\(error)")
            }
            if transposable, let problem = Self.transposableProblem(op.keptMask(), rows: out, columns: inputs, n: n, m: m) {
                throw fail("indices", problem)
            }
            return op
        case let .csr(rowStart, columns, values):
            return try csrOperator(rowStart: rowStart, columns: columns, values: values)
        case let .blast(b1, b2, r, u, v, s):
            guard b1 >= 1, b2 >= 1, r >= 1, b1 <= out, b2 <= inputs else {
                throw fail("s", "\(b1)×\(b2) blocks of rank \(r) do not fit a \(out)×\(inputs) weight")
            }
            guard u.count == out * r else { throw fail("U", "\(u.count) values, expected \(out)×\(r)") }
            guard v.count == inputs * r else { throw fail("V", "\(v.count) values, expected \(inputs)×\(r)") }
            guard s.count == b1 * b2 * r else { throw fail("s", "\(s.count) values, expected \(b1)×\(b2)×\(r)") }
            try finite("U", u)
            try finite("V", v)
            try finite("s", s)
            return try BlastWeights(u: u, v: v, s: s, outputFeatures: out, inputFeatures: inputs, rowBlocks: b1, columnBlocks: b2, rank: r, bias: bias)
        case .compacted(let c):
            return try compactedOperator(c)
        case .quantized(let q):
            return try quantizedOperator(q)
        }
    }

    func csrOperator(rowStart: [Int32], columns: [Int32], values: [Float]) throws -> CSRWeights {
        let (out, inputs) = (outputFeatures, inputFeatures)
        let fail = FormError.init
        guard rowStart.count == out + 1, rowStart.first == 0 else { throw fail("rowptr", "needs \(out + 1) entries starting at 0") }
        guard Int(rowStart[out]) == values.count, columns.count == values.count else {
            throw fail("rowptr", "ends at \(rowStart[out]) but there are \(columns.count) column indices and \(values.count) values")
        }
        for row in 0..<out {
            let (start, end) = (Int(rowStart[row]), Int(rowStart[row + 1]))
            guard start <= end else { throw fail("rowptr", "row \(row) starts at \(start) after its end \(end)") }
            for e in start..<end {
                guard columns[e] >= 0, Int(columns[e]) < inputs else { throw fail("colidx", "row \(row): column \(columns[e]) is outside 0..<\(inputs)") }
                guard e == start || columns[e] > columns[e - 1] else { throw fail("colidx", "row \(row): columns are not strictly increasing at entry \(e)") }
            }
        }
        try Self.finite("values", values)
        return try CSRWeights(rowStart: rowStart, columns: columns, values: values, outputFeatures: out, inputFeatures: inputs, bias: bias)
    }

    private func compactedOperator(_ c: Compaction) throws -> CompactedDense {
        let (out, inputs) = (outputFeatures, inputFeatures)
        let fail = FormError.init
        func indices(_ part: String, _ values: [Int32], below limit: Int) throws {
            for (i, k) in values.enumerated() {
                guard k >= 0, Int(k) < limit else { throw fail(part, "index \(k) is outside 0..<\(limit)") }
                guard i == 0 || k > values[i - 1] else { throw fail(part, "indices are not strictly increasing at position \(i)") }
            }
        }
        guard c.inputWidth >= 1, c.inputWidth <= inputs, c.outputWidth >= 1, c.outputWidth <= out else {
            throw fail("weight", "a compacted operator of width \(c.inputWidth) → \(c.outputWidth) cannot stand for a \(out)×\(inputs) layer")
        }
        if let gather = c.gather {
            guard !gather.isEmpty else { throw fail("gather", "reads no input") }
            try indices("gather", gather, below: c.inputWidth)
        }
        if c.scatterKept != nil || c.scatterDropped != nil || c.scatterConstants != nil {
            guard let kept = c.scatterKept, let dropped = c.scatterDropped, let constants = c.scatterConstants else {
                throw fail("scatter_kept", "scatter_kept, scatter_dropped and scatter_constants come together")
            }
            guard !kept.isEmpty else { throw fail("scatter_kept", "keeps no output") }
            try indices("scatter_kept", kept, below: c.outputWidth)
            try indices("scatter_dropped", dropped, below: c.outputWidth)
            guard kept.count + dropped.count == c.outputWidth, Set(kept).isDisjoint(with: dropped) else {
                throw fail("scatter_dropped", "kept and dropped outputs must split 0..<\(c.outputWidth) between them")
            }
            guard constants.count == dropped.count else { throw fail("scatter_constants", "\(constants.count) constants for \(dropped.count) dropped outputs") }
            try Self.finite("scatter_constants", constants)
        }
        guard c.weight.count == c.keptOutputs * c.keptInputs else {
            throw fail("weight", "\(c.weight.count) values, expected \(c.keptOutputs)×\(c.keptInputs)")
        }
        try Self.finite("weight", c.weight)
        let inner = DenseWeights(weights: c.weight, outputFeatures: c.keptOutputs, inputFeatures: c.keptInputs, bias: bias)
        let scatter = c.scatterKept.map { kept in
            CompactedDense.Scatter(kept: kept.map(Int.init), dropped: (c.scatterDropped ?? []).map(Int.init), constants: c.scatterConstants ?? [])
        }
        return CompactedDense(inner: inner, inputFeatures: c.inputWidth, gather: c.gather.map { $0.map(Int.init) }, scatter: scatter,
                              storage: c.storage)
    }

    private static func finite(_ part: String, _ values: [Float]) throws {
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw FormError(part: part, reason: "element \(bad) is not finite (\(values[bad]))")
        }
    }

    /// The dense row-major weight this form represents (`op` is the operator `makeOperator`
    /// built), or nil for a compacted layer, whose dropped neurons live on as constants and
    /// folded biases rather than as weights.
    public func denseWeights(_ op: any LinearOperator) -> [Float]? {
        switch form {
        case .dense(let w): return w
        case .nm: return (op as! NMWeights).denseWeights()
        case .csr: return (op as! CSRWeights).denseWeights()
        case .blast: return (op as! BlastWeights).denseWeights()
        case .compacted: return nil
        case .quantized: return Self.quantizedDenseWeights(op)
        }
    }

    /// For N:M: what the index stream was checked to hold (the pack is refused otherwise).
    public var maskCheck: String? {
        let n: Int, m: Int, transposable: Bool
        switch form {
        case let .nm(n0, m0, t, _, _), let .quantized(.nm(n0, m0, t, _, _, _)): (n, m, transposable) = (n0, m0, t)
        default: return nil
        }
        let rows = "exactly \(n) of every \(m) inputs per row"
        return transposable ? "\(rows); exactly \(n) per column of every \(m)×\(m) block" : rows
    }

    /// Why a mask is not transposable N:M (the first block and row or column that breaks it), or nil.
    static func transposableProblem(_ mask: [Bool], rows: Int, columns: Int, n: Int, m: Int) -> String? {
        guard rows % m == 0, columns % m == 0 else {
            return "a transposable \(n):\(m) mask needs both dimensions divisible by \(m); the weight is \(rows)×\(columns)"
        }
        for bi in 0..<(rows / m) {
            for bj in 0..<(columns / m) {
                for x in 0..<m {
                    var inRow = 0, inColumn = 0
                    for y in 0..<m {
                        if mask[(bi * m + x) * columns + bj * m + y] { inRow += 1 }
                        if mask[(bi * m + y) * columns + bj * m + x] { inColumn += 1 }
                    }
                    if inRow != n || inColumn != n {
                        return "block (\(bi), \(bj)) keeps \(inRow) in its row \(x) and \(inColumn) in its column \(x); a transposable \(n):\(m) mask keeps exactly \(n) in each"
                    }
                }
            }
        }
        return nil
    }
}

extension PackedLayer.Layout {
    public var method: String {
        switch self {
        case .dense: return "dense"
        case .nm: return "nm"
        case .csr: return "csr"
        case .blast: return "blast"
        case .compacted(let method, _, _, _, _, _): return method
        case .quantized(let base, _): return base.method
        }
    }
}
