import Instrumentation

/// The W3C Trace Context headers of a request (`traceparent`, `tracestate`), checked before a
/// tracer sees them: a malformed `traceparent` is dropped with its `tracestate`, and the request
/// starts a new trace. Never an error answer. The carrier holds these two values only, so a tracer
/// that logs a carrier it cannot read never logs other headers (keys among them).
struct TraceContextHeaders: Sendable, CustomStringConvertible {
    var traceparent: String?
    var tracestate: String?

    /// Longest `tracestate` kept (32 list members of up to 256 bytes are allowed; 512 is what
    /// the spec asks vendors to propagate at least).
    static let maxTraceStateBytes = 512

    init(traceparent: String?, tracestate: String?) {
        guard let traceparent, Self.isValid(traceparent: traceparent) else { return }
        self.traceparent = traceparent
        if let tracestate, tracestate.utf8.count <= Self.maxTraceStateBytes,
           tracestate.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            self.tracestate = tracestate
        }
    }

    var description: String { "traceparent=\(traceparent ?? "-") tracestate=\(tracestate ?? "-")" }

    /// `version-traceid-parentid-flags`: lower-case hex of 2, 32, 16 and 2 digits; version `ff`
    /// and all-zero ids are invalid. A version above 00 may carry more fields after the flags.
    static func isValid(traceparent value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count >= 55, bytes.count <= 256 else { return false }
        let fields: [(start: Int, length: Int)] = [(0, 2), (3, 32), (36, 16), (53, 2)]
        for (start, length) in fields {
            guard bytes[start..<(start + length)].allSatisfy(isLowerHex) else { return false }
        }
        guard bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return false }
        let version = bytes[0..<2]
        if version.elementsEqual("ff".utf8) { return false }
        if version.elementsEqual("00".utf8) && bytes.count != 55 { return false }
        if bytes.count > 55 && bytes[55] != UInt8(ascii: "-") { return false }
        let zero = UInt8(ascii: "0")
        return !bytes[3..<35].allSatisfy { $0 == zero } && !bytes[36..<52].allSatisfy { $0 == zero }
    }

    private static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    /// The 32 hex digits of the trace id in a (valid) `traceparent`.
    static func traceID(ofTraceparent value: String) -> String? {
        let bytes = Array(value.utf8)
        guard bytes.count >= 55 else { return nil }
        return String(decoding: bytes[3..<35], as: UTF8.self)
    }
}

/// Reads `TraceContextHeaders` for `Tracer.extract`.
struct TraceContextExtractor: Extractor {
    func extract(key: String, from carrier: TraceContextHeaders) -> String? {
        switch key.lowercased() {
        case "traceparent": return carrier.traceparent
        case "tracestate": return carrier.tracestate
        default: return nil
        }
    }
}

/// Collects what `Tracer.inject` writes (the outgoing `traceparent`, read for the trace id).
struct HeaderDictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key.lowercased()] = value
    }
}
