import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

final class WordPieceTokenizerTests: XCTestCase {
    struct Cases: Decodable {
        struct Case: Decodable { var text: String; var ids: [Int32] }
        var cases: [Case]
    }

    /// A tiny vocabulary for tests that need no model files.
    func tinyTokenizer(lowercase: Bool = true) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff",
                                            "hello", "world", "!", ",", "中", "cafe", "##s", "a", "Hello"],
                               lowercase: lowercase)
    }

    func testEveryFixtureStringGivesHuggingFaceIds() throws {
        let tokenizer = try WordPieceTokenizer(vocabularyFile: MiniLMFiles.requireVocabulary().path)
        let cases = try MiniLMFiles.fixture("tokenizer-cases.json", as: Cases.self).cases
        XCTAssertGreaterThanOrEqual(cases.count, 500)
        var mismatches = 0
        for c in cases {
            let ids = tokenizer.encode(c.text).ids
            if ids != c.ids {
                mismatches += 1
                if mismatches <= 10 {
                    let scalars = c.text.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " ")
                    XCTFail("\(c.text.debugDescription) [\(scalars)]\n  expected \(c.ids)\n  got      \(ids)\n  pieces \(tokenizer.pieces(c.text))")
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(mismatches) of \(cases.count) strings tokenized differently")
    }

    /// `encodeWithOffsets` gives `encode`'s ids for every fixture string, with byte ranges that lie
    /// in the text, in order.
    func testOffsetsKeepTheIdsOfEveryFixtureString() throws {
        let tokenizer = try WordPieceTokenizer(vocabularyFile: MiniLMFiles.requireVocabulary().path)
        for c in try MiniLMFiles.fixture("tokenizer-cases.json", as: Cases.self).cases {
            let bytes = Array(c.text.utf8)
            let (ids, offsets) = try tokenizer.encodeWithOffsets(utf8: bytes)
            XCTAssertEqual(ids, c.ids, c.text.debugDescription)
            XCTAssertEqual(offsets.count, ids.count)
            XCTAssertNil(offsets.first ?? 0..<0)
            XCTAssertNil(offsets.last ?? 0..<0)
            let ranges = offsets.compactMap { $0 }
            XCTAssertEqual(ranges.count, ids.count - 2)
            for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertLessThanOrEqual(a.lowerBound, b.lowerBound, c.text.debugDescription) }
            XCTAssertTrue(ranges.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= bytes.count && !$0.isEmpty }, c.text.debugDescription)
        }
    }

    func testOffsetsAreUTF8ByteRangesOfThePieces() throws {
        let t = try tinyTokenizer()
        func offsets(_ text: String) throws -> [Range<Int>?] { try t.encodeWithOffsets(utf8: Array(text.utf8)).offsets }
        XCTAssertEqual(try offsets("Hello, WORLD!"), [nil, 0..<5, 5..<6, 7..<12, 12..<13, nil])
        XCTAssertEqual(try offsets("unaffable"), [nil, 0..<2, 2..<5, 5..<9, nil])
        XCTAssertEqual(try offsets("CAFÉS"), [nil, 0..<5, 5..<6, nil], "É is two bytes and part of 'cafe'")
        XCTAssertEqual(try offsets("a中a"), [nil, 0..<1, 1..<4, 4..<5, nil])
        XCTAssertEqual(try offsets("[MASK] hello"), [nil, 0..<6, 7..<12, nil])
        XCTAssertEqual(try offsets("unaffx hello"), [nil, 0..<6, 7..<12, nil], "[UNK] covers its whole word")
        XCTAssertThrowsError(try t.encodeWithOffsets(utf8: [0xFF]))
        XCTAssertEqual(t.token(for: 6), "##aff")
        XCTAssertNil(t.token(for: 99))
        XCTAssertTrue(t.isSpecial(2))
        XCTAssertFalse(t.isSpecial(9))
    }

    func testKnownMiniLMIds() throws {
        let tokenizer = try WordPieceTokenizer(vocabularyFile: MiniLMFiles.requireVocabulary().path)
        XCTAssertEqual(tokenizer.vocabularySize, 30522)
        XCTAssertEqual(tokenizer.encode("hello world").ids, [101, 7592, 2088, 102])
        XCTAssertEqual(tokenizer.encode("").ids, [101, 102])
    }

    func testGreedyLongestMatchAndUnknown() throws {
        let t = try tinyTokenizer()
        XCTAssertEqual(t.pieces("unaffable"), ["un", "##aff", "##able"])
        XCTAssertEqual(t.encode("unaffable").ids, [2, 5, 6, 7, 3])
        // "unaffx" has no piece for "x": the whole word is [UNK], not a partial match.
        XCTAssertEqual(t.encode("unaffx hello").ids, [2, 1, 9, 3])
        XCTAssertEqual(t.encode("Hello, WORLD!").ids, [2, 9, 12, 10, 11, 3])
    }

    func testNormalisation() throws {
        let t = try tinyTokenizer()
        XCTAssertEqual(t.pieces("CAFÉS"), ["cafe", "##s"], "accents stripped after NFD, lower-cased")
        XCTAssertEqual(t.pieces("cafe\u{0301}"), ["cafe"], "combining acute removed")
        XCTAssertEqual(t.pieces("a中a"), ["a", "中", "a"], "CJK characters split out")
        XCTAssertEqual(t.pieces("hel\u{200B}lo\u{0000}"), ["hello"], "format and control characters dropped")
        XCTAssertEqual(t.pieces("hello\u{3000}world\u{2028}!"), ["hello", "world", "!"], "Unicode whitespace splits")
        XCTAssertEqual(t.pieces("hello\u{0B}world"), ["[UNK]"], "vertical tab is a control character: dropped, not a split")
        let cased = try tinyTokenizer(lowercase: false)
        XCTAssertEqual(cased.pieces("Hello"), ["Hello"])
        XCTAssertEqual(cased.pieces("café"), ["[UNK]"], "no accent stripping without lower-casing")
    }

    func testSpecialTokensInTextAndLongWords() throws {
        let t = try tinyTokenizer()
        XCTAssertEqual(t.encode("hello[SEP]world [MASK]").ids, [2, 9, 3, 10, 4, 3])
        XCTAssertEqual(t.encode("[sep]").ids, [2, 1, 1, 1, 3], "special tokens match case-sensitively: this is '[', 'sep', ']'")
        let a100 = String(repeating: "a", count: 100), a101 = a100 + "a"
        let tokenizerWithA = try WordPieceTokenizer(vocabulary: ["[UNK]", "[CLS]", "[SEP]", "a", "##a"])
        XCTAssertEqual(tokenizerWithA.encode(a100).ids.count, 102)
        XCTAssertEqual(tokenizerWithA.encode(a101).ids, [1, 0, 2], "words over 100 characters are [UNK]")
    }

    func testTruncationKeepsSeparator() throws {
        let t = try tinyTokenizer()
        let e = t.encode("hello world hello world", maxTokens: 4)
        XCTAssertEqual(e.ids, [2, 9, 10, 3])
        XCTAssertEqual(e.untruncatedCount, 6)
        XCTAssertTrue(e.isTruncated)
        XCTAssertFalse(t.encode("hello", maxTokens: 3).isTruncated)
    }

    func testInvalidUTF8IsAnInputError() throws {
        let t = try tinyTokenizer()
        XCTAssertThrowsError(try t.encode(utf8: [0x68, 0xC3, 0x28])) { XCTAssertTrue($0 is InvalidInputError) }
        XCTAssertThrowsError(try t.encode(utf8: [0xED, 0xA0, 0x80])) { XCTAssertTrue($0 is InvalidInputError, "surrogate") }
        XCTAssertEqual(try t.encode(utf8: Array("hello".utf8)).ids, [2, 9, 3])
    }

    func testVocabularyNeedsSpecialTokens() {
        XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: ["a", "b"]))
    }
}
