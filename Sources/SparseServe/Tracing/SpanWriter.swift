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
        Self.withBytes(value) { utf8 in
            let n = Self.cut(utf8)
            guard let p = reserve(Self.fieldSize(field, n)) else { return }
            count = Self.put(Self.put(p, key: field, length: n), utf8, n) - base
        }
    }

    /// `first`, a space and `second` as one string field (both short: route names).
    mutating func string(_ field: UInt64, _ first: String, _ second: String) {
        Self.withBytes(first) { a in
            Self.withBytes(second) { b in
                let n = Self.cut(a), m = Self.cut(b)
                guard let p = reserve(Self.fieldSize(field, n + 1 + m)) else { return }
                var q = Self.put(Self.put(p, key: field, length: n + 1 + m), a, n)
                q.pointee = UInt8(ascii: " ")
                count = Self.put(q + 1, b, m) - base
            }
        }
    }

    /// Runs `body` over the UTF-8 bytes of `s` in place (literals and native strings are
    /// contiguous), without the copy and retain of `var s = s; s.withUTF8`.
    @inline(__always) static func withBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable(body) { return r }
        var copy = s
        return copy.withUTF8(body)
    }

    /// Where the next `n` bytes go, checked once (nil and `overflowed` when they do not fit);
    /// `count` is not moved: the unchecked `put`s that follow return the end to set it to.
    @inline(__always) mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8>? {
        guard room(n) else { return nil }
        return base + count
    }

    /// Bytes of a length-delimited field of `length` bytes (field numbers below 16).
    @inline(__always) static func fieldSize(_ field: UInt64, _ length: Int) -> Int { 1 + varintSize(UInt64(length)) + length }

    /// Unchecked writes (after `reserve`): each returns the pointer past what it wrote.
    @inline(__always) static func put(_ p: UnsafeMutablePointer<UInt8>, varint value: UInt64) -> UnsafeMutablePointer<UInt8> {
        var v = value, q = p
        while v >= 0x80 {
            q.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            q += 1
            v >>= 7
        }
        q.pointee = UInt8(v)
        return q + 1
    }

    /// A length-delimited field's tag (field numbers below 16) and length.
    @inline(__always) static func put(_ p: UnsafeMutablePointer<UInt8>, key field: UInt64, length: Int) -> UnsafeMutablePointer<UInt8> {
        p.pointee = UInt8(field << 3 | 2)
        return put(p + 1, varint: UInt64(length))
    }

    /// The first `n` bytes of `bytes`.
    @inline(__always) static func put(_ p: UnsafeMutablePointer<UInt8>, _ bytes: UnsafeBufferPointer<UInt8>, _ n: Int) -> UnsafeMutablePointer<UInt8> {
        if n > 0 { p.update(from: bytes.baseAddress!, count: n) }
        return p + n
    }

    /// Eight bytes as they lie in memory, after a one-byte tag.
    @inline(__always) static func put(_ p: UnsafeMutablePointer<UInt8>, tag: UInt8, word: UInt64) -> UnsafeMutablePointer<UInt8> {
        p.pointee = tag
        UnsafeMutableRawPointer(p + 1).storeBytes(of: word, as: UInt64.self)
        return p + 9
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

    /// An attribute's KeyValue (field 9) with the AnyValue field `valueField` of `valueSize`
    /// bytes (its tag and content, written by `value`): lengths known up front, one room check.
    @inline(__always) private mutating func keyValue(_ k: UnsafeBufferPointer<UInt8>, valueSize: Int,
                                                     _ value: (UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8>) {
        let kv = Self.fieldSize(1, k.count) + Self.fieldSize(2, valueSize)
        guard let p = reserve(Self.fieldSize(9, kv)) else { return }
        var q = Self.put(Self.put(p, key: 9, length: kv), key: 1, length: k.count)
        q = Self.put(Self.put(q, k, k.count), key: 2, length: valueSize)
        count = value(q) - base
    }

    /// An integer attribute, the request path's most common kind (lengths known up front).
    mutating func attribute(_ key: String, int value: Int64) {
        Self.withBytes(key) { k in
            let v = UInt64(bitPattern: value)
            keyValue(k, valueSize: 1 + Self.varintSize(v)) { q in
                q.pointee = 3 << 3
                return Self.put(q + 1, varint: v)
            }
        }
    }

    /// A string attribute (lengths known up front; the value cut at `maxStringBytes`).
    mutating func attribute(_ key: String, string value: String) {
        Self.withBytes(key) { k in
            Self.withBytes(value) { v in
                let n = Self.cut(v)
                keyValue(k, valueSize: Self.fieldSize(1, n)) { q in Self.put(Self.put(q, key: 1, length: n), v, n) }
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
        // Trace id (18 bytes), span id (10), parent (10), kind (2) and the times (2 × 9) in one
        // reserved run; tracestate and the name through `string`.
        guard let p = reserve(28) else { return }
        p[0] = 1 << 3 | 2
        p[1] = 16
        UnsafeMutableRawPointer(p + 2).storeBytes(of: position.traceHigh.bigEndian, as: UInt64.self)
        UnsafeMutableRawPointer(p + 10).storeBytes(of: position.traceLow.bigEndian, as: UInt64.self)
        p[18] = 2 << 3 | 2
        p[19] = 8
        UnsafeMutableRawPointer(p + 20).storeBytes(of: position.spanID.bigEndian, as: UInt64.self)
        count += 28
        if let state = position.traceState, !state.isEmpty { string(3, state) }
        if parentSpanID != 0, let q = reserve(10) {
            q[0] = 4 << 3 | 2
            q[1] = 8
            UnsafeMutableRawPointer(q + 2).storeBytes(of: parentSpanID.bigEndian, as: UInt64.self)
            count += 10
        }
        if let nameSuffix { string(5, name, nameSuffix) } else { string(5, name) }
        guard let q = reserve(20) else { return }
        q[0] = 6 << 3
        q[1] = UInt8(Self.kind(kind))
        count = Self.put(Self.put(q + 2, tag: 7 << 3 | 1, word: start.littleEndian), tag: 8 << 3 | 1, word: max(start, end).littleEndian) - base
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
