import SparseCompression
import SparseKernels
import XCTest
@testable import SparseModels

/// A built layer's facts and the operator that runs: the relative error given or measured, the
/// density against the layer's dense size, and the dense-versus-compressed timing only for
/// unpinned N:M, CSR and BLAST layers (and N:M W8A8 against dense W8A8) when timing is on.
final class BuiltLinearLayerTests: XCTestCase {
    private let rows = 32, columns = 64

    private func packed(_ method: LayerCompression) throws -> PackedLayer {
        let w = (0..<rows * columns).map { Float(($0 * 37) % 101) / 50 - 1 }
        return try method.pack(weights: w, outputFeatures: rows, inputFeatures: columns, bias: nil).packed
    }

    private var reference: [Float] { (0..<rows * columns).map { Float(($0 * 37) % 101) / 50 - 1 } }

    func testErrorGivenOrMeasured() throws {
        let nm = try packed(.nm(n: 2, m: 4))
        let given = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: reference, relativeError: 0.123, time: false)
        XCTAssertEqual(given.facts.relativeError, 0.123, "an artifact's recorded error is kept")
        let measured = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: reference, relativeError: nil, time: false)
        let expected = LayerCompression.relativeError(reference, try XCTUnwrap(nm.denseWeights(measured.compressed)))
        XCTAssertEqual(measured.facts.relativeError, expected)
        XCTAssertGreaterThan(expected, 0.3, "2:4 drops half the weights")
        let unknown = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: nil, relativeError: nil, time: false)
        XCTAssertEqual(unknown.facts.relativeError, 0, "no reference: 0")
    }

    func testFactsOfTheStoredForm() throws {
        let nm = try packed(.nm(n: 2, m: 4))
        let built = try BuiltLinearLayer(packed: nm, parameters: ["n": .int(2)], pinned: true, reference: nil, relativeError: nil, time: true)
        XCTAssertEqual(built.facts.method, "nm")
        XCTAssertEqual(built.facts.parameters, ["n": .int(2)])
        XCTAssertTrue(built.facts.pinned)
        XCTAssertEqual(built.facts.density, Double(rows * columns / 2) / Double(rows * columns + rows), accuracy: 1e-12)
        XCTAssertEqual(built.facts.storedBytes, nm.storedBytes)
        XCTAssertEqual(built.facts.denseBytes, nm.denseBytes)
        XCTAssertNil(built.facts.timing, "pinned: never timed")
        XCTAssertTrue(built.op === built.compressed)
    }

    /// Timing picks whichever ran faster here; either way the choice is recorded and the result is
    /// the compressed weights' result.
    func testTimedLayersRecordTheChoice() throws {
        let nm = try packed(.nm(n: 2, m: 4))
        let built = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: nil, relativeError: nil, time: true)
        let timing = try XCTUnwrap(built.facts.timing)
        XCTAssertGreaterThan(timing.compressedMicroseconds, 0)
        XCTAssertGreaterThan(timing.denseMicroseconds, 0)
        XCTAssertEqual(timing.runsDense, built.op is ChosenDense)
        XCTAssertEqual(timing.runsDense, timing.denseMicroseconds < 0.9 * timing.compressedMicroseconds)
        let x = Matrix(rows: 3, columns: columns, values: (0..<3 * columns).map { Float($0 % 9) - 4 })
        let a = built.op.apply(x).values, b = built.compressed.apply(x).values
        for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-3) }
        let dense = try BuiltLinearLayer(packed: try packed(.dense), parameters: [:], pinned: false, reference: nil, relativeError: nil, time: true)
        XCTAssertNil(dense.facts.timing, "dense: nothing to time against")
        XCTAssertNil(try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: nil, relativeError: nil, time: false).facts.timing)
    }

    /// An N:M W8A8 layer is timed against its dense W8A8 form (on AMX CPUs that form wins from 16
    /// rows); either runs the same int32 sums, so the outputs are equal bit for bit.
    func testTimedNMInt8LayersRecordTheChoice() throws {
        let nm = try packed(.nm(n: 2, m: 4)).quantized(.int8Dynamic)
        let built = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: false, reference: nil, relativeError: nil, time: true)
        let timing = try XCTUnwrap(built.facts.timing)
        XCTAssertEqual(timing.runsDense, timing.denseMicroseconds < 0.9 * timing.compressedMicroseconds)
        XCTAssertEqual(built.compressed.storage, "nm 2:4 int8 dynamic")
        XCTAssertEqual(built.op.storage.hasPrefix("int8 dynamic (nm 2:4 int8 dynamic timed slower"), timing.runsDense, built.op.storage)
        let x = Matrix(rows: 20, columns: columns, values: (0..<20 * columns).map { Float($0 % 9) - 4 })
        XCTAssertEqual(built.op.apply(x, activation: .gelu).values, built.compressed.apply(x, activation: .gelu).values)
        let pinned = try BuiltLinearLayer(packed: nm, parameters: [:], pinned: true, reference: nil, relativeError: nil, time: true)
        XCTAssertNil(pinned.facts.timing)
        XCTAssertTrue(pinned.op === pinned.compressed)
    }

    func testCompressionErrorNamesLayerAndMethod() {
        struct Odd: Error, CustomStringConvertible { var description: String { "65 inputs are not a multiple of 4" } }
        XCTAssertEqual("\(LayerCompressionError(layer: "fc2", method: .nm(n: 2, m: 4), underlying: Odd()))",
                       "layer 'fc2' cannot be compressed as nm 2:4: 65 inputs are not a multiple of 4")
    }
}
