import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// WordPiece tokens back to text as Hugging Face's decoder joins them.
final class TEITokensTests: XCTestCase {
    func testWordPieceDecodingAsHuggingFace() {
        XCTAssertEqual(TEITokens.wordPieceText(["hello", "world", ",", "cafe", "!"]), "hello world, cafe!")
        XCTAssertEqual(TEITokens.wordPieceText(["un", "##aff", "##able", "isn", "'", "t", "it", "?"]), "unaffable isn't it?")
        XCTAssertEqual(TEITokens.wordPieceText(["##s", "a"]), "##s a", "a leading continuation keeps its ##")
        XCTAssertEqual(TEITokens.wordPieceText([]), "")
    }
}
