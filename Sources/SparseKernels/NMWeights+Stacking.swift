extension NMWeights {
    /// The layers' output rows one after another in one operator, e.g. a BERT layer's query, key
    /// and value as one [3H × H] projection, so a small batch pays one call (one input copy, one
    /// pool hand-off, one split decision over all panels) instead of three. The parts need the
    /// same inputs and n:m. Every row keeps its layer's values and index positions slot for slot
    /// (padding slots and kept zeros included), so it computes exactly what it did alone. The
    /// bias is the parts' biases (zeros for a part without one), or nil when no part has one.
    /// nil when the parts do not stack.
    public static func stacking(_ parts: [NMWeights]) -> NMWeights? {
        guard let first = parts.first,
              parts.allSatisfy({ $0.inputFeatures == first.inputFeatures && $0.n == first.n && $0.m == first.m }) else { return nil }
        let (k, n, m) = (first.inputFeatures, first.n, first.m)
        let rows = parts.reduce(0) { $0 + $1.outputFeatures }
        let (panels, groups) = packedShape(outputFeatures: rows, inputFeatures: k, m: m)
        var values = [Float](repeating: 0, count: panels * groups * n * 16)
        var words = [UInt64](repeating: 0, count: panels * groups * n)
        let positionMask: UInt64 = m == 4 ? 3 : 15
        var row0 = 0
        for part in parts {
            let partValues = part.packedValues, partWords = part.packedIndexWords
            for r in 0..<part.outputFeatures {
                let (sp, sj, dp, dj) = (r / 16, r % 16, (row0 + r) / 16, (row0 + r) % 16)
                let (from, to) = (laneShift(m: m, lane: sj), laneShift(m: m, lane: dj))
                for e in 0..<(groups * n) {
                    let (se, de) = (sp * groups * n + e, dp * groups * n + e)
                    values[de * 16 + dj] = partValues[se * 16 + sj]
                    words[de] |= ((partWords[se] >> UInt64(from)) & positionMask) << UInt64(to)
                }
            }
            row0 += part.outputFeatures
        }
        // Padding lanes of the last panel: weight 0 at distinct positions (slot s at position s).
        for row in rows..<(panels * 16) {
            let (dp, dj) = (row / 16, row % 16)
            for g in 0..<groups {
                for s in 0..<n { words[(dp * groups + g) * n + s] |= UInt64(s) << UInt64(laneShift(m: m, lane: dj)) }
            }
        }
        let bias: [Float]? = parts.contains { $0.bias != nil }
            ? parts.flatMap { $0.bias ?? [Float](repeating: 0, count: $0.outputFeatures) } : nil
        return try? NMWeights(packedValues: values, indexWords: words, outputFeatures: rows, inputFeatures: k, n: n, m: m, bias: bias)
    }
}
