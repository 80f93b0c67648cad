import Foundation
import XCTest
@testable import SparseServe

/// openapi.yaml and the router must describe the same API: every documented path and method is
/// routed, and every path the router accepts is documented (with the TEI routes on, serving "m").
final class OpenAPIContractTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let specURL = root.appendingPathComponent("openapi.yaml")

    /// (path template, methods) from the `paths:` section, read line by line (two-space indented keys).
    func documented() throws -> [String: Set<String>] {
        let text = try String(contentsOf: Self.specURL, encoding: .utf8)
        var result: [String: Set<String>] = [:]
        var current: String?
        var inPaths = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.hasPrefix(" "), !line.isEmpty { break }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                current = String(line.dropFirst(2).dropLast())
                result[current!] = []
            } else if let c = current, line.hasPrefix("    "), !line.hasPrefix("     ") {
                let key = line.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) ?? ""
                if ["get", "post", "put", "delete", "patch", "head", "options"].contains(key) { result[c]!.insert(key.uppercased()) }
            }
        }
        return result
    }

    func concrete(_ template: String) -> String {
        template.replacingOccurrences(of: "{model}", with: "m").replacingOccurrences(of: "{version}", with: "1")
    }

    func testEveryDocumentedOperationIsRouted() throws {
        let spec = try documented()
        XCTAssertGreaterThan(spec.count, 15)
        for (template, methods) in spec {
            let route = try Route(path: concrete(template), teiModel: { "m" })
            XCTAssertNotNil(route, "\(template) is documented but not routed")
            guard let route else { continue }
            let allowed = Set(route.allowedMethods).subtracting(["HEAD"])
            XCTAssertEqual(allowed, methods, "\(template): router allows \(allowed), spec documents \(methods)")
        }
    }

    func testEveryRoutedPathIsDocumented() throws {
        let spec = try documented()
        let documentedPaths = Set(spec.keys.map(concrete))
        // A routed path is documented when it matches a template, parameters matching any segment.
        let templates = spec.keys.map { $0.split(separator: "/").map(String.init) }
        func isDocumented(_ path: String) -> Bool {
            let segments = path.split(separator: "/").map(String.init)
            return templates.contains { t in
                t.count == segments.count && zip(t, segments).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
            }
        }
        // Vocabulary: every literal segment of the spec, every short string literal in Route.swift
        // (so a new route's words are tried even when the spec does not mention them), and samples.
        var words = Set(spec.keys.flatMap { $0.split(separator: "/").map(String.init) }.filter { !$0.hasPrefix("{") })
        let routerSource = try String(contentsOf: Self.specURL.deletingLastPathComponent()
            .appendingPathComponent("Sources/SparseServe/HTTP/Route.swift"), encoding: .utf8)
        let literal = try NSRegularExpression(pattern: #""([a-z0-9._-]{1,32})""#)
        for m in literal.matches(in: routerSource, range: NSRange(routerSource.startIndex..., in: routerSource)) {
            words.insert(String(routerSource[Range(m.range(at: 1), in: routerSource)!]))
        }
        words.formUnion(["m", "1"])
        let vocabulary = Array(words).sorted()
        var checked = 0
        func walk(_ prefix: [String]) throws {
            if !prefix.isEmpty {
                let path = "/" + prefix.joined(separator: "/")
                if try Route(path: path, teiModel: { "m" }) != nil {
                    checked += 1
                    XCTAssertTrue(isDocumented(path), "\(path) is routed but not documented in openapi.yaml")
                }
            }
            guard prefix.count < 6 else { return }
            for w in vocabulary {
                // Keep the walk small: only extend prefixes that some documented path or the router could still reach.
                let next = prefix + [w]
                let p = "/" + next.joined(separator: "/")
                let routed = try Route(path: p, teiModel: { "m" }) != nil
                if routed || next.count <= 2 || documentedPaths.contains(where: { $0.hasPrefix(p) }) {
                    try walk(next)
                }
            }
        }
        try walk([])
        XCTAssertGreaterThanOrEqual(checked, documentedPaths.count, "every documented path is reached by the walk")
    }
}
