import XCTest
import SparseKernels

/// Row-major indexing, row copies and in-place updates of `Matrix`.
final class MatrixTests: XCTestCase {
    func testRowMajorIndexing() {
        var m = Matrix(rows: 2, columns: 3, values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(m[0, 2], 3)
        XCTAssertEqual(m[1, 0], 4)
        XCTAssertEqual(m.row(1), [4, 5, 6])
        m[1, 2] = 9
        XCTAssertEqual(m.values, [1, 2, 3, 4, 5, 9])
        m.values[0] = -1
        XCTAssertEqual(m[0, 0], -1)
    }

    func testRepeatingAndEmptyShapes() {
        let filled = Matrix(rows: 2, columns: 2, repeating: 0.5)
        XCTAssertEqual(filled.values, [0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(Matrix(rows: 3, columns: 0).values, [])
        XCTAssertEqual(Matrix(rows: 0, columns: 4).rows, 0)
        XCTAssertNotEqual(Matrix(rows: 1, columns: 4), Matrix(rows: 4, columns: 1), "same values, other shape")
    }
}
