import SparseCompression
import SparseModels
import XCTest
@testable import SparseServe

/// A `"compression"` block on its own (`inspect --compression`): methods, data-aware options with
/// paths resolved and defaults kept, and errors naming the field without the endpoint around it.
final class CompressionConfigTests: XCTestCase {
    func testMethodsAndDefaults() throws {
        let nm = try CompressionConfig.parse(#"{"method": "nm", "n": 2, "m": 4}"#)
        XCTAssertEqual(nm.method, "nm")
        XCTAssertEqual(nm.plan.method, .nm(n: 2, m: 4))
        XCTAssertTrue(nm.isSpecified)
        XCTAssertNil(nm.calibration, "no data-aware keys: weight-only compression")
        let unspecified = CompressionConfig()
        XCTAssertFalse(unspecified.isSpecified)
        XCTAssertEqual(unspecified.plan.method, .dense)
    }

    func testCalibrationOptions() throws {
        let relative = try XCTUnwrap(CompressionConfig.parse(#"{"method": "nm", "n": 2, "m": 4, "calibration": "data/../cal.txt"}"#).calibration)
        XCTAssertEqual(relative.path, URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("cal.txt").path)
        XCTAssertEqual(relative, CalibrationOptions(path: relative.path), "other options keep their defaults")
        let own = try XCTUnwrap(CompressionConfig.parse(#"{"method": "csr", "density": 0.5, "calibration": "default"}"#).calibration)
        XCTAssertNil(own.path, "'default' means the model folder's own calibration set")
        let full = try XCTUnwrap(CompressionConfig.parse(#"""
            {"method": "nm", "n": 2, "m": 4, "calibration": {"path": "/abs/c.safetensors", "samples": 64},
             "saliency": "activation", "refit": false, "refitIterations": 7, "damping": 0.5}
            """#).calibration)
        XCTAssertEqual(full, CalibrationOptions(path: "/abs/c.safetensors", samples: 64, saliency: .activation, refit: false, damping: 0.5,
                                                refitIterations: 7))
        let onlySaliency = try XCTUnwrap(CompressionConfig.parse(#"{"method": "nm", "n": 2, "m": 4, "saliency": "magnitude"}"#).calibration)
        XCTAssertEqual(onlySaliency.saliency, .magnitude)
        XCTAssertNil(onlySaliency.path)
    }

    func testErrorsNameTheField() {
        let cases: [(String, String, String)] = [
            (#"{"method": "nm", "n": 2, "m": 4, "saliency": "random"}"#, "compression.saliency", "'random' is not one of magnitude, activation, hessian"),
            (#"{"method": "nm", "n": 2, "m": 4, "refit": 1}"#, "compression.refit", "must be true or false"),
            (#"{"method": "nm", "n": 2, "m": 4, "damping": 0}"#, "compression.damping", "(0, 1]"),
            (#"{"method": "nm", "n": 2, "m": 4, "damping": 1.5}"#, "compression.damping", "(0, 1]"),
            (#"{"method": "nm", "n": 2, "m": 4, "refitIterations": 0}"#, "compression.refitIterations", "out of range 1...1000"),
            (#"{"method": "nm", "n": 2, "m": 4, "calibration": {"samples": 0}}"#, "compression.calibration.samples", "out of range"),
            (#"{"method": "nm", "n": 2, "m": 4, "calibration": {"file": "x"}}"#, "compression.calibration.file", "unknown key"),
            (#"{"method": "nm", "n": 2, "m": 4, "calibration": 5}"#, "compression.calibration", "must be an object"),
            (#"{"method": "zip"}"#, "compression.method", "zip"),
            ("{", "compression", "invalid JSON"),
        ]
        for (text, field, reason) in cases {
            do {
                _ = try CompressionConfig.parse(text)
                XCTFail("accepted \(text)")
            } catch let error as ConfigError {
                XCTAssertEqual(error.field, field, text)
                XCTAssertTrue(error.reason.contains(reason), "\(text): \(error.reason)")
            } catch {
                XCTFail("\(text): \(error)")
            }
        }
    }
}
