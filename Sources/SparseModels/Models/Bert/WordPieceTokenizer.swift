import Foundation

/// BERT's WordPiece tokenizer, giving the same ids as Hugging Face `tokenizers` with a BERT
/// `tokenizer.json` (BertNormalizer + BertPreTokenizer + WordPiece + `[CLS] $A [SEP]`), which is
/// what `BertTokenizer(Fast)` and sentence-transformers use:
///
/// 1. the special tokens (`[CLS]`, `[SEP]`, `[MASK]`, `[PAD]`, `[UNK]`) are matched verbatim in the
///    raw text and map to their ids;
/// 2. the text between them is cleaned (NUL, U+FFFD and control/format/private-use characters
///    dropped, whitespace mapped to a space), CJK ideographs get spaces around them, and when
///    `lowercase` is set accents are stripped (NFD, then non-spacing marks dropped) and every
///    character is lower-cased;
/// 3. it is split on whitespace and around every punctuation character;
/// 4. each word becomes its greedy longest-match-first pieces (`##` marks a continuation), or
///    `[UNK]` when some part has no piece or the word is longer than `maxInputCharactersPerWord`.
///
/// `tokenizers` classifies characters with Unicode 8.0 tables (the `unicode_categories` crate), so
/// characters assigned after Unicode 8.0 count as "unassigned" here too: never dropped, stripped
/// or split off (they become `[UNK]` unless the vocabulary has them).
public struct WordPieceTokenizer: Sendable {
    /// Token ids of one text and whether truncation cut it.
    public struct Encoding: Sendable, Equatable {
        /// `[CLS]`, the word pieces, `[SEP]`.
        public var ids: [Int32]
        /// How many ids the text has without truncation (so `ids.count < untruncatedCount` means cut).
        public var untruncatedCount: Int
        public var isTruncated: Bool { ids.count < untruncatedCount }

        public init(ids: [Int32], untruncatedCount: Int) {
            self.ids = ids
            self.untruncatedCount = untruncatedCount
        }
    }

    public let vocabularySize: Int
    public let lowercase: Bool
    public let maxInputCharactersPerWord: Int
    public let clsID: Int32
    public let sepID: Int32
    public let unkID: Int32
    public let padID: Int32

    private let vocabulary: Vocabulary
    private let specialTokens: [(scalars: [Unicode.Scalar], id: Int32)]

    /// Reads `vocab.txt` (one token per line; the line number is the id).
    public init(vocabularyFile path: String, lowercase: Bool = true, maxInputCharactersPerWord: Int = 100) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelLoadError(file: path, "cannot read vocabulary (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelLoadError(file: path, "vocabulary is not valid UTF-8")
        }
        var tokens = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }
        while tokens.last == "" { tokens.removeLast() }
        do {
            try self.init(vocabulary: tokens, lowercase: lowercase, maxInputCharactersPerWord: maxInputCharactersPerWord)
        } catch let error as InvalidInputError {
            throw ModelLoadError(file: path, error.description)
        }
    }

    /// Builds the tokenizer from the tokens in id order. The vocabulary must hold `[CLS]`, `[SEP]`
    /// and `[UNK]` (else `InvalidInputError`).
    public init(vocabulary tokens: [String], lowercase: Bool = true, maxInputCharactersPerWord: Int = 100) throws {
        var ids: [String: Int32] = [:]
        for (i, token) in tokens.enumerated() where !token.isEmpty && ids[token] == nil { ids[token] = Int32(i) }
        guard let cls = ids["[CLS]"], let sep = ids["[SEP]"], let unk = ids["[UNK]"] else {
            throw InvalidInputError("vocabulary lacks [CLS], [SEP] or [UNK]")
        }
        vocabularySize = tokens.count
        self.lowercase = lowercase
        self.maxInputCharactersPerWord = maxInputCharactersPerWord
        clsID = cls
        sepID = sep
        unkID = unk
        padID = ids["[PAD]"] ?? 0
        vocabulary = Vocabulary(ids)
        specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { name in
            ids[name].map { (Array(name.unicodeScalars), $0) }
        }
    }

    /// Token ids of `text`: `[CLS]`, pieces, `[SEP]`. With `maxTokens` (≥ 2) the pieces are cut so
    /// that the whole encoding has at most `maxTokens` ids (`[SEP]` is kept), as Hugging Face does.
    public func encode(_ text: String, maxTokens: Int? = nil) -> Encoding {
        var sink = PieceSink(tracking: nil)
        sink.ids.append(clsID)
        appendPieces(of: text, to: &sink)
        var ids = sink.ids
        ids.append(sepID)
        let total = ids.count
        if let maxTokens {
            precondition(maxTokens >= 2, "maxTokens must leave room for [CLS] and [SEP]")
            Self.truncate(&ids, to: maxTokens)
        }
        return Encoding(ids: ids, untruncatedCount: total)
    }

    /// Cuts a complete sequence (`[CLS]` … `[SEP]`) to `maxTokens` ids, keeping its last id (`[SEP]`).
    public static func truncate(_ ids: inout [Int32], to maxTokens: Int) {
        guard ids.count > maxTokens else { return }
        ids.removeSubrange(max(1, maxTokens - 1)..<(ids.count - 1))
    }

    /// As `encode(_:maxTokens:)` for UTF-8 bytes; invalid UTF-8 is an `InvalidInputError`.
    public func encode(utf8 bytes: [UInt8], maxTokens: Int? = nil) throws -> Encoding {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw InvalidInputError("text is not valid UTF-8")
        }
        return encode(text, maxTokens: maxTokens)
    }

    /// The word pieces of `text` as strings (no `[CLS]`/`[SEP]`), for inspection.
    public func pieces(_ text: String) -> [String] {
        var sink = PieceSink(tracking: nil)
        appendPieces(of: text, to: &sink)
        return sink.ids.map { vocabulary.token(for: $0) ?? "?" }
    }

    /// The vocabulary entry of `id` (e.g. `##ing`, `[CLS]`), nil outside the vocabulary.
    public func token(for id: Int32) -> String? { vocabulary.token(for: id) }

    /// Whether `id` is one of the special tokens (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`).
    public func isSpecial(_ id: Int32) -> Bool { specialTokens.contains { $0.id == id } }

    /// `encode(utf8:)` without truncation, with each id's UTF-8 byte range in `bytes` (nil for
    /// the added `[CLS]` and `[SEP]`): a piece covers the characters it came from, a `[UNK]` its
    /// whole word. Accents are stripped character by character here, so a text with combining
    /// marks out of canonical order can split differently from `encode` (never seen in practice).
    public func encodeWithOffsets(utf8 bytes: [UInt8]) throws -> (ids: [Int32], offsets: [Range<Int>?]) {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw InvalidInputError("text is not valid UTF-8")
        }
        var starts: [Int] = [], offset = 0
        for c in text.unicodeScalars {
            starts.append(offset)
            offset += String(c).utf8.count
        }
        starts.append(offset)
        var sink = PieceSink(tracking: starts)
        appendPieces(of: text, to: &sink)
        return ([clsID] + sink.ids + [sepID], [nil] + (sink.spans ?? []).map { Optional($0) } + [nil])
    }

    // MARK: Pipeline

    /// Where pieces go: their ids and, when tracking (`starts`: each scalar's UTF-8 offset, plus
    /// the end), each piece's byte range in the text.
    private struct PieceSink {
        var ids: [Int32] = []
        var spans: [Range<Int>]?
        let starts: [Int]?
        init(tracking starts: [Int]?) {
            self.starts = starts
            spans = starts == nil ? nil : []
        }
        /// Appends `id` covering scalars `first...last` of the text (indices; ignored when not tracking).
        mutating func append(_ id: Int32, scalars first: Int, _ last: Int) {
            ids.append(id)
            if let starts { spans!.append(starts[first]..<starts[last + 1]) }
        }
        mutating func removeSince(_ mark: Int) {
            ids.removeSubrange(mark...)
            spans?.removeSubrange(mark...)
        }
    }

    private func appendPieces(of text: String, to sink: inout PieceSink) {
        let scalars = Array(text.unicodeScalars)
        var segmentStart = 0, i = 0
        while i < scalars.count {
            if scalars[i] == "[", let (length, id) = specialToken(at: i, in: scalars) {
                appendWords(of: scalars[segmentStart..<i], to: &sink)
                sink.append(id, scalars: i, i + length - 1)
                i += length
                segmentStart = i
            } else {
                i += 1
            }
        }
        appendWords(of: scalars[segmentStart..<scalars.count], to: &sink)
    }

    private func specialToken(at i: Int, in scalars: [Unicode.Scalar]) -> (Int, Int32)? {
        var best: (Int, Int32)?
        for (token, id) in specialTokens where token.count <= scalars.count - i && token.count > (best?.0 ?? 0) {
            if scalars[i..<(i + token.count)].elementsEqual(token) { best = (token.count, id) }
        }
        return best
    }

    /// Cleans a stretch of text (NUL, U+FFFD and control characters dropped, whitespace → space,
    /// CJK characters padded with spaces) and lower-cases/strips accents when `lowercase` is set;
    /// with `origins`, records each output scalar's index in the text.
    private func normalize(_ scalars: ArraySlice<Unicode.Scalar>, origins: inout [Int]?) -> [Unicode.Scalar] {
        var cleaned: [Unicode.Scalar] = [], from: [Int] = []
        var ascii = true
        func keep(_ c: Unicode.Scalar, _ i: Int) {
            cleaned.append(c)
            if origins != nil { from.append(i) }
        }
        for (i, c) in zip(scalars.indices, scalars) {
            let v = c.value
            if v == 0 || v == 0xFFFD || Self.isControl(c) { continue }
            if Self.isWhitespace(c) {
                keep(" ", i)
            } else if Self.isChineseCharacter(v) {
                keep(" ", i); keep(c, i); keep(" ", i)
                ascii = false
            } else {
                keep(c, i)
                ascii = ascii && v < 0x80
            }
        }
        guard lowercase else { origins = origins == nil ? nil : from; return cleaned }
        var normalized: [Unicode.Scalar] = []
        normalized.reserveCapacity(cleaned.count)
        if ascii {
            for c in cleaned { normalized.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c) }
            origins = origins == nil ? nil : from
            return normalized
        }
        // Strip accents (NFD, drop non-spacing marks), then lower-case each character; per
        // character when tracking origins, else over the whole stretch.
        func stripAndLower(_ text: String, origin: Int?) {
            for c in text.decomposedStringWithCanonicalMapping.unicodeScalars where !Self.isNonspacingMark(c) {
                let lower = c.properties.lowercaseMapping.unicodeScalars
                let mapped = lower.count == 1 && lower.first == c ? [c] : Array(lower)
                normalized.append(contentsOf: mapped)
                if let origin { origins!.append(contentsOf: repeatElement(origin, count: mapped.count)) }
            }
        }
        if origins == nil {
            stripAndLower(String(String.UnicodeScalarView(cleaned)), origin: nil)
        } else {
            origins = []
            for (c, o) in zip(cleaned, from) { stripAndLower(String(c), origin: o) }
        }
        return normalized
    }

    /// Normalises one stretch of text (no special tokens in it), splits it into words (on
    /// whitespace and around punctuation) and appends their pieces.
    private func appendWords(of scalars: ArraySlice<Unicode.Scalar>, to sink: inout PieceSink) {
        guard !scalars.isEmpty else { return }
        var origins: [Int]? = sink.starts == nil ? nil : []
        let normalized = normalize(scalars, origins: &origins)
        var word: [UInt8] = [], wordOrigins: [Int] = []
        var characters = 0
        func flush() {
            if !word.isEmpty { appendWordPieces(word, origins: wordOrigins, characters: characters, to: &sink) }
            word.removeAll(keepingCapacity: true)
            wordOrigins.removeAll(keepingCapacity: true)
            characters = 0
        }
        func add(_ c: Unicode.Scalar, _ k: Int) {
            let bytes = String(c).utf8
            word.append(contentsOf: bytes)
            if let origins { wordOrigins.append(contentsOf: repeatElement(origins[k], count: bytes.count)) }
            characters += 1
        }
        for (k, c) in normalized.enumerated() {
            if Self.isWhitespace(c) {
                flush()
            } else if Self.isPunctuation(c) {
                flush()
                add(c, k)
                flush()
            } else {
                add(c, k)
            }
        }
        flush()
    }

    /// Greedy longest-match-first WordPiece of one word (UTF-8 bytes; `origins`: each byte's
    /// scalar index in the text when tracking, else empty).
    private func appendWordPieces(_ word: [UInt8], origins: [Int], characters: Int, to sink: inout PieceSink) {
        let whole = (origins.first ?? 0, origins.last ?? 0)
        if characters > maxInputCharactersPerWord {
            sink.append(unkID, scalars: whole.0, whole.1)
            return
        }
        let mark = sink.ids.count
        var start = 0
        while start < word.count {
            guard let (id, end) = vocabulary.longestMatch(word, from: start, continuation: start > 0) else {
                sink.removeSince(mark)
                sink.append(unkID, scalars: whole.0, whole.1)
                return
            }
            sink.append(id, scalars: origins.isEmpty ? 0 : origins[start], origins.isEmpty ? 0 : origins[end - 1])
            start = end
        }
    }

    // MARK: Character classes (as tokenizers' BertNormalizer / BertPreTokenizer)

    /// Characters `tokenizers`' tables know (assigned by Unicode 8.0); later ones act as unassigned.
    private static func knownToTokenizers(_ c: Unicode.Scalar) -> Bool {
        guard let age = c.properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// Cc, Cf, Co or Cs, except tab, newline and carriage return (dropped by cleaning).
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09, 0x0A, 0x0D: return false
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0xA0...0xAC: return false
        default: break
        }
        if c.value < 0xAD { return false }
        switch c.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return knownToTokenizers(c)
        default: return false
        }
    }

    /// Unicode White_Space (tab, newline and carriage return included).
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c.value == 0x20 || (c.value >= 0x09 && c.value <= 0x0D) }
        return c.properties.isWhitespace
    }

    /// ASCII punctuation and symbols (`!`…`/`, `:`…`@`, `[`…`` ` ``, `{`…`~`) or any Unicode P* character.
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126) }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return knownToTokenizers(c)
        default:
            return false
        }
    }

    static func isNonspacingMark(_ c: Unicode.Scalar) -> Bool {
        c.value >= 0x300 && c.properties.generalCategory == .nonspacingMark && knownToTokenizers(c)
    }

    /// The CJK Unified Ideographs blocks BERT pads with spaces.
    static func isChineseCharacter(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}

/// The vocabulary as a byte trie: a word-initial piece is matched from the root, a continuation
/// piece from the node reached by `##`, so one walk finds the longest piece at a position.
private final class Vocabulary: Sendable {
    /// Child of node n on byte b: `edges[n << 8 | b]`.
    private let edges: [UInt32: Int32]
    /// Token id ending at each node, or -1.
    private let terminal: [Int32]
    private let continuationRoot: Int32?
    private let tokens: [Int32: String]

    init(_ ids: [String: Int32]) {
        var edges: [UInt32: Int32] = [:]
        var terminal: [Int32] = [-1]
        for (token, id) in ids {
            var node: Int32 = 0
            for b in token.utf8 {
                let key = UInt32(node) << 8 | UInt32(b)
                if let next = edges[key] {
                    node = next
                } else {
                    let next = Int32(terminal.count)
                    terminal.append(-1)
                    edges[key] = next
                    node = next
                }
            }
            terminal[Int(node)] = id
        }
        self.edges = edges
        self.terminal = terminal
        var node: Int32? = 0
        for b in "##".utf8 { node = node.flatMap { edges[UInt32($0) << 8 | UInt32(b)] } }
        continuationRoot = node
        tokens = Dictionary(uniqueKeysWithValues: ids.map { ($1, $0) })
    }

    /// The longest piece of `word` starting at byte `start`: its id and end offset.
    func longestMatch(_ word: [UInt8], from start: Int, continuation: Bool) -> (Int32, Int)? {
        guard var node = continuation ? continuationRoot : 0 else { return nil }
        var best: (Int32, Int)?
        var i = start
        while i < word.count, let next = edges[UInt32(node) << 8 | UInt32(word[i])] {
            node = next
            i += 1
            let id = terminal[Int(node)]
            if id >= 0 { best = (id, i) }
        }
        return best
    }

    func token(for id: Int32) -> String? { tokens[id] }
}
