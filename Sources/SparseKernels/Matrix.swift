/// A row-major `rows × columns` matrix of `Float` (a batch of feature vectors, one per row).
public struct Matrix: Sendable, Equatable {
    public private(set) var rows: Int
    public private(set) var columns: Int
    /// Row-major elements. Mutate in place freely, but keep `values.count == rows * columns`.
    public var values: [Float]

    public init(rows: Int, columns: Int, values: [Float]) {
        precondition(rows >= 0 && columns >= 0, "Matrix dimensions must be non-negative")
        precondition(values.count == rows * columns, "Matrix \(rows)×\(columns) needs \(rows * columns) values, got \(values.count)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public init(rows: Int, columns: Int, repeating value: Float = 0) {
        self.init(rows: rows, columns: columns, values: [Float](repeating: value, count: rows * columns))
    }

    public subscript(row: Int, column: Int) -> Float {
        get { values[row * columns + column] }
        set { values[row * columns + column] = newValue }
    }

    /// A copy of one row.
    public func row(_ index: Int) -> [Float] {
        Array(values[index * columns ..< (index + 1) * columns])
    }
}
