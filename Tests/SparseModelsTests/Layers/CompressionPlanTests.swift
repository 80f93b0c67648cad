import XCTest
@testable import SparseModels

/// Per-layer methods by glob pattern (first match wins) and plan equality.
final class CompressionPlanTests: XCTestCase {
    func testGlobMatching() {
        let cases: [(String, String, Bool)] = [
            ("fc1", "fc1", true), ("fc1", "fc", false), ("fc", "fc1", false), ("fc1", "fc*", true), ("fc", "fc*", true),
            ("encoder.3.ffn.up", "encoder.*.ffn.*", true), ("encoder.3.attn.q", "encoder.*.ffn.*", false),
            ("abcabd", "*abd", true), ("aaa", "a*a*a", true), ("aa", "a*a*a", false), ("", "*", true), ("", "", true),
            ("x", "", false), ("a.b", "a?b", false), ("classifier", "**", true), ("layer", "*y*r", true),
        ]
        for (name, pattern, expected) in cases {
            XCTAssertEqual(CompressionPlan.matches(name, pattern: pattern), expected, "'\(name)' ~ '\(pattern)'")
        }
    }

    func testFirstMatchingOverrideWins() {
        let plan = CompressionPlan(method: .nm(n: 2, m: 4), overrides: [("fc3", .dense), ("fc*", .csr(density: 0.25)), ("fc3", .nm(n: 1, m: 4))])
        XCTAssertEqual(plan.method(forLayer: "fc3"), .dense)
        XCTAssertEqual(plan.method(forLayer: "fc1"), .csr(density: 0.25))
        XCTAssertEqual(plan.method(forLayer: "out"), .nm(n: 2, m: 4))
        XCTAssertEqual(CompressionPlan.dense.method(forLayer: "anything"), .dense)
    }

    func testEqualityComparesOverridesInOrder() {
        let a = CompressionPlan(method: .dense, overrides: [("a", .dense), ("b", .csr(density: 0.5))])
        XCTAssertEqual(a, CompressionPlan(method: .dense, overrides: [("a", .dense), ("b", .csr(density: 0.5))]))
        XCTAssertNotEqual(a, CompressionPlan(method: .dense, overrides: [("b", .csr(density: 0.5)), ("a", .dense)]), "order matters")
        XCTAssertNotEqual(a, CompressionPlan(method: .dense, overrides: [("a", .dense)]))
        XCTAssertNotEqual(a, CompressionPlan(method: .dense, overrides: a.overrides, activations: .pwl(segments: 64)))
        XCTAssertEqual("\(ActivationApproximation.pwl(segments: 32))", "pwl 32 segments")
    }
}
