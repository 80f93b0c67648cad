import Tracing

/// Writes one span as OTLP protobuf (`ScopeSpans.spans`: tag, length, `Span`) straight into
/// memory the caller owns — a stack buffer on the request path — so a span costs no object, no
/// dictionary and no copy until its bytes are appended to the export queue. Field numbers are
/// those of opentelemetry-proto's `trace/v1/trace.proto` and `common/v1/common.proto`. Writing
/// past `capacity` sets `overflowed` and writes nothing more.
struct SpanWriter {
    let base: UnsafeMutablePointer<UInt8>
    let capacity: Int
    private(set) var count = 0
    private(set) var overflowed = false
    /// Longest string value written (longer ones are cut at a UTF-8 character boundary).
    static let maxStringBytes = 1024

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    static func varintSize(_ v: UInt64) -> Int { v < 0x80 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7 }

    @inline(__always) mutating func room(_ n: Int) -> Bool {
        if count + n <= capacity { return true }
        overflowed = true
        return false
    }

    @inline(__always) mutating func varint(_ value: UInt64) {
        if value < 0x80, count < capacity {
            base[count] = UInt8(value)
            count += 1
            return
        }
        guard room(Self.varintSize(value)) else { return }
        var v = value
        while v >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: v) | 0x80
            count += 1
            v >>= 7
        }
        base[count] = UInt8(v)
        count += 1
    }

    @inline(__always) mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, room(bytes.count) else { return }
        UnsafeMutableRawPointer(base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func uint(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        varint(value)
    }

    mutating func fixed64(_ field: UInt64, _ value: UInt64) {
        tag(field, 1)
        word(value.littleEndian)
    }

    /// Eight bytes as they lie in memory (an unaligned store).
    @inline(__always) mutating func word(_ value: UInt64) {
        guard room(8) else { return }
        UnsafeMutableRawPointer(base + count).storeBytes(of: value, as: UInt64.self)
        count += 8
    }

    /// A `bytes` field of a big-endian 64-bit id (a span id).
    mutating func id(_ field: UInt64, _ word: UInt64) {
        tag(field, 2)
        varint(8)
        self.word(word.bigEndian)
    }

    /// A `bytes` field of a big-endian 128-bit id (a trace id) given as two halves.
    mutating func id(_ field: UInt64, _ high: UInt64, _ low: UInt64) {
        tag(field, 2)
        varint(16)
        word(high.bigEndian)
        word(low.bigEndian)
    }

    mutating func string(_ field: UInt64, _ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            let n = Self.cut(utf8)
            tag(field, 2)
            varint(UInt64(n))
            raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[0..<n]))
        }
    }

    /// `first`, a space and `second` as one string field (both short: route names).
    mutating func string(_ field: UInt64, _ first: String, _ second: String) {
        var first = first, second = second
        first.withUTF8 { a in
            second.withUTF8 { b in
                let n = Self.cut(a), m = min(Self.cut(b), Self.maxStringBytes)
                tag(field, 2)
                varint(UInt64(n + 1 + m))
                raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(a)[0..<n]))
                withUnsafeBytes(of: UInt8(ascii: " ")) { raw($0) }
                raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[0..<m]))
            }
        }
    }

    /// How many of `utf8`'s bytes are kept: all, or up to `maxStringBytes` ending on a character boundary.
    static func cut(_ utf8: UnsafeBufferPointer<UInt8>) -> Int {
        guard utf8.count > maxStringBytes else { return utf8.count }
        var n = maxStringBytes
        while n > 0 && utf8[n] & 0xC0 == 0x80 { n -= 1 }
        return n
    }

    /// A nested message whose length is known once `body` wrote it: one length byte is reserved
    /// and the body moved when the length needs more.
    mutating func message(_ field: UInt64, _ body: (inout SpanWriter) -> Void) {
        tag(field, 2)
        guard room(1) else { return }
        let start = count + 1
        count = start
        body(&self)
        guard !overflowed else { return }
        let length = count - start
        let size = Self.varintSize(UInt64(length))
        if size > 1 {
            guard room(size - 1) else { return }
            (base + start + size - 1).update(from: base + start, count: length)
        }
        count = start - 1
        varint(UInt64(length))
        count += length
    }
}

extension SpanWriter {
    /// `KeyValue { key = 1; value = 2 (AnyValue: string 1, bool 2, int 3, double 4, array 5) }`
    /// as span field 9 (attributes); `field` 3 for an event's attributes.
    mutating func attribute(_ key: String, _ value: SpanAttribute, field: UInt64 = 9) {
        message(field) { kv in
            kv.string(1, key)
            kv.message(2) { $0.anyValue(value) }
        }
    }

    /// An attribute's KeyValue (field 9) up to its AnyValue's content: the key, then field 2's
    /// length `any` (lengths known up front, so nothing is patched afterwards).
    private mutating func keyValueHead(_ k: UnsafeBufferPointer<UInt8>, anyLength any: Int) {
        tag(9, 2)
        varint(UInt64(1 + Self.varintSize(UInt64(k.count)) + k.count + 1 + Self.varintSize(UInt64(any)) + any))
        tag(1, 2)
        varint(UInt64(k.count))
        raw(UnsafeRawBufferPointer(k))
        tag(2, 2)
        varint(UInt64(any))
    }

    /// An integer attribute, the request path's most common kind (lengths known up front).
    mutating func attribute(_ key: String, int value: Int64) {
        var key = key
        key.withUTF8 { k in
            let v = UInt64(bitPattern: value)
            keyValueHead(k, anyLength: 1 + Self.varintSize(v))
            uint(3, v)
        }
    }

    /// A string attribute (lengths known up front; the value cut at `maxStringBytes`).
    mutating func attribute(_ key: String, string value: String) {
        var key = key, value = value
        key.withUTF8 { k in
            value.withUTF8 { v in
                let n = Self.cut(v)
                keyValueHead(k, anyLength: 1 + Self.varintSize(UInt64(n)) + n)
                tag(1, 2)
                varint(UInt64(n))
                raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(v)[0..<n]))
            }
        }
    }

    mutating func anyValue(_ value: SpanAttribute) {
        switch value {
        case .string(let v): string(1, v)
        case .bool(let v): uint(2, v ? 1 : 0)
        case .int64(let v): uint(3, UInt64(bitPattern: v))
        case .int32(let v): uint(3, UInt64(bitPattern: Int64(v)))
        case .double(let v): fixed64(4, v.bitPattern)
        case .stringArray(let v): message(5) { a in for x in v { a.message(1) { $0.string(1, x) } } }
        case .int64Array(let v): message(5) { a in for x in v { a.message(1) { $0.uint(3, UInt64(bitPattern: x)) } } }
        case .int32Array(let v): message(5) { a in for x in v { a.message(1) { $0.uint(3, UInt64(bitPattern: Int64(x))) } } }
        case .doubleArray(let v): message(5) { a in for x in v { a.message(1) { $0.fixed64(4, x.bitPattern) } } }
        case .boolArray(let v): message(5) { a in for x in v { a.message(1) { $0.uint(2, x ? 1 : 0) } } }
        case .stringConvertible(let v): string(1, v.description)
        case .stringConvertibleArray(let v): message(5) { a in for x in v { a.message(1) { $0.string(1, x.description) } } }
        default: string(1, "\(value)")
        }
    }

    /// The fields of `Span` before its attributes: ids, `tracestate`, parent, name, kind, times.
    /// `nameSuffix`: a second part of the name after a space (the route of `METHOD /route`).
    mutating func head(_ position: ExportSpanContext, parentSpanID: UInt64, name: String, nameSuffix: String? = nil, kind: SpanKind,
                       start: UInt64, end: UInt64) {
        id(1, position.traceHigh, position.traceLow)
        id(2, position.spanID)
        if let state = position.traceState, !state.isEmpty { string(3, state) }
        if parentSpanID != 0 { id(4, parentSpanID) }
        if let nameSuffix { string(5, name, nameSuffix) } else { string(5, name) }
        uint(6, Self.kind(kind))
        fixed64(7, start)
        fixed64(8, max(start, end))
    }

    /// An event (field 11) with its attributes.
    mutating func event(name: String, at nanoseconds: UInt64, _ attributes: SpanAttributes) {
        message(11) { e in
            e.fixed64(1, nanoseconds)
            e.string(2, name)
            attributes.forEach { key, value in e.attribute(key, value, field: 3) }
        }
    }

    /// OpenTelemetry's `exception` event for `error`.
    mutating func exception(_ error: any Error, at nanoseconds: UInt64) {
        message(11) { e in
            e.fixed64(1, nanoseconds)
            e.string(2, "exception")
            e.attribute("exception.type", .string(String(reflecting: type(of: error))), field: 3)
            e.attribute("exception.message", .string(String(describing: error)), field: 3)
        }
    }

    /// `Status { message = 2; code = 3 }` (field 15).
    mutating func status(_ status: SpanStatus) {
        message(15) { st in
            if let text = status.message { st.string(2, text) }
            st.uint(3, status.code == .ok ? 1 : 2)
        }
    }

    static func kind(_ kind: SpanKind) -> UInt64 {
        switch kind {
        case .internal: return 1
        case .server: return 2
        case .client: return 3
        case .producer: return 4
        case .consumer: return 5
        }
    }
}

/// Where a span's attributes go as they are set: written as protobuf by `SpanExportTracer`, or
/// collected as `SpanAttributes` for any other tracer. Each key is set once per span.
public struct SpanAttributeSink {
    var writer: SpanWriter?
    /// What was set, without a writer (empty with one).
    public var attributes: SpanAttributes { collected ?? SpanAttributes() }
    private var collected: SpanAttributes?

    init(writer: SpanWriter?) { self.writer = writer }

    public mutating func set(_ key: String, _ value: Int) {
        if writer != nil { writer!.attribute(key, int: Int64(value)) } else { collected.add(key, .int64(Int64(value))) }
    }

    public mutating func set(_ key: String, _ value: String) {
        if writer != nil { writer!.attribute(key, string: value) } else { collected.add(key, .string(value)) }
    }

    public mutating func set(_ key: String, _ value: SpanAttribute) {
        if writer != nil { writer!.attribute(key, value) } else { collected.add(key, value) }
    }
}

extension Optional where Wrapped == SpanAttributes {
    fileprivate mutating func add(_ key: String, _ value: SpanAttribute) {
        var all = self ?? SpanAttributes()
        all[key] = value
        self = all
    }
}

extension SpanWriter {
    /// What `body` writes, as an array (encoding done once, e.g. the resource; up to 256 KiB).
    static func encoded(_ body: (inout SpanWriter) -> Void) -> [UInt8] {
        let heap = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 256 << 10)
        defer { heap.deallocate() }
        var w = SpanWriter(heap)
        body(&w)
        return Array(w.bytes)
    }
}

/// Runs `body` with a `SpanWriter` over a stack buffer (a heap one when a span is larger than
/// that); nothing when even the large one overflows (such a span is dropped).
func withSpanWriter(_ body: (inout SpanWriter) -> Void, _ consume: (UnsafeRawBufferPointer) -> Void) {
    let written: Bool = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { stack in
        var w = SpanWriter(stack)
        body(&w)
        if !w.overflowed { consume(w.bytes) }
        return !w.overflowed
    }
    guard !written else { return }
    let heap = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 64 << 10)
    defer { heap.deallocate() }
    var w = SpanWriter(heap)
    body(&w)
    if !w.overflowed { consume(w.bytes) }
}
