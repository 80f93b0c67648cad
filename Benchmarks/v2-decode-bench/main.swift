import Foundation
import SparseModels
import SparseServe

// Decode time of a v2 JSON inference request of about 1 MB holding one FP32 tensor, through
// V2Codec.decodeRequest: `data` parsed straight into typed buffers (what the server does) against
// the boxed baseline (one JSON value per element, then copied out), alternating in the same run.
// Usage: swift run -c release v2-decode-bench [--megabytes 1] [--rounds 20]

func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = CommandLine.arguments.firstIndex(of: name), i + 1 < CommandLine.arguments.count else { return fallback }
    return Int(CommandLine.arguments[i + 1]) ?? fallback
}

let megabytes = option("--megabytes", 1), rounds = option("--rounds", 20)
// Values like a real client writes them (Python's json: shortest round-trip repr), 12-20 bytes each.
var state: UInt64 = 0x9E37_79B9_7F4A_7C15
var values: [Float] = []
var text = ""
while text.utf8.count < megabytes << 20 {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    let v = Float(Double(state >> 11) / Double(1 << 53) * 2 - 1)
    values.append(v)
    text += (text.isEmpty ? "" : ",") + "\(v)"
}
let width = 64, rows = values.count / width
let count = rows * width
let data = values.prefix(count).map { "\($0)" }.joined(separator: ",")
let body = Array(#"{"inputs":[{"name":"x","datatype":"FP32","shape":[\#(rows),\#(width)],"data":[\#(data)]}]}"#.utf8)
let spec = TensorSpec(name: "x", datatype: .fp32, shape: [-1, width])
let output = TensorSpec(name: "y", datatype: .fp32, shape: [-1, 1])

func time(typed: Bool) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    let request = try V2Codec.decodeRequest(body, headerLength: nil, inputs: [spec], outputs: [output], typedNumberArrays: typed)
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    guard request.inputs["x"]?.elementCount == count else { fatalError("decoded the wrong element count") }
    return elapsed
}

var typed: [Double] = [], boxed: [Double] = []
for _ in 0..<rounds {
    typed.append(try time(typed: true))
    boxed.append(try time(typed: false))
}
func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
print("v2 FP32 request: \(body.count) bytes, \(count) elements, \(rounds) alternating rounds, load average \(load)")
print(String(format: "boxed JSON values (baseline): median %.2f ms, best %.2f ms", median(boxed), boxed.min()!))
print(String(format: "typed number buffers:         median %.2f ms, best %.2f ms", median(typed), typed.min()!))
print(String(format: "speed-up (median): %.2fx", median(boxed) / median(typed)))
