import Foundation
import XCTest
@testable import SparseModels

/// Unknown-key refusal and the one-line decoding errors every manifest reader reports.
final class StrictDecodingTests: XCTestCase {
    private struct Layer: Decodable {
        var activation: String
        var units: Int?
        enum CodingKeys: String, CodingKey, CaseIterable { case activation, units }
        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            activation = try c.decode(String.self, forKey: .activation)
            units = try c.decodeIfPresent(Int.self, forKey: .units)
        }
    }

    private struct Document: Decodable { var layers: [Layer] }

    private func message(_ json: String) -> String? {
        do {
            _ = try JSONDecoder().decode(Document.self, from: Data(json.utf8))
            return nil
        } catch let error as DecodingError {
            return error.conciseDescription
        } catch {
            return "not a DecodingError: \(error)"
        }
    }

    func testUnknownKeysAreNamedWithTheirPath() {
        XCTAssertNil(message(#"{"layers": [{"activation": "relu", "units": 3}]}"#))
        XCTAssertEqual(message(#"{"layers": [{"activation": "relu"}, {"activation": "relu", "zeta": 1, "beta": 2}]}"#),
                       "layers[1].beta: unknown key 'beta' (allowed: activation, units)",
                       "the first unknown key in sorted order is reported")
    }

    func testEachErrorKindReadsAsOneLine() {
        XCTAssertEqual(message(#"{"layers": [{"activation": 3}]}"#), "layers[0].activation: expected a string")
        XCTAssertEqual(message(#"{"layers": [{"activation": "relu", "units": "3"}]}"#), "layers[0].units: expected an integer")
        XCTAssertEqual(message(#"{"layers": [{"activation": null}]}"#), "layers[0].activation: expected a string, found null")
        XCTAssertEqual(message(#"{"layers": [{}]}"#), "layers[0]: required key 'activation' is missing")
        XCTAssertEqual(message(#"{"layers": {}}"#), "layers: expected an array")
        XCTAssertEqual(message(#"{}"#), "required key 'layers' is missing")
        let corrupt = message(#"{"layers": [}"#) ?? ""
        XCTAssertFalse(corrupt.isEmpty)
        XCTAssertFalse(corrupt.contains("\n"), corrupt)
    }

    func testCodingPathRendering() {
        XCTAssertEqual(renderCodingPath([]), "")
        XCTAssertEqual(renderCodingPath([AnyCodingKey("a"), AnyCodingKey(intValue: 2)!, AnyCodingKey("b")]), "a[2].b")
        XCTAssertEqual(renderCodingPath([AnyCodingKey(intValue: 0)!, AnyCodingKey("x")]), "[0].x")
        XCTAssertNil(AnyCodingKey("k").intValue)
        XCTAssertEqual(AnyCodingKey(stringValue: "k")?.stringValue, "k")
    }
}
