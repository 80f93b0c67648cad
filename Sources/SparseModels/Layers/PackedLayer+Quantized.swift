import Foundation
import SparseKernels

extension PackedLayer {
    /// The values of one stored weight tensor: int8 with fp32 scales, or bf16 bit patterns.
    public enum QuantizedValues: Sendable {
        case int8(values: [Int8], scales: [Float])
        case bf16(bits: [UInt16])

        var count: Int {
            switch self {
            case .int8(let values, _): return values.count
            case .bf16(let bits): return bits.count
            }
        }

        var storedBytes: Int {
            switch self {
            case let .int8(values, scales): return values.count + 4 * scales.count
            case .bf16(let bits): return 2 * bits.count
            }
        }

        /// The values as fp32: int8 value i times `scales[scale(i)]` (nil: unscaled integers), or bf16 widened.
        func floats(scale: ((Int) -> Int)?) -> [Float] {
            switch self {
            case let .int8(values, scales):
                guard let scale else { return values.map { Float($0) } }
                return values.indices.map { Float(values[$0]) * scales[scale($0)] }
            case .bf16(let bits):
                return bits.map { Float(bitPattern: UInt32($0) << 16) }
            }
        }
    }

    /// A method's packed form with quantized weights (`WeightQuantization`). Tensor parts (int8
    /// scales after the method's own parts):
    /// - dense: `weight` `[out, in]` (I8 or BF16), `scales` `[out, G]` (G = 1 per channel, else ⌈in / group⌉);
    /// - nm: `values` `[panels, groups, n, 16]` (the N:M pack, I8 or BF16), `indices` as fp32 N:M, `scales` `[out, G]`;
    /// - blast: `U` `[out, r]`, `V` `[in, r]` (I8 or BF16), `s` fp32, `U_scales` `[out, 1]` (per row of U) and
    ///   `V_scales` `[b2, r]` (per column block and rank component: the rows of the kernel's V_jᵀ).
    public enum QuantizedForm: Sendable {
        case dense(WeightQuantization, QuantizedValues)
        case nm(n: Int, m: Int, transposable: Bool, WeightQuantization, QuantizedValues, indexWords: [UInt64])
        case blast(rowBlocks: Int, columnBlocks: Int, rank: Int, WeightQuantization, u: QuantizedValues, v: QuantizedValues, s: [Float])
        /// CSR with int8 values `[nnz]` (scales `[out, 1]`), `colidx` and `rowptr` as fp32 CSR.
        case csr(WeightQuantization, rowStart: [Int32], columns: [Int32], QuantizedValues)

        public var scheme: WeightQuantization {
            switch self {
            case .dense(let q, _), .nm(_, _, _, let q, _, _), .blast(_, _, _, let q, _, _, _), .csr(let q, _, _, _): return q
            }
        }

        var baseLayout: Layout {
            switch self {
            case .dense: return .dense
            case let .nm(n, m, transposable, _, _, _): return .nm(n: n, m: m, transposable: transposable)
            case let .blast(b1, b2, r, _, _, _, _): return .blast(rowBlocks: b1, columnBlocks: b2, rank: r)
            case .csr: return .csr
            }
        }

        var storedBytes: Int {
            switch self {
            case .dense(_, let values): return values.storedBytes
            case let .nm(_, m, _, _, values, words): return values.storedBytes + words.count * (m == 4 ? 4 : 8)
            case let .blast(_, _, _, _, u, v, s): return u.storedBytes + v.storedBytes + 4 * s.count
            case let .csr(_, rowStart, columns, values): return values.storedBytes + 4 * (rowStart.count + columns.count)
            }
        }
    }

    // MARK: Quantizing a packed form

    /// Chooses int8 values and scales for a row-major `rows × columns` weight (zero where pruned),
    /// laid out as `quantizeInt8` returns them: round-to-nearest by default, or a data-aware
    /// rounding (GPTQ, from calibration data).
    public typealias Int8Rounding = ([Float], _ rows: Int, _ columns: Int, Int8Granularity) throws -> (values: [Int8], scales: [Float])

    /// This fp32 dense, N:M, BLAST or CSR form with its weights quantized as `scheme` (same mask,
    /// same factors). int8 is symmetric, scale = absmax / 127 (`quantizeInt8`), or what `rounding`
    /// gives for the layer's weight (dense, N:M, CSR; BLAST's factors round to nearest); bf16 rounds
    /// to nearest even.
    public func quantized(_ scheme: WeightQuantization, rounding: Int8Rounding? = nil) throws -> PackedLayer {
        let (out, inputs) = (outputFeatures, inputFeatures)
        let result: QuantizedForm
        switch form {
        case .dense(let w):
            result = .dense(scheme, try Self.quantize(w, rows: out, columns: inputs, scheme, part: "weight", rounding: rounding))
        case let .nm(n, m, transposable, values, words):
            let op: NMWeights
            do { op = try NMWeights(packedValues: values, indexWords: words, outputFeatures: out, inputFeatures: inputs, n: n, m: m) } catch {
                throw FormError(part: "values", reason: "\(error)")
            }
            if case .bf16 = scheme {
                result = .nm(n: n, m: m, transposable: transposable, scheme, try Self.quantize(values, rows: values.count / 16, columns: 16, scheme, part: "values"),
                             indexWords: words)
            } else {
                guard case let .int8(q, scales) = try Self.quantize(op.denseWeights(), rows: out, columns: inputs, scheme, part: "values",
                                                                    rounding: rounding) else {
                    throw FormError(part: "values", reason: "int8 quantization gave no int8 values")
                }
                let (packed, packedWords) = try NMWeights.pack(weights: q.map { Float($0) }, mask: op.keptMask(), outputFeatures: out,
                                                               inputFeatures: inputs, n: n, m: m)
                result = .nm(n: n, m: m, transposable: transposable, scheme, .int8(values: packed.map { Int8($0) }, scales: scales),
                             indexWords: packedWords)
            }
        case let .blast(b1, b2, r, u, v, s):
            let uq = try Self.quantize(u, rows: out, columns: r, scheme, part: "U")
            result = .blast(rowBlocks: b1, columnBlocks: b2, rank: r, scheme, u: uq,
                            v: try Self.quantizeBlastV(v, inputs: inputs, blocks: b2, rank: r, scheme), s: s)
        case let .csr(rowStart, columns, values):
            result = .csr(scheme, rowStart: rowStart, columns: columns,
                          try Self.quantizeCSR(rowStart, columns, values, outputs: out, inputs: inputs, scheme, rounding: rounding))
        case .compacted, .quantized:
            throw FormError(part: nil, reason: "a \(method) layer in this form cannot be quantized (dense, N:M, BLAST and CSR can)")
        }
        return PackedLayer(outputFeatures: out, inputFeatures: inputs, form: .quantized(result), bias: bias, sourceHasBias: sourceHasBias)
    }

    /// The fp32 form this quantized layer stands for: its weights dequantised (value × scale, or
    /// bf16 widened) in the same structure (N:M index stream, CSR pattern, BLAST factors). Recovery
    /// trains it and quantizes the result again with `quantizedScheme`. An fp32 layer is returned as is.
    public func dequantized() throws -> PackedLayer {
        guard case .quantized(let q) = form else { return self }
        let (out, inputs) = (outputFeatures, inputFeatures)
        let form: Form
        switch q {
        case .dense, .nm, .csr:
            guard let dense = Self.quantizedDenseWeights(try makeOperator()) else {
                throw FormError(part: nil, reason: "\(q.scheme) layer has no dequantised weight")
            }
            form = try Self.fp32Form(q, dense: dense, outputs: out, inputs: inputs)
        case let .blast(b1, b2, r, _, u, v, s):
            var blockOfRow = [Int](repeating: 0, count: inputs)
            for j in 0..<b2 { for k in (j * inputs / b2)..<((j + 1) * inputs / b2) { blockOfRow[k] = j } }
            let isInt8: Bool
            if case .int8 = u { isInt8 = true } else { isInt8 = false }
            form = .blast(rowBlocks: b1, columnBlocks: b2, rank: r, u: u.floats(scale: isInt8 ? { $0 / r } : nil),
                          v: v.floats(scale: isInt8 ? { blockOfRow[$0 / r] * r + $0 % r } : nil), s: s)
        }
        return PackedLayer(outputFeatures: out, inputFeatures: inputs, form: form, bias: bias, sourceHasBias: sourceHasBias)
    }

    /// A dense, N:M or CSR form holding `dense` (row-major, zero where pruned) with `q`'s structure.
    private static func fp32Form(_ q: QuantizedForm, dense: [Float], outputs out: Int, inputs: Int) throws -> Form {
        switch q {
        case .dense:
            return .dense(weight: dense)
        case let .nm(n, m, transposable, _, values, words):
            let mask = try NMWeights(packedValues: values.floats(scale: nil), indexWords: words, outputFeatures: out, inputFeatures: inputs,
                                     n: n, m: m).keptMask()
            let (packed, packedWords) = try NMWeights.pack(weights: dense, mask: mask, outputFeatures: out, inputFeatures: inputs, n: n, m: m)
            return .nm(n: n, m: m, transposable: transposable, values: packed, indexWords: packedWords)
        case let .csr(_, rowStart, columns, _):
            var values: [Float] = []
            values.reserveCapacity(columns.count)
            for r in 0..<out { for k in Int(rowStart[r])..<Int(rowStart[r + 1]) { values.append(dense[r * inputs + Int(columns[k])]) } }
            return .csr(rowStart: rowStart, columns: columns, values: values)
        case .blast:
            throw FormError(part: nil, reason: "BLAST factors are dequantised one by one")
        }
    }

    private static func quantize(_ w: [Float], rows: Int, columns: Int, _ scheme: WeightQuantization, part: String,
                                 rounding: Int8Rounding? = nil) throws -> QuantizedValues {
        let round: Int8Rounding = rounding ?? { try quantizeInt8($0, rows: $1, columns: $2, granularity: $3) }
        do {
            switch scheme {
            case .bf16:
                return .bf16(bits: try BF16Weights(weights: w, outputFeatures: rows, inputFeatures: columns).bits)
            case .int8(let granularity):
                let (q, s) = try round(w, rows, columns, granularity)
                return .int8(values: q, scales: s)
            case .int8Dynamic:
                let (q, s) = try round(w, rows, columns, .channel)
                return .int8(values: q, scales: s)
            }
        } catch {
            throw FormError(part: part, reason: "\(error)")
        }
    }

    /// CSR values as int8, one scale per output row over its kept weights: absmax / 127 (as
    /// CSRInt8Weights quantizes), or `rounding` of the dense weight read back at the kept positions.
    private static func quantizeCSR(_ rowStart: [Int32], _ columns: [Int32], _ values: [Float], outputs out: Int, inputs: Int,
                                    _ scheme: WeightQuantization, rounding: Int8Rounding?) throws -> QuantizedValues {
        let csr: CSRWeights
        do { csr = try CSRWeights(rowStart: rowStart, columns: columns, values: values, outputFeatures: out, inputFeatures: inputs) } catch {
            throw FormError(part: "values", reason: "\(error)")
        }
        guard let rounding else {
            do {
                let op = try CSRInt8Weights(csr)
                return .int8(values: op.values, scales: op.scales)
            } catch {
                throw FormError(part: "values", reason: "\(error)")
            }
        }
        var dense = [Float](repeating: 0, count: out * inputs)
        for r in 0..<out { for k in Int(rowStart[r])..<Int(rowStart[r + 1]) { dense[r * inputs + Int(columns[k])] = values[k] } }
        guard case let .int8(q, scales) = try quantize(dense, rows: out, columns: inputs, scheme, part: "values", rounding: rounding) else {
            throw FormError(part: "values", reason: "int8 quantization gave no int8 values")
        }
        var kept = [Int8](repeating: 0, count: values.count)
        for r in 0..<out { for k in Int(rowStart[r])..<Int(rowStart[r + 1]) { kept[k] = q[r * inputs + Int(columns[k])] } }
        return .int8(values: kept, scales: scales)
    }

    /// V `[in, r]` quantized with one scale per column block j and rank component t (the rows of V_jᵀ).
    private static func quantizeBlastV(_ v: [Float], inputs: Int, blocks b2: Int, rank r: Int, _ scheme: WeightQuantization) throws -> QuantizedValues {
        guard scheme != .bf16 else { return try quantize(v, rows: inputs, columns: r, scheme, part: "V") }
        var values = [Int8](repeating: 0, count: v.count), scales = [Float](repeating: 0, count: b2 * r)
        for j in 0..<b2 {
            let c0 = j * inputs / b2, q = (j + 1) * inputs / b2 - c0
            var vt = [Float](repeating: 0, count: r * q)
            for a in 0..<q { for t in 0..<r { vt[t * q + a] = v[(c0 + a) * r + t] } }
            guard case let .int8(qv, sc) = try quantize(vt, rows: r, columns: q, .int8Dynamic, part: "V") else { continue }
            for a in 0..<q { for t in 0..<r { values[(c0 + a) * r + t] = qv[t * q + a] } }
            scales.replaceSubrange((j * r)..<((j + 1) * r), with: sc)
        }
        return .int8(values: values, scales: scales)
    }

    /// Layers with the same inputs, each quantized dense in the same format, as one layer of their
    /// rows stacked (a missing bias becomes zeros); nil when they are not all such layers. int8 scales
    /// are per row (or per row and group), so the stacked layer computes exactly what they compute.
    static func stackingQuantizedDenseRows(_ layers: [PackedLayer]) -> PackedLayer? {
        guard let first = layers.first else { return nil }
        var int8: [Int8] = [], scales: [Float] = [], bits: [UInt16] = [], bias: [Float] = []
        for layer in layers {
            guard case let .quantized(.dense(scheme, values)) = layer.form, scheme == first.quantizedScheme,
                  layer.inputFeatures == first.inputFeatures else { return nil }
            switch values {
            case let .int8(v, s): int8 += v; scales += s
            case .bf16(let b): bits += b
            }
            bias += layer.bias ?? [Float](repeating: 0, count: layer.outputFeatures)
        }
        guard let scheme = first.quantizedScheme else { return nil }
        let values: QuantizedValues = scheme == .bf16 ? .bf16(bits: bits) : .int8(values: int8, scales: scales)
        return PackedLayer(outputFeatures: layers.reduce(0) { $0 + $1.outputFeatures }, inputFeatures: first.inputFeatures,
                           form: .quantized(.dense(scheme, values)), bias: bias)
    }

    /// The weight quantization of a quantized form (nil: fp32).
    public var quantizedScheme: WeightQuantization? {
        if case .quantized(let q) = form { return q.scheme }
        return nil
    }

    // MARK: Tensors

    /// The tensors of a quantized form, in `partNames` order (without the bias).
    static func quantizedParts(_ q: QuantizedForm, outputFeatures out: Int, inputFeatures inputs: Int) -> [Part] {
        func values(_ name: String, _ v: QuantizedValues, _ shape: [Int]) -> Part {
            switch v {
            case .int8(let values, _): return Part(name: name, dtype: .i8, shape: shape, data: littleEndianBytes(values))
            case .bf16(let bits): return Part(name: name, dtype: .bf16, shape: shape, data: littleEndianBytes(bits))
            }
        }
        func scales(_ name: String, _ v: QuantizedValues, _ shape: [Int]) -> [Part] {
            guard case .int8(_, let s) = v else { return [] }
            return [Part(name: name, dtype: .f32, shape: shape, data: littleEndianBytes(s.map(\.bitPattern)))]
        }
        switch q {
        case .dense(let scheme, let v):
            let perRow = Self.scalesPerRow(scheme, inputs: inputs)
            return [values("weight", v, [out, inputs])] + scales("scales", v, [out, perRow])
        case let .nm(n, m, _, scheme, v, words):
            let (panels, groups) = NMWeights.packedShape(outputFeatures: out, inputFeatures: inputs, m: m)
            let indices = m == 4
                ? Part(name: "indices", dtype: .u32, shape: [panels, groups, n], data: littleEndianBytes(words.map { UInt32(truncatingIfNeeded: $0) }))
                : Part(name: "indices", dtype: .u64, shape: [panels, groups, n], data: littleEndianBytes(words))
            return [values("values", v, [panels, groups, n, 16]), indices] + scales("scales", v, [out, Self.scalesPerRow(scheme, inputs: inputs)])
        case let .blast(b1, b2, r, _, u, v, s):
            let diagonal = Part(name: "s", dtype: .f32, shape: [b1, b2, r], data: littleEndianBytes(s.map(\.bitPattern)))
            return [values("U", u, [out, r]), values("V", v, [inputs, r]), diagonal] + scales("U_scales", u, [out, 1])
                + scales("V_scales", v, [b2, r])
        case let .csr(_, rowStart, columns, v):
            return [values("values", v, [v.count]), Part(name: "colidx", dtype: .i32, shape: [columns.count], data: littleEndianBytes(columns)),
                    Part(name: "rowptr", dtype: .i32, shape: [rowStart.count], data: littleEndianBytes(rowStart))] + scales("scales", v, [out, 1])
        }
    }

    /// Part names of a quantized layout (without the bias).
    static func quantizedPartNames(_ base: Layout, _ scheme: WeightQuantization) -> [String] {
        let int8 = scheme != .bf16
        switch base {
        case .blast: return ["U", "V", "s"] + (int8 ? ["U_scales", "V_scales"] : [])
        case .nm: return ["values", "indices"] + (int8 ? ["scales"] : [])
        case .csr: return ["values", "colidx", "rowptr"] + (int8 ? ["scales"] : [])
        default: return ["weight"] + (int8 ? ["scales"] : [])
        }
    }

    static func scalesPerRow(_ scheme: WeightQuantization, inputs: Int) -> Int {
        if case .int8(let granularity) = scheme { return granularity.scalesPerRow(inputFeatures: inputs) }
        return 1
    }

    /// Reads the parts of a quantized layout (dtypes and shapes checked; content by `makeOperator`).
    static func readQuantized(_ reader: PartReader, _ base: Layout, _ scheme: WeightQuantization) throws -> QuantizedForm {
        let (out, inputs) = (reader.outputFeatures, reader.inputFeatures)
        func values(_ part: String, _ scalesPart: String, _ shape: [Int], _ scalesShape: [Int]) throws -> QuantizedValues {
            if scheme == .bf16 { return .bf16(bits: try reader.words(part, .bf16, shape, as: UInt16.self)) }
            return .int8(values: try reader.words(part, .i8, shape, as: Int8.self), scales: try reader.floats(scalesPart, scalesShape))
        }
        switch base {
        case .dense:
            return .dense(scheme, try values("weight", "scales", [out, inputs], [out, scalesPerRow(scheme, inputs: inputs)]))
        case let .nm(n, m, transposable):
            guard [4, 8, 16].contains(m), n >= 1, n < m else {
                throw SafeTensorsError(file: reader.file.source, tensor: "\(reader.prefix).values", reason: "\(n):\(m) is not a supported N:M pattern")
            }
            let (panels, groups) = NMWeights.packedShape(outputFeatures: out, inputFeatures: inputs, m: m)
            let v = try values("values", "scales", [panels, groups, n, 16], [out, scalesPerRow(scheme, inputs: inputs)])
            let words: [UInt64] = m == 4
                ? try reader.words("indices", .u32, [panels, groups, n], as: UInt32.self).map(UInt64.init)
                : try reader.words("indices", .u64, [panels, groups, n], as: UInt64.self)
            return .nm(n: n, m: m, transposable: transposable, scheme, v, indexWords: words)
        case let .blast(b1, b2, r):
            let u = try values("U", "U_scales", [out, r], [out, 1]), v = try values("V", "V_scales", [inputs, r], [b2, r])
            return .blast(rowBlocks: b1, columnBlocks: b2, rank: r, scheme, u: u, v: v, s: try reader.floats("s", [b1, b2, r]))
        case .csr:
            let rowStart = try reader.words("rowptr", .i32, [out + 1], as: Int32.self)
            let columns = try reader.words("colidx", .i32, nil, as: Int32.self)
            return .csr(scheme, rowStart: rowStart, columns: columns, try values("values", "scales", [columns.count], [out, 1]))
        case .compacted, .quantized:
            throw SafeTensorsError(file: reader.file.source, tensor: "\(reader.prefix).weight", reason: "a \(base.method) layer cannot be stored quantized")
        }
    }
}
