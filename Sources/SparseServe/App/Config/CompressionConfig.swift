import Foundation
import SparseCompression
import SparseJSON
import SparseKernels
import SparseModels

/// How an endpoint's linear layers are stored and run (`"compression"`): `dense`, magnitude
/// `nm` (n, m) or `csr` (density), with per-layer overrides by name pattern (`"layers"`); any
/// dense, nm, blast or csr method may add `"quantize"` (int8 or bf16 weights, `WeightQuantization`).
public struct CompressionConfig: Sendable, Equatable {
    /// The endpoint-wide method name ("dense", "nm", "csr").
    public var method = "dense"
    public var plan = CompressionPlan.dense
    /// Whether the endpoint config has a `"compression"` block (an artifact model must not).
    public var isSpecified = false
    /// Data-aware compression (`"calibration"`, `"saliency"`, `"refit"`, `"refitIterations"`, `"damping"`), when asked for.
    public var calibration: CalibrationOptions?
    public init() {}

    /// Parses a `"compression"` object on its own (the `inspect` command's `--compression`).
    public static func parse(_ text: String) throws -> CompressionConfig {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw ConfigError(field: "compression", reason: "\(error)") }
        let wrapped = JSON.object([("name", .string("inspect")), ("model", .string("/")), ("compression", json)])
        do {
            return try ServiceConfig.parseEndpoint(wrapped, path: "", baseDirectory: FileManager.default.currentDirectoryPath).compression
        } catch var error as ConfigError {
            if error.field.hasPrefix(".") { error.field.removeFirst() }
            throw error
        }
    }

    /// The compression block's keys for data-aware compression.
    static let calibrationKeys: Set<String> = ["calibration", "saliency", "refit", "refitIterations", "damping", "rounding"]

    /// `"calibration": "PATH"` or `{"path": "PATH", "samples": N}` (`"default"` or no path: the
    /// model folder's own set), `"saliency"`, `"refit"`, `"refitIterations"`, `"damping"`, `"rounding"`; nil when none is given.
    static func parseCalibration(_ pairs: [(String, JSON)], path: String, baseDirectory: String) throws -> CalibrationOptions? {
        guard !pairs.isEmpty else { return nil }
        var o = try StrictObject(.object(pairs), path: path)
        var options = CalibrationOptions()
        if let c = try o.take("calibration") {
            if let text = c.stringValue {
                options.path = text == "default" ? nil : ServiceConfig.resolve(text, baseDirectory)
            } else {
                var co = try StrictObject(c, path: "\(path).calibration")
                if let p = try co.string("path"), p != "default" { options.path = ServiceConfig.resolve(p, baseDirectory) }
                if let n = try co.integer("samples", in: 1...CalibrationOptions.maximumSamples) { options.samples = n }
                try co.finish()
            }
        }
        if let v = try o.string("saliency") {
            guard let saliency = CalibrationOptions.Saliency(rawValue: v) else {
                throw ConfigError(field: "\(path).saliency", reason: "'\(v)' is not one of magnitude, activation, hessian")
            }
            options.saliency = saliency
        }
        if let v = try o.take("refit") {
            guard let flag = v.boolValue else { throw ConfigError(field: "\(path).refit", reason: "must be true or false") }
            options.refit = flag
        }
        if let n = try o.integer("refitIterations", in: 1...1000) { options.refitIterations = n }
        if let v = try o.take("damping") {
            guard let d = v.doubleValue, d > 0, d <= 1 else { throw ConfigError(field: "\(path).damping", reason: "must be a number in (0, 1]") }
            options.damping = d
        }
        if let v = try o.string("rounding") {
            guard let rounding = CalibrationOptions.Rounding(rawValue: v) else {
                throw ConfigError(field: "\(path).rounding", reason: "'\(v)' is not one of nearest, gptq")
            }
            options.rounding = rounding
        }
        try o.finish()
        return options
    }

    /// `{"method": "exact"}` or `{"method": "pwl", "segments": 2...256}` (default 64 segments).
    static func parseActivations(_ json: JSON, path: String) throws -> ActivationApproximation {
        var o = try StrictObject(json, path: path)
        let result: ActivationApproximation
        switch try o.string("method") ?? "exact" {
        case "exact": result = .exact
        case "pwl": result = .pwl(segments: try o.integer("segments", in: 2...256) ?? 64)
        case let other: throw ConfigError(field: "\(path).method", reason: "'\(other)' is not an activation method (exact, pwl)")
        }
        try o.finish()
        return result
    }

    /// `{"weights": "bf16"}`, `{"weights": "int8", "granularity": "channel" | {"group": N}}` or
    /// `{"weights": "int8", "activations": "int8-dynamic"}` (per-channel weights, per-token activations).
    static func parseQuantize(_ json: JSON, path: String) throws -> WeightQuantization {
        var o = try StrictObject(json, path: path)
        guard let weights = try o.string("weights") else { throw ConfigError(field: "\(path).weights", reason: "is required ('int8' or 'bf16')") }
        let granularity = try o.take("granularity"), activations = try o.string("activations")
        let result: WeightQuantization
        switch weights {
        case "bf16":
            guard granularity == nil, activations == nil else {
                throw ConfigError(field: path, reason: "bf16 weights take no 'granularity' or 'activations'")
            }
            result = .bf16
        case "int8":
            var scales = Int8Granularity.channel
            if let granularity {
                if granularity.stringValue == "channel" {
                    scales = .channel
                } else if case .object = granularity {
                    var g = try StrictObject(granularity, path: "\(path).granularity")
                    guard let width = try g.integer("group", in: 1...65536) else {
                        throw ConfigError(field: "\(path).granularity.group", reason: "is required (a group width in 1...65536)")
                    }
                    try g.finish()
                    scales = .group(width)
                } else {
                    throw ConfigError(field: "\(path).granularity", reason: "must be \"channel\" or {\"group\": N}")
                }
            }
            switch activations {
            case nil: result = .int8(scales)
            case "int8-dynamic":
                guard scales == .channel else {
                    throw ConfigError(field: "\(path).granularity", reason: "int8-dynamic activations run with per-channel weight scales")
                }
                result = .int8Dynamic
            case let other?:
                throw ConfigError(field: "\(path).activations", reason: "'\(other)' is not an activation quantization (int8-dynamic)")
            }
        default:
            throw ConfigError(field: "\(path).weights", reason: "'\(weights)' is not a weight format (int8, bf16)")
        }
        try o.finish()
        return result
    }

    static func parseMethod(_ json: JSON, path: String) throws -> (String, LayerCompression) {
        var o = try StrictObject(json, path: path)
        guard let method = try o.string("method") else { throw ConfigError(field: "\(path).method", reason: "is required") }
        var result: LayerCompression
        switch method {
        case "dense":
            result = .dense
        case "nm":
            guard let n = try o.integer("n", in: 1...15), let m = try o.integer("m", in: 4...16) else {
                throw ConfigError(field: path, reason: "method 'nm' needs integers 'n' and 'm'")
            }
            guard [4, 8, 16].contains(m), n < m else {
                throw ConfigError(field: "\(path).m", reason: "\(n):\(m) is not supported: m must be 4, 8 or 16 and n < m")
            }
            switch try o.string("mask") ?? "magnitude" {
            case "magnitude": result = .nm(n: n, m: m)
            case "transposable": result = .transposableNM(n: n, m: m)
            case let other: throw ConfigError(field: "\(path).mask", reason: "'\(other)' is not a mask kind (magnitude, transposable)")
            }
        case "csr":
            guard let d = try o.take("density"), let density = d.doubleValue, density > 0, density <= 1 else {
                throw ConfigError(field: "\(path).density", reason: "method 'csr' needs a 'density' in (0, 1]")
            }
            result = .csr(density: density)
        case "blast":
            guard let b = try o.integer("blocks", in: 1...64) else {
                throw ConfigError(field: "\(path).blocks", reason: "method 'blast' needs 'blocks' (1...64)")
            }
            let rank = try o.integer("rank", in: 1...65536)
            var ratio: Double?
            if let v = try o.take("parameterRatio") {
                guard let d = v.doubleValue, d > 0, d < 1 else {
                    throw ConfigError(field: "\(path).parameterRatio", reason: "must be a number in (0, 1)")
                }
                ratio = d
            }
            guard (rank == nil) != (ratio == nil) else {
                throw ConfigError(field: path, reason: "method 'blast' needs exactly one of 'rank' and 'parameterRatio'")
            }
            let iterations = try o.integer("iterations", in: 1...10_000) ?? 100
            result = .blast(blocks: b, rank: rank, parameterRatio: ratio, iterations: iterations)
        case "l1inf":
            let groups = try o.string("groups") ?? "columns"
            guard let g = L1InfGroups(rawValue: groups) else {
                throw ConfigError(field: "\(path).groups", reason: "'\(groups)' must be 'columns' or 'rows'")
            }
            var radius: Double?, ratio: Double?
            if let v = try o.take("radius") {
                guard let d = v.doubleValue, d >= 0, d.isFinite else { throw ConfigError(field: "\(path).radius", reason: "must be a number ≥ 0") }
                radius = d
            }
            if let v = try o.take("radiusRatio") {
                guard let d = v.doubleValue, d > 0, d <= 1 else { throw ConfigError(field: "\(path).radiusRatio", reason: "must be a number in (0, 1]") }
                ratio = d
            }
            guard (radius == nil) != (ratio == nil) else {
                throw ConfigError(field: path, reason: "method 'l1inf' needs exactly one of 'radius' and 'radiusRatio'")
            }
            result = .l1inf(groups: g, radius: radius, radiusRatio: ratio)
        default:
            throw ConfigError(field: "\(path).method", reason: "'\(method)' is not a supported method (supported: dense, nm, csr, blast, l1inf)")
        }
        if let quantize = try o.take("quantize") {
            let scheme = try parseQuantize(quantize, path: "\(path).quantize")
            do { try scheme.check(result, outputs: 1, inputs: 1) } catch {
                throw ConfigError(field: "\(path).quantize", reason: "\(error)")
            }
            result = .quantized(result, scheme)
        }
        if let pin = try o.take("pin") {
            guard let flag = pin.boolValue else { throw ConfigError(field: "\(path).pin", reason: "must be true or false") }
            if flag, result != .dense { result = .pinned(result) }
        }
        try o.finish()
        return (method, result)
    }
}
