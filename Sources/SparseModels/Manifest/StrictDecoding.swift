import Foundation

/// A coding key for any string (dynamic JSON object keys).
struct AnyCodingKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws if the current JSON object has a key outside `allowed`, naming the key and its path.
    func rejectUnknownKeys(allowed: [String]) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        let allowedSet = Set(allowed)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !allowedSet.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [AnyCodingKey(unknown)],
                debugDescription: "unknown key '\(unknown)' (allowed: \(allowed.joined(separator: ", ")))"))
        }
    }
}

/// `layers[2].activation` style rendering of a coding path.
func renderCodingPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let i = key.intValue {
            out += "[\(i)]"
        } else {
            out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return out
}

extension DecodingError {
    /// One line: where in the document, and what went wrong.
    var conciseDescription: String {
        func located(_ context: Context, _ message: String) -> String {
            let path = renderCodingPath(context.codingPath)
            return path.isEmpty ? message : "\(path): \(message)"
        }
        switch self {
        case .typeMismatch(let type, let context):
            return located(context, "expected \(Self.jsonTypeName(type))")
        case .valueNotFound(let type, let context):
            return located(context, "expected \(Self.jsonTypeName(type)), found null")
        case .keyNotFound(let key, let context):
            return located(context, "required key '\(key.stringValue)' is missing")
        case .dataCorrupted(let context):
            var message = context.debugDescription
            if let underlying = context.underlyingError as NSError?,
               let detail = underlying.userInfo[NSDebugDescriptionErrorKey] as? String {
                message += " (\(detail))"
            }
            return located(context, message)
        @unknown default:
            return "\(self)"
        }
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a \(name) value"
        }
    }
}
