/// Small dense double-precision helpers for the BLAST tests' references (row-major).
enum DoubleMatrix {
    static func transpose(_ a: [Double], _ rows: Int, _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: a.count)
        for x in 0..<rows { for y in 0..<cols { out[y * rows + x] = a[x * cols + y] } }
        return out
    }

    /// (a × k) · (k × c)
    static func multiply(_ a: [Double], _ rows: Int, _ inner: Int, _ b: [Double], _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        for x in 0..<rows { for k in 0..<inner where a[x * inner + k] != 0 {
            for y in 0..<cols { out[x * cols + y] += a[x * inner + k] * b[k * cols + y] }
        } }
        return out
    }
}
