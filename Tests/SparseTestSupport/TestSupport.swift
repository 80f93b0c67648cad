import Foundation
import XCTest

/// The repository root: the nearest directory above this file that holds Package.swift.
public func repositoryRoot(_ file: StaticString = #filePath) -> URL {
    var directory = URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
    while directory.path != "/" {
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) { return directory }
        directory.deleteLastPathComponent()
    }
    fatalError("no Package.swift above \(file)")
}

extension XCTestCase {
    /// A fresh temporary directory, removed with everything in it when the test finishes.
    public func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sparseserve-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// A safetensors byte image with a hand-written (possibly lying) header and raw data.
public func safetensorsBytes(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
    let headerBytes = Array(header.utf8)
    var length = (declaredLength ?? UInt64(headerBytes.count)).littleEndian
    var out = Data(bytes: &length, count: 8)
    out.append(contentsOf: headerBytes)
    out.append(contentsOf: data)
    return out
}

/// Reproducible pseudo-random floats in [-1, 1) (SplitMix64), so failures reproduce.
public struct SeededRandom {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
    public mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

/// Asserts that `expression` throws an error whose description contains every fragment.
public func assertError<T>(_ expression: @autoclosure () throws -> T, contains fragments: [String],
                    file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        let message = "\(error)"
        for fragment in fragments {
            XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)", file: file, line: line)
        }
    }
}

/// The MiniLM model folder (scripts/fetch-minilm.sh) and the committed fixtures.
public enum MiniLMFiles {
    public static var modelDirectory: URL { repositoryRoot().appendingPathComponent("models/minilm-l6") }
    public static var vocabulary: URL { modelDirectory.appendingPathComponent("vocab.txt") }
    public static var fixtures: URL { repositoryRoot().appendingPathComponent("Tests/fixtures/minilm") }

    public static func requireVocabulary() throws -> URL {
        guard FileManager.default.fileExists(atPath: vocabulary.path) else {
            throw XCTSkip("models/minilm-l6/vocab.txt is absent: run scripts/fetch-minilm.sh to test the tokenizer against Hugging Face")
        }
        return vocabulary
    }

    public static func fixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(name))
        return try JSONDecoder().decode(T.self, from: data)
    }
}
