import Foundation

/// A parsed JSON value. Objects keep their keys in document order so that error messages and
/// strict key checks can name what they found; numbers keep an exact integer when the literal is one.
///
/// Written here (rather than using `JSONSerialization`) because the v2 protocol needs exact 64-bit
/// integers, a clear distinction between `true` and `1`, byte offsets in error messages, and speed on
/// large `data` arrays.
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number: `double` is always set; `integer` is set when the literal has no fraction/exponent and fits Int64.
    case number(double: Double, integer: Int64?)
    case string(String)
    case array([JSON])
    /// An array of numbers only, parsed straight into buffers (`parse(_:typedNumberArrays:)`):
    /// one allocation per array instead of one boxed value per element.
    case numbers(JSONNumbers)
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a, ai), .number(b, bi)): return ai == bi && (a == b || (a.isNaN && b.isNaN))
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.numbers(a), .numbers(b)): return a == b
        case let (.numbers(a), .array(b)), let (.array(b), .numbers(a)): return a.boxed() == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The value for `key` in an object (first occurrence), else nil.
    public subscript(key: String) -> JSON? {
        if case .object(let pairs) = self {
            for (k, v) in pairs where k == key { return v }
        }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? {
        switch self {
        case .array(let a): return a
        case .numbers(let n): return n.boxed()
        default: return nil
        }
    }
    public var objectValue: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }
    public var doubleValue: Double? { if case .number(let d, _) = self { return d }; return nil }
    public var integerValue: Int64? { if case .number(_, let i) = self { return i }; return nil }

    /// A short name of the value's kind for error messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array, .numbers: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON syntax error with the byte offset where it was found.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var offset: Int
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

extension JSON {
    /// Parses a complete JSON document (RFC 8259) from UTF-8 bytes. Also accepts the tokens `NaN`,
    /// `Infinity` and `-Infinity` that Python's `json` module writes, so that callers can reject
    /// non-finite values with a precise message instead of a syntax error. Duplicate keys are an error.
    /// With `typedNumberArrays`, arrays whose elements are all numbers come back as `.numbers`
    /// (for large tensor data); otherwise every array is `.array`.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64, typedNumberArrays: Bool = false) throws -> JSON {
        try bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth, typedNumberArrays: typedNumberArrays)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            if parser.index != buffer.count { throw parser.error("unexpected trailing characters") }
            return value
        }
    }

    public static func parse(_ text: String) throws -> JSON { try parse(Array(text.utf8)) }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    let typedNumberArrays: Bool
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, typedNumberArrays: Bool) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.typedNumberArrays = typedNumberArrays
    }

    func error(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: index) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        let p = literal.utf8Start
        for i in 0..<count where bytes[index + i] != p[i] { throw error("unexpected character") }
        index += count
    }

    mutating func parseValue(depth: Int) throws -> JSON {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "N"): try expectLiteral("NaN"); return .number(double: .nan, integer: nil)
        case UInt8(ascii: "I"): try expectLiteral("Infinity"); return .number(double: .infinity, integer: nil)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(Unicode.Scalar(bytes[index]))'")
        }
    }

    mutating func parseObject(depth: Int) throws -> JSON {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        index += 1
        var pairs: [(String, JSON)] = []
        var seen = Set<String>()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(pairs) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            if !seen.insert(key).inserted { throw error("duplicate key \"\(key)\"") }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            pairs.append((key, try parseValue(depth: depth)))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(pairs) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws -> JSON {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        index += 1
        var items: [JSON] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        if typedNumberArrays {
            switch try parseNumbers(depth: depth) {
            case .done(let numbers): return .numbers(numbers)
            case .boxed(let prefix): items = prefix
            }
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    enum NumberRun {
        /// The whole array was numbers.
        case done(JSONNumbers)
        /// A non-number element follows these numbers; `index` is at it.
        case boxed([JSON])
    }

    /// Parses the array's leading numbers into buffers; stops at `]` or at the first other element.
    mutating func parseNumbers(depth: Int) throws -> NumberRun {
        var numbers = JSONNumbers()
        numbers.reserve(numberCountAhead())
        while true {
            // At the end of input the boxed path reports the error, as it does without typed arrays.
            guard index < bytes.count else { return .boxed(numbers.boxed()) }
            switch bytes[index] {
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (double, integer) = try parseNumberParts()
                numbers.append(double, integer)
            case UInt8(ascii: "N"):
                try expectLiteral("NaN")
                numbers.append(.nan, nil)
            case UInt8(ascii: "I"):
                try expectLiteral("Infinity")
                numbers.append(.infinity, nil)
            default:
                return .boxed(numbers.boxed())
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; skipWhitespace(); continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .done(numbers) }
            throw error("expected ',' or ']'")
        }
    }

    /// How many elements the array at `index` has when no `[`, `{` or `"` comes before the first
    /// `]` (commas + 1), else 0: what `parseNumbers` reserves, so its buffers are allocated once
    /// at their size instead of growing by doubling (callgrind, digits' 64-number requests: 9
    /// growths, ~5 000 instructions, and most of the compute threads' `malloc_consolidate`).
    /// `memchr` and a comma count over 8-byte words: ~1 instruction a byte. A list with
    /// `true`/`false`/`null` is counted too and then parsed boxed (the reserve is dropped);
    /// either way at most half the bytes left plus one: bounded by the body.
    func numberCountAhead() -> Int {
        guard index < bytes.count, let base = bytes.baseAddress else { return 0 }
        let start = base + index, left = bytes.count - index
        guard let close = memchr(start, Int32(UInt8(ascii: "]")), left) else { return 0 }
        let length = UnsafeRawPointer(close) - UnsafeRawPointer(start)
        if memchr(start, Int32(UInt8(ascii: "[")), length) != nil || memchr(start, Int32(UInt8(ascii: "{")), length) != nil
            || memchr(start, Int32(UInt8(ascii: "\"")), length) != nil { return 0 }
        // Commas 8 bytes at a time: a byte of x is zero where the input has a comma, and the
        // high bit of each zero byte (only) survives the masks below; no carry crosses bytes.
        // (Summed by a multiply, not `nonzeroBitCount`: the baseline x86-64 target has no popcnt.)
        var commas = 0, i = 0
        let raw = UnsafeRawPointer(start), low: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        while i + 8 <= length {
            let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x2C2C_2C2C_2C2C_2C2C
            let marks = ~(((x & low) &+ low) | x | low) >> 7  // 1 in each byte that was a comma
            commas &+= Int(truncatingIfNeeded: (marks &* 0x0101_0101_0101_0101) >> 56)  // their sum, in the top byte
            i += 8
        }
        while i < length {
            commas &+= start[i] == UInt8(ascii: ",") ? 1 : 0
            i += 1
        }
        return commas + 1
    }

    mutating func parseHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    mutating func parseString() throws -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let s = String(validating: slice, as: UTF8.self) else {
                    throw JSONParseError(message: "string is not valid UTF-8", offset: start)
                }
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            index += 1
        }
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw JSONParseError(message: "string is not valid UTF-8", offset: start)
                }
                return s
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); index += 1; continue }
            index += 1
            guard index < bytes.count else { break }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired surrogate in \\u escape") }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("invalid low surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw error("invalid escape character")
            }
        }
        throw error("unterminated string")
    }

    mutating func parseNumber() throws -> JSON {
        let (double, integer) = try parseNumberParts()
        return .number(double: double, integer: integer)
    }

    /// A number literal's value, and its exact integer when it has no fraction or exponent and fits Int64.
    mutating func parseNumberParts() throws -> (Double, Int64?) {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "I") {
                try expectLiteral("Infinity")
                return (-.infinity, nil)
            }
        }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("invalid number")
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var overflow = false
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                throw error("leading zeros are not allowed")
            }
            digits = 1
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                let d = UInt64(bytes[index] - UInt8(ascii: "0"))
                let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(d)
                if o1 || o2 { overflow = true } else { mantissa = m2 }
                digits += 1
                index += 1
            }
        }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("expected a digit after '.'")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("expected a digit in the exponent")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if isInteger && !overflow && digits <= 19 {
            if negative {
                if mantissa <= UInt64(Int64.max) + 1 {
                    let value = mantissa == UInt64(Int64.max) + 1 ? Int64.min : -Int64(mantissa)
                    return (Double(value), value)
                }
            } else if mantissa <= UInt64(Int64.max) {
                return (Double(mantissa), Int64(mantissa))
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw JSONParseError(message: "invalid number", offset: start) }
        return (value, nil)
    }
}

/// The elements of an all-number JSON array: every value as a double, and which literals were
/// integers that fit Int64 (exact values kept aside for the few beyond 2^53, where a double
/// cannot hold them).
public struct JSONNumbers: Sendable, Equatable {
    public private(set) var doubles: [Double] = []
    /// Bit i: element i was an integer literal that fits Int64.
    private var integerBits: [UInt64] = []
    /// Exact values of integer elements with magnitude above 2^53.
    private var largeIntegers: [Int: Int64] = [:]

    public var count: Int { doubles.count }

    /// Room for `count` elements.
    mutating func reserve(_ count: Int) {
        guard count > 0 else { return }
        doubles.reserveCapacity(count)
        integerBits.reserveCapacity((count + 63) / 64)
    }

    mutating func append(_ double: Double, _ integer: Int64?) {
        let i = doubles.count
        if i % 64 == 0 { integerBits.append(0) }
        if let integer {
            integerBits[i / 64] |= 1 << UInt64(i % 64)
            if integer.magnitude > 1 << 53 { largeIntegers[i] = integer }
        }
        doubles.append(double)
    }

    /// Element i's exact integer, or nil when its literal was not an integer fitting Int64.
    public func integer(at i: Int) -> Int64? {
        guard integerBits[i / 64] & (1 << UInt64(i % 64)) != 0 else { return nil }
        return largeIntegers[i] ?? Int64(doubles[i])
    }

    /// Element `i` as a boxed value.
    public subscript(i: Int) -> JSON { .number(double: doubles[i], integer: integer(at: i)) }

    /// The elements as boxed values.
    public func boxed() -> [JSON] { (0..<count).map { self[$0] } }

    public static func == (a: JSONNumbers, b: JSONNumbers) -> Bool { a.boxed() == b.boxed() }
}
