/// Appends JSON text to a byte buffer; used for every response body the server writes.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(reservingCapacity capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// Writes `s` as a quoted JSON string: quote and backslash escaped; control characters, DEL
    /// and U+2028/U+2029 (line and paragraph separators, which JavaScript string literals reject)
    /// as `\uXXXX`.
    public mutating func string(_ s: String) {
        bytes.append(0x22)
        let utf8 = Array(s.utf8)
        var i = 0
        while i < utf8.count {
            let unit = utf8[i]
            switch unit {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F: unicodeEscape(UInt16(unit))
            case 0xE2 where i + 2 < utf8.count && utf8[i + 1] == 0x80 && (utf8[i + 2] == 0xA8 || utf8[i + 2] == 0xA9):
                unicodeEscape(utf8[i + 2] == 0xA8 ? 0x2028 : 0x2029)
                i += 2
            default: bytes.append(unit)
            }
            i += 1
        }
        bytes.append(0x22)
    }

    private mutating func unicodeEscape(_ code: UInt16) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(contentsOf: Array("\\u".utf8))
        for shift in [12, 8, 4, 0] { bytes.append(hex[Int((code >> UInt16(shift)) & 0xF)]) }
    }

    /// `s` as a quoted, escaped JSON string (see `string(_:)`).
    public static func quoted(_ s: String) -> String {
        var w = JSONWriter(reservingCapacity: s.utf8.count + 2)
        w.string(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// Writes a float with the shortest representation that round-trips; non-finite values become null.
    public mutating func number(_ value: Float) {
        if value.isFinite { raw(value.description) } else { raw("null") }
    }

    public mutating func number(_ value: Double) {
        if value.isFinite { raw(value.description) } else { raw("null") }
    }

    public mutating func number<I: BinaryInteger>(_ value: I) { raw(String(value)) }

    /// Writes a whole JSON value.
    public mutating func value(_ json: JSON) {
        switch json {
        case .null: raw("null")
        case .bool(let b): raw(b ? "true" : "false")
        case .number(let d, let i): if let i { number(i) } else { number(d) }
        case .string(let s): string(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (n, item) in items.enumerated() {
                if n > 0 { bytes.append(UInt8(ascii: ",")) }
                value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .numbers(let numbers):
            bytes.append(UInt8(ascii: "["))
            for i in 0..<numbers.count {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                value(numbers[i])
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let pairs):
            bytes.append(UInt8(ascii: "{"))
            for (n, (k, v)) in pairs.enumerated() {
                if n > 0 { bytes.append(UInt8(ascii: ",")) }
                string(k)
                bytes.append(UInt8(ascii: ":"))
                value(v)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Writes a whole JSON value for people to read: each array element and object member on its
    /// own line, indented by `indent` spaces per level, `"key" : value` as JSONEncoder's
    /// `.prettyPrinted` writes it; empty containers and number arrays stay on one line.
    public mutating func value(_ json: JSON, indent: Int, depth: Int = 0) {
        func newline(_ level: Int) {
            bytes.append(0x0A)
            bytes.append(contentsOf: repeatElement(0x20, count: indent * level))
        }
        switch json {
        case .array(let items) where !items.isEmpty:
            bytes.append(UInt8(ascii: "["))
            for (n, item) in items.enumerated() {
                if n > 0 { bytes.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                value(item, indent: indent, depth: depth + 1)
            }
            newline(depth)
            bytes.append(UInt8(ascii: "]"))
        case .object(let pairs) where !pairs.isEmpty:
            bytes.append(UInt8(ascii: "{"))
            for (n, (k, v)) in pairs.enumerated() {
                if n > 0 { bytes.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                string(k)
                raw(" : ")
                value(v, indent: indent, depth: depth + 1)
            }
            newline(depth)
            bytes.append(UInt8(ascii: "}"))
        default: value(json)
        }
    }

    /// Serialises a value in one call, indented as `value(_:indent:depth:)` does.
    public static func encode(_ json: JSON, indent: Int) -> [UInt8] {
        var w = JSONWriter()
        w.value(json, indent: indent)
        return w.bytes
    }

    /// Serialises a value in one call.
    public static func encode(_ json: JSON) -> [UInt8] {
        var w = JSONWriter()
        w.value(json)
        return w.bytes
    }
}
