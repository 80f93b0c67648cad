import SparseModels
import SparseJSON

extension V2Codec {
    /// Counts scalar leaves of nested `data` without allocating.
    static func countLeaves(_ json: JSON, input: String) throws -> Int {
        guard case .array(let items) = json else {
            throw ProtocolError(400, "input '\(input)': 'data' must be an array, got \(json.kindName)")
        }
        var total = 0
        for item in items {
            if case .array = item { total += try countLeaves(item, input: input) } else { total += 1 }
        }
        return total
    }

    static func forEachLeaf(_ json: JSON, _ body: (JSON) throws -> Void) rethrows {
        if case .array(let items) = json {
            for item in items { try forEachLeaf(item, body) }
        } else {
            try body(json)
        }
    }

    static func decodeData(_ data: JSON, datatype: DataType, count: Int, input: String) throws -> TensorStorage {
        var index = 0
        func bad(_ what: String) -> ProtocolError {
            ProtocolError(400, "input '\(input)': element \(index) \(what)")
        }
        func integer(_ v: JSON, in range: ClosedRange<Int64>) throws -> Int64 {
            guard let i = v.integerValue else {
                if case .number = v { throw bad("is not an integer (\(datatype.rawValue))") }
                throw bad("must be a number, got \(v.kindName)")
            }
            guard range.contains(i) else { throw bad("value \(i) is out of range for \(datatype.rawValue)") }
            return i
        }
        func real(_ v: JSON) throws -> Double {
            guard let d = v.doubleValue else { throw bad("must be a number, got \(v.kindName)") }
            guard d.isFinite else { throw bad("is \(d.isNaN ? "NaN" : "infinite"); only finite numbers are accepted") }
            return d
        }
        switch datatype {
        case .fp32:
            var out = [Float](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in
                let f = Float(try real(v))
                guard f.isFinite else { throw bad("is outside the FP32 range") }
                out.append(f); index += 1
            }
            return .fp32(out)
        case .fp64:
            var out = [Double](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in out.append(try real(v)); index += 1 }
            return .fp64(out)
        case .int32:
            var out = [Int32](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in out.append(Int32(try integer(v, in: Int64(Int32.min)...Int64(Int32.max)))); index += 1 }
            return .int32(out)
        case .int64:
            var out = [Int64](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in out.append(try integer(v, in: Int64.min...Int64.max)); index += 1 }
            return .int64(out)
        case .uint8:
            var out = [UInt8](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in out.append(UInt8(try integer(v, in: 0...255))); index += 1 }
            return .uint8(out)
        case .bool:
            var out = [Bool](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in
                guard let b = v.boolValue else { throw bad("must be true or false, got \(v.kindName)") }
                out.append(b); index += 1
            }
            return .bool(out)
        case .bytes:
            var out = [[UInt8]](); out.reserveCapacity(count)
            try forEachLeaf(data) { v in
                guard let s = v.stringValue else { throw bad("must be a string, got \(v.kindName)") }
                out.append(Array(s.utf8)); index += 1
            }
            return .bytes(out)
        }
    }
}
