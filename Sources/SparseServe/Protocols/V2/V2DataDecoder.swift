import SparseModels
import SparseJSON

extension V2Codec {
    /// Counts scalar leaves of nested `data` without allocating.
    static func countLeaves(_ json: JSON, input: String) throws -> Int {
        switch json {
        case .numbers(let numbers): return numbers.count
        case .array(let items):
            var total = 0
            for item in items {
                switch item {
                case .array, .numbers: total += try countLeaves(item, input: input)
                default: total += 1
                }
            }
            return total
        default:
            throw ProtocolError(400, "input '\(input)': 'data' must be an array, got \(json.kindName)")
        }
    }

    /// Visits the leaves of nested `data` in order: runs of typed numbers whole, other values one by one.
    static func forEachLeaf(_ json: JSON, numbers: (JSONNumbers) throws -> Void, value: (JSON) throws -> Void) rethrows {
        switch json {
        case .array(let items): for item in items { try forEachLeaf(item, numbers: numbers, value: value) }
        case .numbers(let run): try numbers(run)
        default: try value(json)
        }
    }

    /// The typed storage of `data` (its leaf count already checked against `count`). Number runs
    /// parsed into buffers (`JSON.parse(typedNumberArrays:)`) are converted in one pass each.
    static func decodeData(_ data: JSON, datatype: DataType, count: Int, input: String) throws -> TensorStorage {
        var leaves = LeafReader(input: input, datatype: datatype)
        switch datatype {
        case .fp32: return .fp32(try reals(data, &leaves, count: count) { try $0.float($1) })
        case .fp64: return .fp64(try reals(data, &leaves, count: count) { try $0.finite($1) })
        case .int32: return .int32(try integers(data, &leaves, count: count, range: Int64(Int32.min)...Int64(Int32.max)).map { Int32($0) })
        case .int64: return .int64(try integers(data, &leaves, count: count, range: Int64.min...Int64.max))
        case .uint8: return .uint8(try integers(data, &leaves, count: count, range: 0...255).map { UInt8($0) })
        case .bool:
            var out = [Bool](); out.reserveCapacity(count)
            try forEachLeaf(data, numbers: { _ in throw leaves.bad("must be true or false, got a number") }, value: { v in
                guard let b = v.boolValue else { throw leaves.bad("must be true or false, got \(v.kindName)") }
                out.append(b); leaves.index += 1
            })
            return .bool(out)
        case .bytes:
            var out = [[UInt8]](); out.reserveCapacity(count)
            try forEachLeaf(data, numbers: { _ in throw leaves.bad("must be a string, got a number") }, value: { v in
                guard let s = v.stringValue else { throw leaves.bad("must be a string, got \(v.kindName)") }
                out.append(Array(s.utf8)); leaves.index += 1
            })
            return .bytes(out)
        }
    }

    /// The leaves of a floating-point `data` array, each checked and converted by `convert`.
    private static func reals<T>(_ data: JSON, _ leaves: inout LeafReader, count: Int,
                                 _ convert: (inout LeafReader, Double) throws -> T) throws -> [T] {
        var out = [T](); out.reserveCapacity(count)
        try forEachLeaf(data, numbers: { run in
            for d in run.doubles { out.append(try convert(&leaves, d)) }
        }, value: { out.append(try convert(&leaves, try leaves.real($0))) })
        return out
    }

    /// The leaves of integer data, each checked to be an integer in `range`.
    private static func integers(_ data: JSON, _ leaves: inout LeafReader, count: Int, range: ClosedRange<Int64>) throws -> [Int64] {
        var out = [Int64](); out.reserveCapacity(count)
        try forEachLeaf(data, numbers: { run in
            for i in 0..<run.count {
                out.append(try leaves.integer(run.integer(at: i), isNumber: true, in: range))
            }
        }, value: { v in
            if case .number = v {
                out.append(try leaves.integer(v.integerValue, isNumber: true, in: range))
            } else {
                out.append(try leaves.integer(nil, isNumber: false, kind: v.kindName, in: range))
            }
        })
        return out
    }
}

/// Checks data leaves one by one, counting them so errors name the element.
private struct LeafReader {
    let input: String
    let datatype: DataType
    var index = 0

    func bad(_ what: String) -> ProtocolError { ProtocolError(400, "input '\(input)': element \(index) \(what)") }

    func real(_ v: JSON) throws -> Double {
        guard let d = v.doubleValue else { throw bad("must be a number, got \(v.kindName)") }
        return d
    }

    func checkFinite(_ d: Double) throws {
        guard d.isFinite else { throw bad("is \(d.isNaN ? "NaN" : "infinite"); only finite numbers are accepted") }
    }

    mutating func finite(_ d: Double) throws -> Double {
        try checkFinite(d)
        index += 1
        return d
    }

    mutating func float(_ d: Double) throws -> Float {
        try checkFinite(d)
        let f = Float(d)
        guard f.isFinite else { throw bad("is outside the FP32 range") }
        index += 1
        return f
    }

    mutating func integer(_ value: Int64?, isNumber: Bool, kind: String = "a number", in range: ClosedRange<Int64>) throws -> Int64 {
        guard let i = value else {
            throw bad(isNumber ? "is not an integer (\(datatype.rawValue))" : "must be a number, got \(kind)")
        }
        guard range.contains(i) else { throw bad("value \(i) is out of range for \(datatype.rawValue)") }
        index += 1
        return i
    }
}
