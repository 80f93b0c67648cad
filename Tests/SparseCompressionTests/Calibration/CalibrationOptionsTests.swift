import Foundation
import SparseTestSupport
import XCTest
import SparseCompression

/// The settings of data-aware compression: the defaults (the best measured), the spellings the
/// compression JSON uses, the line printed for a run, and the model folder's default file.
final class CalibrationOptionsTests: XCTestCase {
    func testDefaultsAreOBSWithRefitAndGPTQ() {
        let o = CalibrationOptions()
        XCTAssertNil(o.path)
        XCTAssertEqual(o.samples, 512)
        XCTAssertEqual(o.saliency, .hessian)
        XCTAssertTrue(o.refit)
        XCTAssertEqual(o.damping, 0.01)
        XCTAssertEqual(o.refitIterations, 15)
        XCTAssertEqual(o.rounding, .gptq)
        XCTAssertLessThanOrEqual(o.samples, CalibrationOptions.maximumSamples)
        XCTAssertNotEqual(o, CalibrationOptions(refit: false))
    }

    /// The raw values are what `"saliency"` and `"rounding"` take in the compression JSON.
    func testSpellings() {
        XCTAssertEqual(CalibrationOptions.Saliency.allCases.map(\.rawValue), ["magnitude", "activation", "hessian"])
        XCTAssertEqual(CalibrationOptions.Rounding.allCases.map(\.rawValue), ["nearest", "gptq"])
    }

    func testDescriptionNamesEverySetting() {
        let given = CalibrationOptions(path: "/data/c.txt", samples: 64, saliency: .activation, refit: false, damping: 0.05,
                                       refitIterations: 3, rounding: .nearest)
        XCTAssertEqual(given.description,
                       "calibration /data/c.txt samples=64 saliency=activation refit=false (3 iterations) damping=0.05 rounding=nearest")
        XCTAssertTrue(CalibrationOptions().description.hasPrefix("calibration (model default) samples=512 saliency=hessian"),
                      CalibrationOptions().description)
    }

    func testDefaultFilePrefersTextThenSafetensors() throws {
        let dir = try makeTemporaryDirectory()
        XCTAssertNil(CalibrationOptions.defaultFile(inModel: dir.path))
        try Data([0]).write(to: dir.appendingPathComponent("calibration.safetensors"))
        XCTAssertEqual(CalibrationOptions.defaultFile(inModel: dir.path), dir.path + "/calibration.safetensors")
        try Data("a\n".utf8).write(to: dir.appendingPathComponent("calibration.txt"))
        XCTAssertEqual(CalibrationOptions.defaultFile(inModel: dir.path), dir.path + "/calibration.txt")
        XCTAssertEqual(CalibrationOptions.defaultFile(inModel: dir.path + "/"), dir.path + "/calibration.txt", "no doubled slash")
        XCTAssertNil(CalibrationOptions.defaultFile(inModel: dir.path + "/missing"))
    }
}
