import class Prometheus.PrometheusCollectorRegistry

/// The text of `GET /metrics`: swift-prometheus's exposition with a `# HELP` line before every
/// `# TYPE` line (from `MetricCatalog.help`), since metrics made through swift-metrics carry none.
enum PrometheusExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        withHelp(registry.emitToBuffer())
    }

    /// `text` with a HELP line inserted before each `# TYPE name kind` line.
    static func withHelp(_ text: [UInt8]) -> [UInt8] {
        let typePrefix = Array("# TYPE ".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 4096)
        var start = 0
        while start < text.count {
            let end = text[start...].firstIndex(of: UInt8(ascii: "\n")) ?? text.count
            let line = text[start..<end]
            if line.starts(with: typePrefix) {
                let nameBytes = line.dropFirst(typePrefix.count).prefix { $0 != UInt8(ascii: " ") }
                let name = String(decoding: nameBytes, as: UTF8.self)
                out += Array("# HELP \(name) ".utf8) + escaped(MetricCatalog.help[name] ?? MetricCatalog.foreignHelp) + [UInt8(ascii: "\n")]
            }
            out += line
            out.append(UInt8(ascii: "\n"))
            start = end + 1
        }
        return out
    }

    /// Help text escaped as the text format wants: `\` → `\\`, newline → `\n`.
    static func escaped(_ help: String) -> [UInt8] {
        var out: [UInt8] = []
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            default: out.append(byte)
            }
        }
        return out
    }
}
