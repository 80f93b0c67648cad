/// How a bert-encoder batch is split across kernel threads: whole sequences per thread when the
/// batch is large enough and can be balanced, with costs tuned for MiniLM-sized layers.
enum BertBatchSplit {
    /// Work below which a batch is not split into per-thread groups (≈ 2 ms on one core).
    static let splitThresholdFlops = 200_000_000

    /// Contiguous ranges of sequences, one per thread, of about equal cost (linear layers grow
    /// with the token count, attention with its square); a single range when the batch is small
    /// or cannot be balanced within 25 %.
    static func groups(lengths: [Int], parts: Int, splitThreshold: Int) -> [Range<Int>] {
        let whole = [0..<lengths.count]
        guard parts > 1, lengths.count >= parts else { return whole }
        let costs = lengths.map { $0 * (2300 + $0) }  // ≈ flops / 9216 for MiniLM-sized layers
        let total = costs.reduce(0, +)
        guard total * 9216 >= splitThreshold else { return whole }
        var ranges: [Range<Int>] = [], start = 0, accumulated = 0
        for part in 1...parts {
            let target = total * part / parts
            var end = start
            while end < lengths.count && (part == parts || accumulated + costs[end] / 2 < target || end == start) {
                accumulated += costs[end]
                end += 1
            }
            ranges.append(start..<end)
            start = end
        }
        let largest = ranges.map { costs[$0].reduce(0, +) }.max() ?? total
        return ranges.allSatisfy { !$0.isEmpty } && largest * 4 <= total * 5 / parts ? ranges : whole
    }

    /// Tokens a group encoded on one thread should hold so that its FFN activations (`ffn` floats
    /// per token) take about 3/4 of a 1 MB L2 (Zen 4's): 128 for MiniLM. Larger groups stream
    /// every layer's activations through L3 (measured on MiniLM 8 × 128, one thread, CPU time:
    /// groups of 128 tokens 5–8 % faster than the whole batch, 256 in between).
    static func cacheTokens(ffn: Int) -> Int { max(1, 196_608 / max(1, ffn)) }

    /// Runs of consecutive sequences of at most `limit` tokens in all (a longer sequence alone),
    /// covering `lengths` in order.
    static func cacheGroups(lengths: [Int], limit: Int) -> [Range<Int>] {
        var groups: [Range<Int>] = [], start = 0
        while start < lengths.count {
            var end = start + 1, tokens = lengths[start]
            while end < lengths.count && tokens + lengths[end] <= limit {
                tokens += lengths[end]
                end += 1
            }
            groups.append(start..<end)
            start = end
        }
        return groups
    }
}
