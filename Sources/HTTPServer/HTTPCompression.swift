import CZlib

/// A content coding the server reads (request `Content-Encoding`) and writes (response, chosen from
/// `Accept-Encoding`), RFC 9110 §8.4.1.
///
/// `deflate` is written in the zlib format (RFC 1950), as RFC 9110 defines it and as tritonclient,
/// Python's `zlib.compress` and browsers send it. When reading, a `deflate` body without a valid
/// zlib header is accepted as raw deflate (RFC 1951), which some old clients send; the choice is
/// made from the first two bytes (a zlib header is 0x78-style CMF/FLG with CMF·256+FLG ≡ 0 mod 31).
public enum ContentCoding: String, Sendable, CaseIterable {
    case gzip, deflate, identity

    /// Parses one coding name (case-insensitive; `x-gzip` is `gzip`); nil for codings the server
    /// does not implement (`br`, `zstd`, `compress`, …).
    public static func parse(_ name: some StringProtocol) -> ContentCoding? {
        let v = name.trimmingASCIIWhitespace().lowercased()
        if v == "x-gzip" { return .gzip }
        return ContentCoding(rawValue: v)
    }

    /// The coding to use for a response, given the request's `Accept-Encoding` field values.
    ///
    /// - No field: identity (compressing for clients that did not ask for it breaks some of them).
    /// - The highest q-value wins; ties prefer gzip, then deflate, then identity. `q=0` excludes a
    ///   coding, `*` stands for every coding not listed. Identity is acceptable unless refused by
    ///   `identity;q=0` or `*;q=0`, but when it is not listed it ranks below every listed coding
    ///   (so `gzip;q=0.5` alone still means gzip).
    /// - When every coding we have is refused the answer is identity anyway: RFC 9110 §12.5.3 lets a
    ///   server ignore the preference instead of sending 406, and an error helps nobody here.
    /// - A malformed q-value counts as q=0 (never send what the client may not want).
    public static func negotiate(_ acceptEncoding: [String]) -> ContentCoding {
        guard !acceptEncoding.isEmpty else { return .identity }
        var q: [String: Double] = [:]
        for field in acceptEncoding {
            for item in field.split(separator: ",") {
                let parts = item.split(separator: ";")
                guard let first = parts.first else { continue }
                var name = first.trimmingASCIIWhitespace().lowercased()
                guard !name.isEmpty else { continue }
                if name == "x-gzip" { name = "gzip" }
                var quality = 1.0
                for parameter in parts.dropFirst() {
                    let p = parameter.trimmingASCIIWhitespace()
                    guard p.count >= 2, p.first == "q" || p.first == "Q", p.dropFirst().first == "=" else { continue }
                    quality = Self.qvalue(p.dropFirst(2)) ?? 0
                }
                q[name] = max(q[name] ?? 0, quality)
            }
        }
        func quality(_ c: ContentCoding) -> Double {
            q[c.rawValue] ?? q["*"] ?? (c == .identity ? 0.0001 : 0)
        }
        var best = ContentCoding.identity
        var bestQ = 0.0
        for c in [ContentCoding.gzip, .deflate, .identity] where quality(c) > bestQ {
            best = c
            bestQ = quality(c)
        }
        return best
    }

    /// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`; nil when malformed.
    static func qvalue(_ text: Substring) -> Double? {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == 0x30 || first == 0x31 else { return nil }
        if bytes.count == 1 { return first == 0x31 ? 1 : 0 }
        guard bytes[1] == 0x2E, bytes.count <= 5, bytes[2...].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let value = Double(String(decoding: bytes, as: UTF8.self)) ?? -1
        return (0 ... 1).contains(value) ? value : nil
    }
}

/// Why a body could not be decoded.
public enum CompressionError: Error, Equatable, Sendable {
    /// The data is not a valid (or is a truncated) stream of the coding (→ 400).
    case corrupt(String)
    /// Decoding would produce more than `limit` bytes (zip-bomb guard, → 413).
    case tooLarge(limit: Int)
    /// The coding is not implemented, or too many codings are stacked (→ 415).
    case unsupported(String)
    /// The global request-body memory budget has no room for more decoded bytes (→ 503).
    case overBudget
}

/// zlib-backed gzip/deflate for request and response bodies.
public enum HTTPCompression {
    /// Most non-identity codings stacked in one `Content-Encoding` (e.g. `gzip, gzip`) that are decoded.
    public static let maxStackedCodings = 2

    /// Compresses `data` in one call (zlib level 1…9, default 6). `identity` returns `data`.
    public static func compress(_ data: [UInt8], coding: ContentCoding, level: Int = 6) -> [UInt8] {
        guard coding != .identity, let deflater = Deflater(coding: coding, level: level) else { return data }
        return deflater.compress(data, finish: true)
    }

    /// Decompresses `data`, never producing (or allocating for) more than `limit` bytes.
    /// Throws `CompressionError.tooLarge` past the limit, `.corrupt` for invalid, truncated or
    /// trailing data. Concatenated gzip members are decoded one after the other (RFC 1952 §2.2).
    public static func decompress(_ data: [UInt8], coding: ContentCoding, limit: Int) throws -> [UInt8] {
        try decompress(data, coding: coding, limit: limit, account: nil)
    }

    /// As above, reserving each inflated 64 KiB chunk from `account` before keeping it
    /// (throws `.overBudget` when the budget has no room).
    static func decompress(_ data: [UInt8], coding: ContentCoding, limit: Int, account: HTTPBodyAccount?) throws -> [UInt8] {
        let inflater = Inflater(limit: limit, account: account)
        switch coding {
        case .identity:
            guard data.count <= limit else { throw CompressionError.tooLarge(limit: limit) }
            return data
        case .gzip:
            return try inflater.inflate(data, windowBits: 31, name: "gzip", multiMember: true)
        case .deflate:
            let zlibHeader = data.count >= 2 && data[0] & 0x0F == 8 && data[0] >> 4 <= 7
                && (UInt16(data[0]) << 8 | UInt16(data[1])) % 31 == 0
            return try inflater.inflate(data, windowBits: zlibHeader ? 15 : -15, name: "deflate", multiMember: false)
        }
    }

    /// Decodes a request body sent with the given `Content-Encoding` field values (a list of codings
    /// in the order they were applied; decoded last-first). Every step is capped by `limit`.
    /// With an `account`, inflated bytes are reserved from its budget chunk by chunk, and each
    /// step's input is released once its output exists (the raw body first).
    public static func decodeBody(_ body: [UInt8], contentEncoding: [String], limit: Int,
                                  account: HTTPBodyAccount? = nil) throws -> [UInt8] {
        var codings: [ContentCoding] = []
        for field in contentEncoding {
            for name in field.split(separator: ",", omittingEmptySubsequences: false) {
                guard let coding = ContentCoding.parse(name) else {
                    let shown = name.trimmingASCIIWhitespace()
                    throw CompressionError.unsupported("Content-Encoding '\(shown)' is not supported; use gzip, deflate or identity")
                }
                if coding != .identity { codings.append(coding) }
            }
        }
        guard codings.count <= maxStackedCodings else {
            throw CompressionError.unsupported("at most \(maxStackedCodings) stacked content codings are decoded; got \(codings.count)")
        }
        var result = body
        for coding in codings.reversed() {
            let input = result.count
            result = try decompress(result, coding: coding, limit: limit, account: account)
            account?.release(input)
        }
        if codings.isEmpty, result.count > limit { throw CompressionError.tooLarge(limit: limit) }
        return result
    }
}

/// Inflates one zlib/gzip/raw-deflate stream in 64 KiB steps, checking the decoded-size limit and
/// (optionally) reserving each step from a memory budget before the bytes are kept.
private struct Inflater {
    let limit: Int
    let account: HTTPBodyAccount?

    func inflate(_ data: [UInt8], windowBits: Int32, name: String, multiMember: Bool) throws -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init(&stream, windowBits) == Z_OK else { throw CompressionError.corrupt("zlib could not start") }
        defer { inflateEnd(&stream) }
        guard !data.isEmpty else { throw CompressionError.corrupt("empty \(name) stream") }
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, max(data.count * 4, 4096), 1 << 22))
        let chunkSize = 64 * 1024
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        try data.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                stream.next_out = chunk
                stream.avail_out = uInt(chunkSize)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                let produced = chunkSize - Int(stream.avail_out)
                if produced > limit - out.count { throw CompressionError.tooLarge(limit: limit) }
                if let account, !account.reserve(produced) { throw CompressionError.overBudget }
                out.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
                switch status {
                case Z_STREAM_END:
                    if stream.avail_in == 0 { return }
                    // Another gzip member may follow; anything else is trailing garbage.
                    guard multiMember, stream.avail_in >= 2, stream.next_in[0] == 0x1F, stream.next_in[1] == 0x8B else {
                        throw CompressionError.corrupt("\(stream.avail_in) bytes of trailing data after the \(name) stream")
                    }
                    guard inflateReset(&stream) == Z_OK else { throw CompressionError.corrupt("zlib reset failed") }
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress possible: all input was consumed before the end of the stream.
                    if stream.avail_in == 0 { throw CompressionError.corrupt("truncated \(name) stream") }
                    continue
                case Z_DATA_ERROR, Z_NEED_DICT:
                    let reason = stream.msg.map { String(cString: $0) } ?? "invalid data"
                    throw CompressionError.corrupt("invalid \(name) stream: \(reason)")
                default:
                    throw CompressionError.corrupt("zlib error \(status) in the \(name) stream")
                }
            }
        }
        return out
    }
}

/// A streaming zlib compressor (gzip or zlib-format deflate); feed chunks, finish with `finish: true`.
final class Deflater {
    private var stream = z_stream()
    private var finished = false

    init?(coding: ContentCoding, level: Int = 6) {
        guard coding != .identity else { return nil }
        let bits: Int32 = coding == .gzip ? 31 : 15
        guard czlib_deflate_init(&stream, Int32(max(1, min(9, level))), bits) == Z_OK else { return nil }
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `data` and returns the output produced so far (everything when `finish`).
    func compress(_ data: [UInt8], finish: Bool) -> [UInt8] {
        guard !finished else { return [] }
        var out: [UInt8] = []
        let bound = Int(deflateBound(&stream, uLong(data.count)))
        out.reserveCapacity(finish ? bound + 16 : min(bound, 1 << 16))
        let chunkSize = 64 * 1024
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        data.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            let flush = finish ? Z_FINISH : Z_NO_FLUSH
            while true {
                stream.next_out = chunk
                stream.avail_out = uInt(chunkSize)
                let status = deflate(&stream, flush)
                out.append(contentsOf: UnsafeBufferPointer(start: chunk, count: chunkSize - Int(stream.avail_out)))
                if status == Z_STREAM_END { finished = true; break }
                guard status == Z_OK || status == Z_BUF_ERROR else { break }
                // Space left in the output means all input was taken (Z_FINISH then ends in Z_STREAM_END).
                if stream.avail_out != 0 && (!finish || status == Z_BUF_ERROR) { break }
            }
            stream.next_in = nil
        }
        return out
    }
}
