import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// What recovery training reads from an encoder, on the tiny synthetic BERT of
/// BertEncoderLoaderTests (hidden 4, one layer): the embedding states (word + position +
/// token-type embeddings through their LayerNorm, positions counted per sequence), the sequences
/// refused, and a copy of the encoder with other LayerNorm gains and biases.
final class BertEncoderModelTrainingTests: XCTestCase {
    private func tiny() throws -> BertEncoderModel { try BertEncoderLoaderTests.meanPooled(self) }

    private let sequences: [[Int32]] = [[2, 5, 6, 3], [2, 7, 3]]  // [CLS] hello world [SEP], [CLS] sparse [SEP]

    /// LayerNorm(word[id] + position[p] + tokenType[0]) for each token, p counted from each sequence's start.
    private func reference(_ sequences: [[Int32]]) -> [Float] {
        let t = Dictionary(uniqueKeysWithValues: BertEncoderLoaderTests.tensors().map { ($0.name, $0.values) })
        let h = BertEncoderLoaderTests.hidden
        var out: [Float] = []
        let word = t["embeddings.word_embeddings.weight"]!, position = t["embeddings.position_embeddings.weight"]!
        let type = t["embeddings.token_type_embeddings.weight"]!, gamma = t["embeddings.LayerNorm.weight"]!, beta = t["embeddings.LayerNorm.bias"]!
        for ids in sequences {
            for (p, id) in ids.enumerated() {
                var e = [Double](repeating: 0, count: h)
                for c in 0..<h { e[c] = Double(word[Int(id) * h + c]) + Double(position[p * h + c]) + Double(type[c]) }
                let mean = e.reduce(0, +) / Double(h)
                var variance = 0.0
                for v in e { variance += (v - mean) * (v - mean) }
                variance /= Double(h)
                for c in 0..<h {
                    let normalised = Float((e[c] - mean) / (variance + 1e-12).squareRoot())
                    out.append(normalised * gamma[c] + beta[c])
                }
            }
        }
        return out
    }

    func testEmbeddingStatesAreTheNormalisedEmbeddingSums() throws {
        let model = try tiny()
        let states = try model.embeddingStates(sequences)
        XCTAssertEqual(states.count, 7 * 4)
        assertClose(states, reference(sequences), tolerance: 1e-4, "packed back to back")
        assertClose(try model.embeddingStates([sequences[1]]), Array(states[16...]), tolerance: 1e-6, "positions restart with each sequence")
    }

    func testSequencesItCannotEmbedAreRefused() throws {
        let model = try tiny()
        let cases: [([[Int32]], String)] = [
            ([[2, 3], []], "sequence 1 has 0 tokens; the model takes 1...16"),
            ([[Int32](repeating: 5, count: 17)], "sequence 0 has 17 tokens; the model takes 1...16"),
            ([[2, 3], [2, 9, 3]], "sequence 1 has token id 9, outside 0..<9"),
            ([[2, -1, 3]], "sequence 0 has token id -1, outside 0..<9"),
        ]
        for (bad, message) in cases {
            XCTAssertThrowsError(try model.embeddingStates(bad), message) { error in
                XCTAssertEqual("\(error)", message)
                XCTAssertTrue(error is InvalidInputError, "\(type(of: error))")
            }
        }
        XCTAssertNoThrow(try model.embeddingStates([[Int32](repeating: 5, count: 16)]), "16 tokens")
    }

    func testReplacingNormsGivesACopyWithTheNewGainsAndBiases() throws {
        let model = try tiny()
        let before = try model.tokenStates(sequences)
        assertClose(try model.replacingNorms([:]).tokenStates(sequences), before, tolerance: 0, "no tensors: the same encoder")
        // A zero gain on the last LayerNorm leaves its bias as every token's state.
        let bias: [Float] = [0.5, -1, 2, 0.25]
        let flat = try model.replacingNorms(["encoder.layer.0.output.LayerNorm.weight": [0, 0, 0, 0],
                                             "encoder.layer.0.output.LayerNorm.bias": bias])
        assertClose(try flat.tokenStates(sequences), (0..<7).flatMap { _ in bias }, tolerance: 1e-6, "every token is the bias")
        let shifted = try model.replacingNorms(["encoder.layer.0.attention.output.LayerNorm.bias": [1, 1, 1, 1]])
        XCTAssertNotEqual(try shifted.tokenStates(sequences), before, "the attention LayerNorm is replaced too")
        assertClose(try model.tokenStates(sequences), before, tolerance: 0, "the original encoder is unchanged")
        XCTAssertEqual(try flat.embed(tokenSequences: [sequences[0]]).first?.count, 4)
    }

    func testReplacingNormsRefusesWhatFitsNoLayerNorm() throws {
        let model = try tiny()
        assertError(try model.replacingNorms(["encoder.layer.0.output.LayerNorm.weight": [1, 1, 1]]),
                    contains: ["encoder.layer.0.output.LayerNorm.weight: 3 values for a hidden size of 4"])
        assertError(try model.replacingNorms(["encoder.layer.1.output.LayerNorm.weight": [1, 1, 1, 1],
                                              "encoder.layer.0.output.LayerNorm.bias": [0, 0, 0, 0]]),
                    contains: ["replacingNorms: 1 tensors name no encoder LayerNorm"])
        assertError(try model.replacingNorms(["embeddings.LayerNorm.weight": [1, 1, 1, 1]]), contains: ["name no encoder LayerNorm"])
    }
}
