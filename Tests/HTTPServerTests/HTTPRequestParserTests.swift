import Foundation
import XCTest
@testable import HTTPServer

/// The instant a head policy saw (set from the parser's callback).
private final class LockedTime: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: UInt64 = 0
    var value: UInt64 {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

final class HTTPRequestParserTests: XCTestCase {
    private struct Outcome {
        var requests: [HTTPRequest] = []
        var heads: [Bool] = []
        var error: HTTPParseError?
    }

    private func makeParser(bodyLimit: Int = 1 << 20, configure: (inout HTTPParserLimits) -> Void = { _ in }) -> HTTPRequestParser {
        var limits = HTTPParserLimits()
        configure(&limits)
        return HTTPRequestParser(limits: limits, bodyLimit: { _, _ in bodyLimit })
    }

    private func drain(_ parser: inout HTTPRequestParser, into outcome: inout Outcome) {
        while outcome.error == nil {
            switch parser.next() {
            case .needMore: return
            case .headComplete(let expects): outcome.heads.append(expects)
            case .request(let request): outcome.requests.append(request)
            case .failure(let error): outcome.error = error
            case .rejected(let response): outcome.error = HTTPParseError(status: response.status, message: "rejected")
            }
        }
    }

    private func parse(_ text: String, bodyLimit: Int = 1 << 20, configure: (inout HTTPParserLimits) -> Void = { _ in }) -> Outcome {
        parse(Array(text.utf8), bodyLimit: bodyLimit, configure: configure)
    }

    private func parse(_ bytes: [UInt8], bodyLimit: Int = 1 << 20, configure: (inout HTTPParserLimits) -> Void = { _ in }) -> Outcome {
        var parser = makeParser(bodyLimit: bodyLimit, configure: configure)
        var outcome = Outcome()
        parser.append(bytes)
        drain(&parser, into: &outcome)
        return outcome
    }

    private func assertStatus(_ text: String, _ status: Int, bodyLimit: Int = 1 << 20,
                              configure: (inout HTTPParserLimits) -> Void = { _ in },
                              file: StaticString = #filePath, line: UInt = #line) {
        let outcome = parse(text, bodyLimit: bodyLimit, configure: configure)
        XCTAssertEqual(outcome.error?.status, status, "for \(text.debugDescription): \(String(describing: outcome.error))", file: file, line: line)
        XCTAssertTrue(outcome.requests.isEmpty, "no request may be produced", file: file, line: line)
    }

    // MARK: - Valid requests

    func testSimpleGet() throws {
        let outcome = parse("GET /v2/models/a%20b/infer?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
        XCTAssertNil(outcome.error)
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/v2/models/a%20b/infer?x=1&y=2")
        XCTAssertEqual(request.path, "/v2/models/a%20b/infer")
        XCTAssertEqual(request.query, "x=1&y=2")
        XCTAssertEqual(request.versionMinor, 1)
        XCTAssertEqual(request.headers.values(for: "X-A"), ["1", "2"])
        XCTAssertEqual(request.headers["host"], "h")
        XCTAssertTrue(request.body.isEmpty)
        XCTAssertEqual(outcome.heads, [false])
    }

    func testPostWithContentLengthAndOWS() throws {
        let outcome = parse("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: \t 5 \r\nX-Value:   spaced value  \r\n\r\nhello")
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "hello")
        XCTAssertEqual(request.headers["x-value"], "spaced value")
        XCTAssertNil(request.query)
    }

    func testHTTP10WithoutHostIsAccepted() throws {
        let request = try XCTUnwrap(parse("GET / HTTP/1.0\r\n\r\n").requests.first)
        XCTAssertEqual(request.versionMinor, 0)
        XCTAssertFalse(request.wantsKeepAlive)
        let keepAlive = try XCTUnwrap(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests.first)
        XCTAssertTrue(keepAlive.wantsKeepAlive)
        let close = try XCTUnwrap(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n").requests.first)
        XCTAssertFalse(close.wantsKeepAlive)
    }

    func testAbsoluteFormTarget() throws {
        let request = try XCTUnwrap(parse("GET http://example.com:80/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n").requests.first)
        XCTAssertEqual(request.path, "/a/b")
        XCTAssertEqual(request.query, "c=d")
        XCTAssertEqual(request.target, "http://example.com:80/a/b?c=d")
    }

    func testLeadingEmptyLinesAreSkipped() throws {
        let outcome = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.count, 1)
        assertStatus(String(repeating: "\r\n", count: 20) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    }

    func testPipelinedRequestsInOneBuffer() {
        let text = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            + "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
            + "GET /4 HTTP/1.1\r\nHost"
        var parser = makeParser()
        parser.append(Array(text.utf8))
        var outcome = Outcome()
        drain(&parser, into: &outcome)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.map(\.path), ["/1", "/2", "/3"])
        XCTAssertEqual(outcome.requests.map { String(decoding: $0.body, as: UTF8.self) }, ["", "abc", "xy"])
        XCTAssertTrue(parser.hasPartialRequest)
        parser.append(Array(": h\r\n\r\n".utf8))
        drain(&parser, into: &outcome)
        XCTAssertEqual(outcome.requests.map(\.path), ["/1", "/2", "/3", "/4"])
        XCTAssertFalse(parser.hasPartialRequest)
        XCTAssertEqual(parser.bufferedByteCount, 0)
    }

    func testByteByByteFeeding() {
        let text = "\r\nPOST /a?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "4;name=\"v\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
            + "GET /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
        var parser = makeParser()
        var outcome = Outcome()
        for byte in text.utf8 {
            parser.append([byte])
            drain(&parser, into: &outcome)
        }
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.count, 2)
        XCTAssertEqual(String(decoding: outcome.requests[0].body, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.")
        XCTAssertEqual(outcome.requests[0].query, "q")
        XCTAssertEqual(String(decoding: outcome.requests[1].body, as: UTF8.self), "ok")
    }

    func testChunkedWithExtensionsAndTrailers() throws {
        let text = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
            + "3 ; ext=1;other\r\nabc\r\n00000002\r\nde\r\n0;last\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
        let outcome = parse(text)
        XCTAssertNil(outcome.error)
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "abcde")
        XCTAssertFalse(request.headers.contains("X-Checksum"), "trailers are dropped")
    }

    func testExpectContinueIsReported() {
        let outcome = parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertEqual(outcome.heads, [true])
        XCTAssertEqual(outcome.requests.count, 1)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n").heads, [false], "no body, no 100")
        XCTAssertEqual(parse("POST / HTTP/1.0\r\nExpect: whatever\r\nContent-Length: 1\r\n\r\nx").requests.count, 1,
                       "HTTP/1.0 expectations are ignored")
    }

    func testHeadTimeIsTakenWhenTheHeadIsCompleteNotWhenTheBodyIs() throws {
        let policyTime = LockedTime()
        var parser = HTTPRequestParser(limits: HTTPParserLimits(), headPolicy: { head in
            policyTime.value = head.headReceivedAt
            return .accept(maxBodyBytes: 100)
        })
        var outcome = Outcome()
        let before = DispatchTime.now().uptimeNanoseconds
        parser.append(Array("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhe".utf8))
        drain(&parser, into: &outcome)
        let afterHead = DispatchTime.now().uptimeNanoseconds
        Thread.sleep(forTimeInterval: 0.05)
        parser.append(Array("llo".utf8))
        drain(&parser, into: &outcome)
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertTrue((before...afterHead).contains(request.headReceivedAt), "stamped when the head completed, before the body's end")
        XCTAssertEqual(policyTime.value, request.headReceivedAt, "the head policy sees the same instant")
        XCTAssertEqual(HTTPRequest().headReceivedAt, 0, "0 for requests built by hand")
    }

    // MARK: - Rejections

    func testContentLengthAndTransferEncodingTogether() {
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400)
    }

    func testTransferEncodingVariants() {
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400)
    }

    func testMalformedContentLength() {
        for value in ["+5", "-5", "0x10", "5_0", "", "5 5", "5,5", "5, 5", "\u{0B}5", "1e3", "99999999999999999999", "١"] {
            assertStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\n", 400)
        }
    }

    func testDuplicateContentLength() {
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\na", 400)
    }

    func testBodyLimits() {
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 413, bodyLimit: 10)
        let ok = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", bodyLimit: 10)
        XCTAssertEqual(ok.requests.count, 1)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n", 413, bodyLimit: 10)
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n", 413, bodyLimit: 10)
    }

    func testBodyLimitReceivesMethodAndPath() {
        var parser = HTTPRequestParser(limits: HTTPParserLimits(), bodyLimit: { method, path in
            method == "POST" && path == "/big" ? 100 : 1
        })
        parser.append(Array("POST /big?x HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n".utf8))
        XCTAssertEqual(parser.next(), .headComplete(expectsContinue: false))
        var other = HTTPRequestParser(limits: HTTPParserLimits(), bodyLimit: { _, path in path == "/big" ? 100 : 1 })
        other.append(Array("POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n".utf8))
        XCTAssertEqual(other.next(), .failure(HTTPParseError(status: 413, message: "request body of 50 bytes exceeds the limit of 1 bytes")))
    }

    func testRequestLineTooLong() {
        let target = "/" + String(repeating: "a", count: 100)
        assertStatus("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n", 414) { $0.maxRequestLineBytes = 64 }
        // Detected before the line ends.
        var parser = makeParser { $0.maxRequestLineBytes = 64 }
        parser.append(Array(("GET " + target).utf8))
        XCTAssertEqual(parser.next(), .failure(HTTPParseError(status: 414, message: "request line exceeds 64 bytes")))
    }

    func testHeaderSectionTooLarge() {
        let big = String(repeating: "v", count: 200)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(big)\r\n\r\n", 431) { $0.maxHeaderBytes = 128 }
        var parser = makeParser { $0.maxHeaderBytes = 128 }
        parser.append(Array("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(big)".utf8))
        if case .failure(let error) = parser.next() { XCTAssertEqual(error.status, 431) } else { XCTFail("expected 431 before the line ends") }
    }

    func testTooManyHeaderFields() {
        let fields = (0 ..< 6).map { "X-\($0): v\r\n" }.joined()
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n", 431) { $0.maxHeaderCount = 5 }
        XCTAssertNil(parse("GET / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n") { $0.maxHeaderCount = 7 }.error)
    }

    func testVersions() {
        assertStatus("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505)
        assertStatus("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505)
        assertStatus("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505)
        assertStatus("GET / HTTP/1.32\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET / http/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET /\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400)
    }

    func testMalformedRequestLines() {
        assertStatus("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET /\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        assertStatus("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    }

    func testLineEndingsMustBeCRLF() {
        assertStatus("GET / HTTP/1.1\nHost: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\n\n", 400)
        assertStatus("GET / HTTP/1.1\rHost: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400)
        assertStatus("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        // A CR split from its LF across appends is still accepted.
        var parser = makeParser()
        parser.append(Array("GET / HTTP/1.1\r".utf8))
        XCTAssertEqual(parser.next(), .needMore)
        parser.append(Array("\nHost: h\r".utf8))
        XCTAssertEqual(parser.next(), .needMore)
        parser.append(Array("\n\r\n".utf8))
        XCTAssertEqual(parser.next(), .headComplete(expectsContinue: false))
        // ... and a CR followed by something else after the split is rejected.
        var bad = makeParser()
        bad.append(Array("GET / HTTP/1.1\r".utf8))
        XCTAssertEqual(bad.next(), .needMore)
        bad.append(Array("X".utf8))
        if case .failure(let error) = bad.next() { XCTAssertEqual(error.status, 400) } else { XCTFail("bare CR accepted") }
    }

    func testHeaderFieldSyntax() {
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{0}b\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{1}b\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nX(A): v\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400)
    }

    func testHostRequirements() {
        assertStatus("GET / HTTP/1.1\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
    }

    func testExpectationFailed() {
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417)
    }

    func testInvalidChunkSizes() {
        for line in ["0x10", "-1", " 5", "g", "", "5 x", "11111111111111111", "5;\u{1}x", "+5"] {
            assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\(line)\r\nhello\r\n0\r\n\r\n", 400)
        }
        // chunk data not followed by CRLF
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400)
        // bare CR inside an extension
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;a\rb\r\nab\r\n0\r\n\r\n", 400)
        // overly long chunk line
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;" + String(repeating: "a", count: 5000) + "\r\n", 400)
        // bad trailer
        assertStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n bad\r\n\r\n", 400)
    }

    func testFailureIsSticky() {
        var parser = makeParser()
        parser.append(Array("GET / HTTP/9.9\r\n".utf8))
        let first = parser.next()
        parser.append(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        XCTAssertEqual(parser.next(), first)
    }

    // MARK: - Robustness

    /// Deterministic generator so failures reproduce.
    private struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Summary of everything a parser produced, for comparing whole-buffer and split feeding.
    private func summary(_ outcome: Outcome) -> String {
        outcome.requests.map { "\($0.method) \($0.target) \($0.headers.count) \($0.body)" }.joined(separator: "|")
            + "#\(outcome.error?.status ?? 0)"
    }

    func testMutatedInputNeverCrashesAndSplitFeedingAgrees() {
        let seeds = [
            "GET /a?b HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd",
            "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        ].map { Array($0.utf8) }
        let alphabet: [UInt8] = Array("\r\n :;0123456789aAfFxX-+/ \t".utf8) + [0, 0x7F, 0xFF]
        var rng = SplitMix64(state: 42)
        for iteration in 0 ..< 3000 {
            var bytes = seeds[iteration % seeds.count]
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &rng) {
                let position = Int.random(in: 0 ..< bytes.count, using: &rng)
                switch Int.random(in: 0 ..< 3, using: &rng) {
                case 0: bytes[position] = alphabet.randomElement(using: &rng)!
                case 1: bytes.insert(alphabet.randomElement(using: &rng)!, at: position)
                default: if bytes.count > 1 { bytes.remove(at: position) }
                }
            }
            let whole = parse(bytes) { $0.maxHeaderBytes = 256; $0.maxRequestLineBytes = 64 }
            var parser = makeParser { $0.maxHeaderBytes = 256; $0.maxRequestLineBytes = 64 }
            var split = Outcome()
            var offset = 0
            while offset < bytes.count {
                let n = Int.random(in: 1 ... 7, using: &rng)
                parser.append(bytes[offset ..< min(bytes.count, offset + n)])
                drain(&parser, into: &split)
                offset += n
            }
            XCTAssertEqual(summary(whole), summary(split), "input: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }
}
