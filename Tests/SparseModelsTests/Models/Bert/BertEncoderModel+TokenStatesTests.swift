import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// Token states and unnormalised pooling on the tiny synthetic BERT of BertEncoderLoaderTests
/// (hidden 4, one layer; mean pooling, normalised): packed states of every token, pooled vectors
/// that are the model's embeddings once normalised, and refusals of sequences it cannot run.
final class BertEncoderModelTokenStatesTests: XCTestCase {
    private func tiny() throws -> BertEncoderModel { try BertEncoderLoaderTests.meanPooled(self) }

    private let sequences: [[Int32]] = [[2, 5, 6, 3], [2, 7, 3]]  // [CLS] hello world [SEP], [CLS] sparse [SEP]

    func testStatesPoolToTheModelsEmbeddings() throws {
        let model = try tiny()
        let h = model.hiddenSize
        XCTAssertEqual(h, 4)
        XCTAssertTrue(model.normalizesEmbeddings)
        let states = try model.tokenStates(sequences)
        XCTAssertEqual(states.count, 7 * h)
        let pooled = try model.pooledEmbeddings(sequences, normalize: false)
        for c in 0..<h {
            XCTAssertEqual(pooled[c], (0..<4).map { states[$0 * h + c] }.reduce(0, +) / 4, accuracy: 1e-5, "mean of sequence 0")
            XCTAssertEqual(pooled[h + c], (4..<7).map { states[$0 * h + c] }.reduce(0, +) / 3, accuracy: 1e-5, "mean of sequence 1")
        }
        let unit = try model.pooledEmbeddings(sequences, normalize: true)
        let embeddings = try model.embed(texts: ["hello world", "sparse"])
        for i in 0..<2 {
            let row = Array(pooled[i * h ..< (i + 1) * h]), norm = row.map { $0 * $0 }.reduce(0, +).squareRoot()
            assertClose(Array(unit[i * h ..< (i + 1) * h]), row.map { $0 / norm }, tolerance: 1e-5, "normalised pooling")
            assertClose(embeddings[i], Array(unit[i * h ..< (i + 1) * h]), tolerance: 1e-5, "the model's own embedding")
        }
        assertClose(try model.tokenStates([[2, 3]]), Array(try model.tokenStates([[2, 3], [2, 5, 3]]).prefix(2 * h)),
                    tolerance: 1e-5, "a sequence's states do not depend on the others in the batch")
    }

    func testSequencesItCannotRunAreRefused() throws {
        let model = try tiny()
        for bad: [[Int32]] in [[[]], [[2, 99, 3]], [[2, -1, 3]], [[Int32]](repeating: [2, 5, 3], count: 1).map { $0 + [Int32](repeating: 5, count: 14) }] {
            XCTAssertThrowsError(try model.tokenStates(bad), "\(bad)") { error in
                XCTAssertEqual("\(error)", "sequence 0 must have 1...16 token ids in 0..<9")
            }
        }
        XCTAssertEqual(try model.tokenStates([]), [])
    }
}
