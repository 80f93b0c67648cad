import Foundation

/// Encodes an `Encodable` value (artifact metadata records, reports, manifests) into a `JSON`
/// value, so Codable types are written by `JSONWriter` with the package's one string escaper.
///
/// Matches what `JSONEncoder` wrote for these types: keys in sorted order, slashes unescaped,
/// `Data` as base64, `URL` as its absolute string, nil optionals omitted, and non-finite floats
/// refused unless a spelling for them is given.
public struct JSONValueEncoder: Sendable {
    /// What a NaN or infinite `Float`/`Double` becomes.
    public enum NonFiniteFloats: Sendable {
        /// Encoding fails (as `JSONEncoder` does by default).
        case refuse
        /// Written as these strings.
        case strings(positiveInfinity: String, negativeInfinity: String, nan: String)
    }

    /// Object keys in sorted order (true) or in the order the value encoded them.
    public var sortedKeys = true
    public var nonFiniteFloats = NonFiniteFloats.refuse

    public init() {}

    /// A non-finite number met while `nonFiniteFloats` is `.refuse`, with where it sat.
    public struct NonFiniteNumber: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "cannot write the non-finite number at '\(path)' as JSON" }
    }

    /// The JSON value of `value`.
    public func encode<T: Encodable>(_ value: T) throws -> JSON {
        let slot = Slot()
        try TreeEncoder(slot: slot, options: self, codingPath: []).box(value, into: slot, path: [])
        return slot.json(sortedKeys: sortedKeys)
    }

    /// `value` as JSON text: compact, or with each member on its own line indented by `indent` spaces.
    public func text<T: Encodable>(_ value: T, indent: Int? = nil) throws -> String {
        let json = try encode(value)
        return String(decoding: indent.map { JSONWriter.encode(json, indent: $0) } ?? JSONWriter.encode(json), as: UTF8.self)
    }
}

/// Where one value of the tree being built goes; containers hand out slots for their members.
private final class Slot {
    enum Content { case empty, value(JSON), object(ObjectNode), array(ArrayNode) }
    var content = Content.empty

    func object() -> ObjectNode {
        if case .object(let node) = content { return node }
        let node = ObjectNode()
        content = .object(node)
        return node
    }

    func array() -> ArrayNode {
        if case .array(let node) = content { return node }
        let node = ArrayNode()
        content = .array(node)
        return node
    }

    func json(sortedKeys: Bool) -> JSON {
        switch content {
        case .empty: return .object([])
        case .value(let json): return json
        case .array(let node): return .array(node.items.map { $0.json(sortedKeys: sortedKeys) })
        case .object(let node):
            let keys = sortedKeys ? node.keys.sorted() : node.keys
            return .object(keys.map { ($0, node.members[$0]!.json(sortedKeys: sortedKeys)) })
        }
    }
}

private final class ObjectNode {
    var keys: [String] = []
    var members: [String: Slot] = [:]

    func slot(_ key: String) -> Slot {
        if let slot = members[key] { return slot }
        let slot = Slot()
        keys.append(key)
        members[key] = slot
        return slot
    }
}

private final class ArrayNode {
    var items: [Slot] = []

    func append() -> Slot {
        let slot = Slot()
        items.append(slot)
        return slot
    }
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}

private struct TreeEncoder: Encoder {
    let slot: Slot
    let options: JSONValueEncoder
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedContainer<Key>(node: slot.object(), encoder: self, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        UnkeyedContainer(node: slot.array(), encoder: self, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleContainer(encoder: self) }

    /// Writes `value` into `target`: numbers, strings, booleans, `Data` and `URL` directly, any
    /// other type through its own `encode(to:)`.
    func box<T: Encodable>(_ value: T, into target: Slot, path: [any CodingKey]) throws {
        switch value {
        case let v as String: target.content = .value(.string(v))
        case let v as Bool: target.content = .value(.bool(v))
        case let v as Double: target.content = .value(try number(v, path: path))
        case let v as Float: target.content = .value(try number(v, path: path))
        case let v as Data: target.content = .value(.string(v.base64EncodedString()))
        case let v as URL: target.content = .value(.string(v.absoluteString))
        case let v as any BinaryInteger:
            let exact = Int64(exactly: v)
            target.content = .value(.number(double: Double(v), integer: exact))
        default:
            try value.encode(to: TreeEncoder(slot: target, options: options, codingPath: path))
        }
    }

    /// A double as itself; a float through its shortest spelling, so 0.1f is written as 0.1.
    private func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F, path: [any CodingKey]) throws -> JSON {
        if v.isFinite { return .number(double: Double(v.description) ?? Double(v), integer: nil) }
        guard case .strings(let positive, let negative, let nan) = options.nonFiniteFloats else {
            throw JSONValueEncoder.NonFiniteNumber(path: path.map(\.stringValue).joined(separator: "."))
        }
        return .string(v.isNaN ? nan : v > 0 ? positive : negative)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: ObjectNode
    let encoder: TreeEncoder
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.slot(key.stringValue).content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encoder.box(value, into: node.slot(key.stringValue), path: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(KeyedContainer<NestedKey>(node: node.slot(key.stringValue).object(), encoder: encoder, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        UnkeyedContainer(node: node.slot(key.stringValue).array(), encoder: encoder, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoder(slot: node.slot("super"), options: encoder.options, codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        TreeEncoder(slot: node.slot(key.stringValue), options: encoder.options, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: ArrayNode
    let encoder: TreeEncoder
    let codingPath: [any CodingKey]
    var count: Int { node.items.count }

    mutating func encodeNil() throws { node.append().content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try encoder.box(value, into: node.append(), path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(count)]
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: node.append().object(), encoder: encoder, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        return UnkeyedContainer(node: node.append().array(), encoder: encoder, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [IndexKey(count)]
        return TreeEncoder(slot: node.append(), options: encoder.options, codingPath: path)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: TreeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.slot.content = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encoder.box(value, into: encoder.slot, path: codingPath)
    }
}
