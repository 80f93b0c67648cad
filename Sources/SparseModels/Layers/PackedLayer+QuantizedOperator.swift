import SparseKernels

extension PackedLayer {
    /// Checks a quantized form and builds the kernel that runs it (see `WeightQuantization`):
    /// scales finite and positive, int8 values in the quantizer's range −127...127, bf16 values
    /// finite, N:M packs as for fp32. Throws `FormError` naming the part at fault.
    func quantizedOperator(_ q: QuantizedForm) throws -> any LinearOperator {
        let (out, inputs) = (outputFeatures, inputFeatures)
        switch q {
        case let .dense(scheme, values):
            try Self.checkValues(values, "weight", "scales", scales: out * Self.scalesPerRow(scheme, inputs: inputs))
            return try Self.kernel("weight", "scales") {
                switch (scheme, values) {
                case let (.int8(granularity), .int8(v, s)):
                    return try Int8Weights(values: v, scales: s, outputFeatures: out, inputFeatures: inputs, granularity: granularity, bias: bias)
                case let (.int8Dynamic, .int8(v, s)):
                    return try Int8DynamicWeights(values: v, scales: s, outputFeatures: out, inputFeatures: inputs, bias: bias)
                case let (.bf16, .bf16(bits)):
                    return try BF16Weights(bits: bits, outputFeatures: out, inputFeatures: inputs, bias: bias)
                default:
                    throw FormError(part: "weight", reason: "the stored values do not match \(scheme)")
                }
            }
        case let .nm(n, m, transposable, scheme, values, words):
            try Self.checkValues(values, "values", "scales", scales: out * Self.scalesPerRow(scheme, inputs: inputs))
            let pack: NMWeights
            do {
                pack = try NMWeights(packedValues: values.floats(scale: nil), indexWords: words, outputFeatures: out, inputFeatures: inputs,
                                     n: n, m: m, bias: bias)
            } catch let NMWeights.PackError.invalidPack(part, reason) {
                throw FormError(part: part, reason: reason)
            } catch {
                throw FormError(part: "values", reason: "\(error)")
            }
            if transposable, let problem = Self.transposableProblem(pack.keptMask(), rows: out, columns: inputs, n: n, m: m) {
                throw FormError(part: "indices", reason: problem)
            }
            return try Self.kernel("values", "scales") {
                switch (scheme, values) {
                case (.int8Dynamic, .int8(_, let scales)) where m == 4 && n <= 2:
                    return try NMInt8Weights(values: pack.denseWeights().map { Int8($0) }, scales: scales, outputFeatures: out,
                                             inputFeatures: inputs, bias: bias)
                case let (.int8(granularity), .int8(_, scales)):
                    return try NMWeightOnlyInt8Weights(integerPack: pack, scales: scales, granularity: granularity)
                case (.bf16, .bf16):
                    return try NMBF16Weights(pack)
                default:
                    throw FormError(part: "values", reason: "no kernel runs \(n):\(m) with \(scheme) (N:M runs bf16, weight-only int8, or int8 with dynamic activations at 1:4 and 2:4)")
                }
            }
        case let .blast(b1, b2, r, scheme, u, v, s):
            return try blastOperator(b1, b2, r, scheme, u, v, s)
        case let .csr(scheme, rowStart, columns, values):
            try Self.checkValues(values, "values", "scales", scales: out)
            guard case let .int8(v, scales) = values, scheme == .int8Dynamic || scheme == .int8(.channel) else {
                throw FormError(part: "values", reason: "CSR runs int8 with per-row scales (weight-only or with dynamic activations); \(scheme) is not available")
            }
            // the structure checks of fp32 CSR (rows, ranges, strictly increasing columns), naming the part
            _ = try csrOperator(rowStart: rowStart, columns: columns, values: v.map { Float($0) })
            return try Self.kernel("values", "scales") {
                if scheme == .int8Dynamic {
                    return try CSRInt8Weights(rowStart: rowStart, columns: columns, values: v, scales: scales, outputFeatures: out,
                                              inputFeatures: inputs, bias: bias)
                }
                return try CSRWeightOnlyInt8Weights(rowStart: rowStart, columns: columns, values: v, scales: scales, outputFeatures: out,
                                                    inputFeatures: inputs, bias: bias)
            }
        }
    }

    /// BLAST with quantized U and V: the factors are dequantised and handed to `BlastWeights`, whose
    /// factor kernels (W8A8 or weight-only int8) quantize them again — per row of U_i and of V_jᵀ, which reproduces the stored
    /// values (the largest |value| of each such row is 127) — or round them to bf16 (exact).
    private func blastOperator(_ b1: Int, _ b2: Int, _ r: Int, _ scheme: WeightQuantization, _ u: QuantizedValues,
                               _ v: QuantizedValues, _ s: [Float]) throws -> any LinearOperator {
        let (out, inputs) = (outputFeatures, inputFeatures)
        guard b1 >= 1, b2 >= 1, r >= 1, b1 <= out, b2 <= inputs else {
            throw FormError(part: "s", reason: "\(b1)×\(b2) blocks of rank \(r) do not fit a \(out)×\(inputs) weight")
        }
        guard s.count == b1 * b2 * r else { throw FormError(part: "s", reason: "\(s.count) values, expected \(b1)×\(b2)×\(r)") }
        if let bad = s.firstIndex(where: { !$0.isFinite }) { throw FormError(part: "s", reason: "element \(bad) is not finite (\(s[bad]))") }
        guard u.count == out * r else { throw FormError(part: "U", reason: "\(u.count) values, expected \(out)×\(r)") }
        guard v.count == inputs * r else { throw FormError(part: "V", reason: "\(v.count) values, expected \(inputs)×\(r)") }
        try Self.checkValues(u, "U", "U_scales", scales: out)
        try Self.checkValues(v, "V", "V_scales", scales: b2 * r)
        let storage: BlastFactorStorage
        switch (scheme, u, v) {
        case (.bf16, .bf16, .bf16): storage = .bf16
        case (.int8Dynamic, .int8, .int8): storage = .int8
        case (.int8(.channel), .int8, .int8): storage = .int8WeightOnly
        default: throw FormError(part: "U", reason: "BLAST factors run bf16, or int8 with per-row scales (weight-only or with dynamic activations); \(scheme) is not available")
        }
        var blockOf = [Int](repeating: 0, count: inputs)  // column → its column block (BlastWeights' split)
        for j in 0..<b2 { for c in (j * inputs / b2)..<((j + 1) * inputs / b2) { blockOf[c] = j } }
        let uf = u.floats { $0 / r }, vf = v.floats { blockOf[$0 / r] * r + $0 % r }
        if let bad = uf.firstIndex(where: { !$0.isFinite }) { throw FormError(part: "U_scales", reason: "U element \(bad) times its scale is not finite") }
        if let bad = vf.firstIndex(where: { !$0.isFinite }) { throw FormError(part: "V_scales", reason: "V element \(bad) times its scale is not finite") }
        return try Self.kernel("U", "U_scales") {
            try BlastWeights(u: uf, v: vf, s: s, outputFeatures: out, inputFeatures: inputs, rowBlocks: b1, columnBlocks: b2, rank: r,
                             bias: bias, factorStorage: storage)
        }
    }

    /// int8: `scales` scales, each finite and > 0, values within −127...127; bf16: values finite.
    private static func checkValues(_ values: QuantizedValues, _ part: String, _ scalesPart: String, scales expected: Int) throws {
        switch values {
        case let .int8(v, scales):
            guard scales.count == expected else { throw FormError(part: scalesPart, reason: "\(scales.count) scales, expected \(expected)") }
            if let bad = scales.firstIndex(where: { !isUsableScale($0) }) {
                throw FormError(part: scalesPart, reason: "scale \(bad) is \(scales[bad]); scales must be finite and positive, with 127 × scale finite")
            }
            if let bad = v.firstIndex(of: Int8.min) {
                throw FormError(part: part, reason: "value \(bad) is -128, outside the symmetric range -127...127 int8 weights are stored in")
            }
        case .bf16(let bits):
            if let bad = bits.firstIndex(where: { $0 & 0x7F80 == 0x7F80 }) {
                throw FormError(part: part, reason: "element \(bad) is not a finite bf16 value (bits 0x\(String(bits[bad], radix: 16)))")
            }
        }
    }

    /// Runs a kernel constructor, naming `part` (or `scalesPart` for a bad scale) in its errors.
    private static func kernel(_ part: String, _ scalesPart: String, _ make: () throws -> any LinearOperator) throws -> any LinearOperator {
        do {
            return try make()
        } catch let error as FormError {
            throw error
        } catch let error as QuantizationError {
            if case .invalidScale = error { throw FormError(part: scalesPart, reason: error.description) }
            throw FormError(part: part, reason: error.description)
        } catch {
            throw FormError(part: part, reason: "\(error)")
        }
    }

    /// The weight a quantized operator multiplies by (dequantised), row-major.
    static func quantizedDenseWeights(_ op: any LinearOperator) -> [Float]? {
        switch op {
        case let o as Int8Weights: return o.denseWeights()
        case let o as Int8DynamicWeights: return o.denseWeights()
        case let o as BF16Weights: return o.denseWeights()
        case let o as NMInt8Weights: return o.denseWeights()
        case let o as NMBF16Weights: return o.denseWeights()
        case let o as BlastWeights: return o.denseWeights()
        case let o as CSRInt8Weights: return o.denseWeights()
        case let o as NMWeightOnlyInt8Weights: return o.denseWeights()
        case let o as CSRWeightOnlyInt8Weights: return o.denseWeights()
        default: return nil
        }
    }
}
