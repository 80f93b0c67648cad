import Foundation
import SparseJSON

/// Reads an object's keys one by one and reports any key left unread as unknown.
struct StrictObject {
    private var pairs: [(String, JSON)]
    private var used = Set<String>()
    let path: String

    init(_ json: JSON, path: String) throws {
        guard let pairs = json.objectValue else {
            throw ConfigError(field: path, reason: "must be an object, got \(json.kindName)")
        }
        self.pairs = pairs
        self.path = path
    }

    private func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func take(_ key: String) throws -> JSON? {
        used.insert(key)
        return pairs.first(where: { $0.0 == key })?.1
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = try take(key) else { return nil }
        guard let s = v.stringValue else { throw ConfigError(field: field(key), reason: "must be a string, got \(v.kindName)") }
        return s
    }

    mutating func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = try take(key) else { return nil }
        guard let i = v.integerValue else { throw ConfigError(field: field(key), reason: "must be an integer, got \(v.kindName)") }
        guard i >= Int64(range.lowerBound), i <= Int64(range.upperBound) else {
            throw ConfigError(field: field(key), reason: "\(i) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(i)
    }

    mutating func seconds(_ key: String, allowZero: Bool = false) throws -> Double? {
        guard let v = try take(key) else { return nil }
        guard let d = v.doubleValue, d.isFinite else { throw ConfigError(field: field(key), reason: "must be a number of seconds, got \(v.kindName)") }
        guard d > 0 || (allowZero && d == 0), d <= 86_400 else {
            throw ConfigError(field: field(key), reason: "\(d) must be \(allowZero ? "≥ 0" : "> 0") and at most 86400 seconds")
        }
        return d
    }

    func finish() throws {
        for (k, _) in pairs where !used.contains(k) {
            let known = used.sorted().joined(separator: ", ")
            throw ConfigError(field: field(k), reason: "unknown key (known keys here: \(known))")
        }
    }
}
