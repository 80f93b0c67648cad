import CZlib
import Foundation

/// Content codings the server reads and writes (RFC 9110 §8.4.1). `deflate` is the zlib format
/// (RFC 1950), as tritonclient and browsers send it.
public enum ContentCoding: String, Sendable, CaseIterable {
    case gzip, deflate, identity

    var windowBits: Int32 { self == .gzip ? 31 : 15 }

    /// Parses a `Content-Encoding` value; nil for codings we do not support (→ 415).
    public static func parse(_ header: String) -> ContentCoding? {
        let v = header.trimmingCharacters(in: .whitespaces).lowercased()
        if v == "x-gzip" { return .gzip }
        return ContentCoding(rawValue: v)
    }

    /// The best coding an `Accept-Encoding` header allows: the highest q-value wins, ties go to
    /// gzip, then deflate, then identity; `*` stands for codings not listed; an unlisted identity
    /// is acceptable but loses to any listed coding with q > 0. When everything is refused the answer is identity anyway (the
    /// server never sends 406 for content coding; RFC 9110 §12.5.3 allows that).
    public static func negotiate(_ acceptEncoding: String?) -> ContentCoding {
        guard let header = acceptEncoding, !header.isEmpty else { return .identity }
        var q: [String: Double] = [:]
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let name = parts.first, !name.isEmpty else { continue }
            var quality = 1.0
            for p in parts.dropFirst() where p.hasPrefix("q=") {
                quality = min(1, max(0, Double(p.dropFirst(2)) ?? 0))
            }
            q[name == "x-gzip" ? "gzip" : name] = quality
        }
        // An identity the client did not list stays acceptable but ranks below any coding it did list.
        func quality(_ name: String) -> Double { q[name] ?? q["*"] ?? (name == "identity" ? 0.001 : 0) }
        var best = ContentCoding.identity
        var bestQ = 0.0
        for c in [ContentCoding.gzip, .deflate, .identity] where quality(c.rawValue) > bestQ {
            best = c
            bestQ = quality(c.rawValue)
        }
        return best
    }
}

/// A compression failure: corrupt input, or output larger than the caller's cap.
public enum CompressionError: Error, Equatable, Sendable {
    case corrupt(String)
    case tooLarge(limit: Int)
}

/// zlib-backed gzip/deflate for request and response bodies.
public enum HTTPCompression {
    /// Compresses `data` (level 6 unless given).
    public static func compress(_ data: [UInt8], coding: ContentCoding, level: Int32 = 6) -> [UInt8] {
        guard coding != .identity else { return data }
        var stream = z_stream()
        guard czlib_deflate_init(&stream, level, coding.windowBits) == Z_OK else { return data }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(data.count))) + 32)
        var input = data
        let produced: Int = input.withUnsafeMutableBufferPointer { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                _ = deflate(&stream, Z_FINISH)
                return Int(stream.total_out)
            }
        }
        out.removeSubrange(produced...)
        return out
    }

    /// Decompresses `data`, refusing to produce more than `limit` bytes (zip-bomb guard).
    public static func decompress(_ data: [UInt8], coding: ContentCoding, limit: Int) throws -> [UInt8] {
        guard coding != .identity else { return data }
        var stream = z_stream()
        guard czlib_inflate_init(&stream, coding.windowBits) == Z_OK else { throw CompressionError.corrupt("zlib init failed") }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = data
        try input.withUnsafeMutableBufferPointer { inBuf in
            stream.next_in = inBuf.baseAddress
            stream.avail_in = uInt(inBuf.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { c -> (Int32, Int) in
                    stream.next_out = c.baseAddress
                    stream.avail_out = uInt(c.count)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    return (s, c.count - Int(stream.avail_out))
                }
                if out.count + produced > limit { throw CompressionError.tooLarge(limit: limit) }
                out.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END {
                    guard stream.avail_in == 0 else { throw CompressionError.corrupt("trailing bytes after the \(coding.rawValue) stream") }
                    return
                }
                guard status == Z_OK else {
                    throw CompressionError.corrupt(status == Z_DATA_ERROR ? "invalid \(coding.rawValue) data" : "truncated \(coding.rawValue) data")
                }
                if produced == 0 && stream.avail_in == 0 { throw CompressionError.corrupt("truncated \(coding.rawValue) data") }
            }
        }
        return out
    }
}
