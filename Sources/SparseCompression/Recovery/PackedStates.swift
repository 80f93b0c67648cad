import SparseKernels

/// Hidden states of a set of token sequences packed back to back (one row of `width` per token,
/// sequence i at rows `spans[i]`), as the encoder runs them.
struct PackedStates {
    var spans: [TransformerKernels.Sequence]
    var width: Int
    var values: [Float]

    var tokens: Int { spans.last.map { $0.start + $0.length } ?? 0 }

    /// Where sequences of `lengths` tokens sit when packed back to back.
    static func spans(lengths: [Int]) -> [TransformerKernels.Sequence] {
        var spans: [TransformerKernels.Sequence] = [], start = 0
        for length in lengths {
            spans.append(.init(start: start, length: length))
            start += length
        }
        return spans
    }

    /// The states of sequences `indices`, gathered back to back.
    func gather(_ indices: some Collection<Int>) -> PackedStates {
        var values: [Float] = [], spans: [TransformerKernels.Sequence] = []
        values.reserveCapacity(indices.reduce(0) { $0 + self.spans[$1].length } * width)
        for i in indices {
            let s = self.spans[i]
            spans.append(.init(start: values.count / width, length: s.length))
            values.append(contentsOf: self.values[s.start * width ..< (s.start + s.length) * width])
        }
        return PackedStates(spans: spans, width: width, values: values)
    }

    /// Consecutive runs of sequences of about `tokens` tokens each (at least one sequence per run).
    func chunks(tokens limit: Int) -> [Range<Int>] {
        var runs: [Range<Int>] = [], i = 0
        while i < spans.count {
            var j = i, count = 0
            while j < spans.count && (j == i || count + spans[j].length <= limit) {
                count += spans[j].length
                j += 1
            }
            runs.append(i..<j)
            i = j
        }
        return runs
    }
}

extension TrainableEncoderLayer {
    /// The layer's outputs for every sequence of `states` (run in chunks of about 4096 tokens, nothing kept).
    func forwardAll(_ states: PackedStates) -> PackedStates {
        var out = states
        for run in states.chunks(tokens: 4096) {
            let first = states.spans[run.lowerBound].start, w = states.width
            let part = states.gather(run)
            let (y, _) = forward(part.values, spans: part.spans, keep: false)
            out.values.replaceSubrange(first * w ..< first * w + y.count, with: y)
        }
        return out
    }
}
