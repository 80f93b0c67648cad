import Foundation

/// One value of a JSON file read leniently (third-party files such as Hugging Face's
/// `config.json`): scalars are kept, arrays and objects only as `.other` unless asked for.
enum LooseJSONValue: Decodable, Equatable {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case other

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else { self = .other }
    }

    var int: Int? { if case .int(let v) = self { return v } else { return nil } }
    var double: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
    var string: String? { if case .string(let v) = self { return v } else { return nil } }
    var bool: Bool? { if case .bool(let v) = self { return v } else { return nil } }
}

/// Reading third-party JSON files whose keys we do not own (unknown keys are ignored).
enum LooseJSON {
    /// The top-level object of the file at `path`, or nil when it is missing or not an object.
    static func object(at path: String) -> [String: LooseJSONValue]? {
        FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode([String: LooseJSONValue].self, from: $0) }
    }

    /// The top-level array of objects of the file at `path`, or nil.
    static func objects(at path: String) -> [[String: LooseJSONValue]]? {
        FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode([[String: LooseJSONValue]].self, from: $0) }
    }
}
