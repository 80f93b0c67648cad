@testable import SparseServe

extension ServerMetrics {
    /// `GET /metrics` as text.
    var text: String { String(decoding: exposition(), as: UTF8.self) }

    /// The value of the sample line `series` (name with its labels as rendered), nil when absent.
    func value(_ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}
