import Foundation
import XCTest
@testable import HTTPServer

/// Content coding: negotiation and codecs (unit), request decoding and response compression (sockets).
final class HTTPCompressionTests: XCTestCase {
    // MARK: - Negotiation

    func testNegotiationFollowsQValuesAndPreferences() {
        let cases: [([String], ContentCoding)] = [
            ([], .identity),
            ([""], .identity),
            (["gzip"], .gzip),
            (["deflate"], .deflate),
            (["deflate, gzip"], .gzip),                      // tie → gzip
            (["gzip;q=0.5, deflate;q=0.5"], .gzip),          // tie → gzip
            (["deflate;q=1, gzip;q=0.5"], .deflate),
            (["gzip;q=0.5"], .gzip),                         // identity unlisted ranks last
            (["identity, gzip;q=0.5"], .identity),           // listed identity at q=1 wins
            (["gzip;q=0"], .identity),
            (["gzip;q=0, deflate"], .deflate),
            (["gzip;q=0.000, deflate;q=0.001"], .deflate),
            (["*"], .gzip),
            (["*;q=0.5, deflate"], .deflate),
            (["*;q=0, deflate;q=0.2"], .deflate),
            (["identity;q=0"], .identity),                   // nothing acceptable → identity anyway (no 406)
            (["identity;q=0, *;q=0"], .identity),
            (["br"], .identity),
            (["br, zstd;q=0.9, deflate;q=0.1"], .deflate),
            (["GZIP;Q=0.8, Deflate;q=0.7"], .gzip),
            (["x-gzip"], .gzip),
            (["gzip;q=abc, deflate"], .deflate),             // malformed q counts as 0
            (["gzip;q=0.5555, deflate;q=0.2"], .deflate),    // more than 3 decimals is malformed
            (["gzip;q=1.5, deflate;q=0.2"], .deflate),
            (["deflate;q=0.5", "gzip;q=0.9"], .gzip),        // several fields combine
            (["gzip ; q=0.9 , deflate ; q=1"], .deflate),
            ([" , ,gzip"], .gzip),
        ]
        for (header, expected) in cases {
            XCTAssertEqual(ContentCoding.negotiate(header), expected, "Accept-Encoding: \(header)")
        }
    }

    func testParseCodingNames() {
        XCTAssertEqual(ContentCoding.parse(" GZip "), .gzip)
        XCTAssertEqual(ContentCoding.parse("x-gzip"), .gzip)
        XCTAssertEqual(ContentCoding.parse("deflate"), .deflate)
        XCTAssertEqual(ContentCoding.parse("identity"), .identity)
        XCTAssertNil(ContentCoding.parse("br"))
        XCTAssertNil(ContentCoding.parse(""))
    }

    // MARK: - Codecs

    func testRoundTripsAtSeveralSizes() throws {
        for size in [1, 100, 5000, 300_000] {
            let data = sampleText(bytes: size)
            for coding in [ContentCoding.gzip, .deflate] {
                let packed = HTTPCompression.compress(data, coding: coding)
                if size >= 5000 { XCTAssertLessThan(packed.count, data.count / 3, "\(coding) \(size)") }
                XCTAssertEqual(try HTTPCompression.decompress(packed, coding: coding, limit: size), data, "\(coding) \(size)")
                XCTAssertThrowsError(try HTTPCompression.decompress(packed, coding: coding, limit: size - 1)) {
                    XCTAssertEqual($0 as? CompressionError, .tooLarge(limit: size - 1))
                }
            }
        }
        let random = (0 ..< 10_000).map { _ in UInt8.random(in: 0 ... 255) }
        XCTAssertEqual(try HTTPCompression.decompress(HTTPCompression.compress(random, coding: .gzip), coding: .gzip, limit: 10_000), random)
        XCTAssertEqual(HTTPCompression.compress(random, coding: .identity), random)
        // An empty body still makes a valid stream.
        XCTAssertEqual(try HTTPCompression.decompress(HTTPCompression.compress([], coding: .gzip), coding: .gzip, limit: 0), [])
    }

    func testFormatsOnTheWire() throws {
        let data = sampleText(bytes: 2000)
        let gz = HTTPCompression.compress(data, coding: .gzip)
        XCTAssertEqual(Array(gz.prefix(2)), [0x1F, 0x8B])
        let zlib = HTTPCompression.compress(data, coding: .deflate)
        XCTAssertEqual(zlib.first, 0x78, "deflate must be the zlib format (RFC 1950)")
        XCTAssertEqual((Int(zlib[0]) << 8 | Int(zlib[1])) % 31, 0)
    }

    /// Streams made by other implementations: Python's gzip/zlib (what tritonclient uses), raw
    /// deflate, and `gzip` output of two concatenated members.
    func testDecodesStreamsFromOtherImplementations() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("no python3") }
        let data = sampleText(bytes: 50_000)
        let script = """
        import sys, gzip, zlib
        d = sys.stdin.buffer.read()
        mode = sys.argv[1]
        if mode == "gzip": out = gzip.compress(d)
        elif mode == "zlib": out = zlib.compress(d)
        elif mode == "raw":
            c = zlib.compressobj(6, zlib.DEFLATED, -15); out = c.compress(d) + c.flush()
        else: out = gzip.compress(d[:1000]) + gzip.compress(d[1000:])
        sys.stdout.buffer.write(out)
        """
        for (mode, coding) in [("gzip", ContentCoding.gzip), ("zlib", .deflate), ("raw", .deflate), ("members", .gzip)] {
            let made = try runProcess(python, ["-c", script, mode], stdin: data)
            XCTAssertEqual(made.status, 0, made.stderr)
            XCTAssertEqual(try HTTPCompression.decompress(made.stdout, coding: coding, limit: 1 << 20), data, mode)
        }
        // And the other way: Python decodes what we produce.
        let check = "import sys, gzip, zlib; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(gzip.decompress(d) if sys.argv[1] == 'gzip' else zlib.decompress(d))"
        for coding in [ContentCoding.gzip, .deflate] {
            let decoded = try runProcess(python, ["-c", check, coding.rawValue], stdin: HTTPCompression.compress(data, coding: coding))
            XCTAssertEqual(decoded.stdout, data, coding.rawValue)
        }
    }

    func testCorruptAndTruncatedStreams() throws {
        let data = sampleText(bytes: 20_000)
        for coding in [ContentCoding.gzip, .deflate] {
            let packed = HTTPCompression.compress(data, coding: coding)
            var flipped = packed
            flipped[packed.count / 2] ^= 0xFF
            let broken: [(String, [UInt8])] = [
                ("truncated trailer", Array(packed.dropLast(3))),
                ("truncated middle", Array(packed.prefix(packed.count / 2))),
                ("header only", Array(packed.prefix(coding == .gzip ? 10 : 2))),
                ("flipped byte", flipped),
                ("trailing garbage", packed + [1, 2, 3]),
                ("empty", []),
            ]
            for (what, bytes) in broken {
                XCTAssertThrowsError(try HTTPCompression.decompress(bytes, coding: coding, limit: 1 << 20), "\(coding) \(what)") { error in
                    guard case .corrupt = error as? CompressionError else { return XCTFail("\(coding) \(what): \(error)") }
                }
            }
        }
        let noise = (0 ..< 4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        XCTAssertThrowsError(try HTTPCompression.decompress(noise, coding: .gzip, limit: 1 << 20))
        XCTAssertThrowsError(try HTTPCompression.decompress(Array("plain text".utf8), coding: .gzip, limit: 1 << 20))
    }

    /// 100 MB of zeros (about 100 KB compressed) against a 1 MB limit: refused without inflating it all.
    func testZipBombIsRefusedWithoutAllocatingIt() throws {
        for coding in [ContentCoding.gzip, .deflate] {
            let bomb = compressedZeros(100_000_000, coding: coding)
            XCTAssertLessThan(bomb.count, 200_000)
            let measured = resetPeakMemory()
            let before = residentBytes()
            XCTAssertThrowsError(try HTTPCompression.decompress(bomb, coding: coding, limit: 1 << 20)) {
                XCTAssertEqual($0 as? CompressionError, .tooLarge(limit: 1 << 20))
            }
            XCTAssertThrowsError(try HTTPCompression.decodeBody(bomb, contentEncoding: [coding.rawValue], limit: 1 << 20))
            if measured {
                XCTAssertLessThan(peakResidentBytes() - before, 20 << 20, "peak memory grew while refusing the \(coding) bomb")
            }
        }
    }

    func testDecodeBodyCodingLists() throws {
        let data = sampleText(bytes: 3000)
        let gz = HTTPCompression.compress(data, coding: .gzip)
        let gzgz = HTTPCompression.compress(gz, coding: .gzip)
        let gzThenDeflate = HTTPCompression.compress(gz, coding: .deflate)
        XCTAssertEqual(try HTTPCompression.decodeBody(gz, contentEncoding: ["gzip"], limit: 3000), data)
        XCTAssertEqual(try HTTPCompression.decodeBody(gzgz, contentEncoding: ["gzip, gzip"], limit: 3000), data)
        XCTAssertEqual(try HTTPCompression.decodeBody(gzThenDeflate, contentEncoding: ["gzip", "deflate"], limit: 3000), data)
        XCTAssertEqual(try HTTPCompression.decodeBody(gz, contentEncoding: ["identity, gzip"], limit: 3000), data)
        XCTAssertEqual(try HTTPCompression.decodeBody(data, contentEncoding: ["identity"], limit: 3000), data)
        XCTAssertThrowsError(try HTTPCompression.decodeBody(data, contentEncoding: ["identity"], limit: 2999))
        for bad in [["br"], ["gzip, br"], ["gzip, gzip, gzip"], [""], ["gzip,"]] {
            XCTAssertThrowsError(try HTTPCompression.decodeBody(gz, contentEncoding: bad, limit: 1 << 20), "\(bad)") { error in
                guard case .unsupported = error as? CompressionError else { return XCTFail("\(bad): \(error)") }
            }
        }
        // The decoded-size cap applies to every layer.
        let bomb = compressedZeros(10_000_000, coding: .gzip)
        XCTAssertThrowsError(try HTTPCompression.decodeBody(HTTPCompression.compress(bomb, coding: .gzip),
                                                            contentEncoding: ["gzip, gzip"], limit: 1 << 20)) {
            XCTAssertEqual($0 as? CompressionError, .tooLarge(limit: 1 << 20))
        }
    }

    // MARK: - Request bodies over sockets

    /// Reports what the handler saw: body, Content-Encoding and Content-Length.
    private let inspectingHandler: HTTPHandler = { request, respond in
        var response = HTTPResponse(status: 200, body: request.body)
        response.headers.add(name: "X-Seen-Encoding", value: request.headers["Content-Encoding"] ?? "-")
        response.headers.add(name: "X-Seen-Length", value: request.headers["Content-Length"] ?? "-")
        response.compressionMinimumBytes = Int.max
        respond(response)
    }

    private func post(_ path: String, _ body: [UInt8], encoding: String?, chunked: Bool = false) -> [UInt8] {
        var head = "POST \(path) HTTP/1.1\r\nHost: test\r\n"
        if let encoding { head += "Content-Encoding: \(encoding)\r\n" }
        if chunked {
            head += "Transfer-Encoding: chunked\r\n\r\n"
            return Array(head.utf8) + Array(String(body.count, radix: 16).utf8) + [13, 10] + body + Array("\r\n0\r\n\r\n".utf8)
        }
        head += "Content-Length: \(body.count)\r\n\r\n"
        return Array(head.utf8) + body
    }

    func testEncodedRequestBodiesAreDecodedForTheHandler() throws {
        let server = try startServer(handler: inspectingHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let small = sampleText(bytes: 500)      // decoded on the I/O queue
        let large = sampleText(bytes: 400_000)  // decoded on a global queue
        let sends: [([UInt8], String, Bool)] = [
            (HTTPCompression.compress(large, coding: .gzip), "gzip", false),
            (HTTPCompression.compress(small, coding: .deflate), "deflate", true),
            (HTTPCompression.compress(HTTPCompression.compress(small, coding: .gzip), coding: .gzip), "gzip, gzip", false),
            (HTTPCompression.compress(large, coding: .deflate), "x-gzip", false),  // wrong name: must fail below
        ]
        for (index, (bytes, encoding, chunked)) in sends.dropLast().enumerated() {
            client.send(post("/p\(index)", bytes, encoding: encoding, chunked: chunked))
            let response = try XCTUnwrap(client.readResponse(), encoding)
            XCTAssertEqual(response.status, 200, encoding)
            XCTAssertEqual(response.body, index == 0 ? large : small, encoding)
            XCTAssertEqual(response.headers["X-Seen-Encoding"], "-", "Content-Encoding must be removed")
            XCTAssertEqual(response.headers["X-Seen-Length"], chunked ? "-" : String(response.body.count))
        }
        // Same connection, still usable; then deflate data sent as gzip → 400 and close.
        let (bytes, encoding, _) = sends[3]
        client.send(post("/bad", bytes, encoding: encoding))
        let response = try XCTUnwrap(client.readResponse())
        assertJSONError(response, 400)
        XCTAssertTrue(client.waitForClose())
    }

    func testDecodedBodyOverTheLimitGets413WithoutAllocatingIt() throws {
        let server = try startServer(bodyLimit: { _, path in path == "/small" ? 1000 : 1 << 20 }, handler: inspectingHandler)
        defer { server.stop(gracePeriod: 1) }
        for coding in [ContentCoding.gzip, .deflate] {
            let bomb = compressedZeros(100_000_000, coding: coding)
            let measured = resetPeakMemory()
            let before = residentBytes()
            let client = try TestClient(port: server.boundPort, timeout: 10)
            client.send(post("/big", bomb, encoding: coding.rawValue))
            let response = client.readResponse()
            assertJSONError(response, 413)
            XCTAssertTrue(response?.bodyText.contains("decompressed") ?? false, response?.bodyText ?? "")
            if measured {
                XCTAssertLessThan(peakResidentBytes() - before, 30 << 20, "server memory grew with the \(coding) bomb")
            }
        }
        // The per-path limit applies to the decoded size too: 1500 decoded bytes, 30 on the wire.
        let client = try TestClient(port: server.boundPort)
        client.send(post("/small", HTTPCompression.compress([UInt8](repeating: 65, count: 1500), coding: .gzip), encoding: "gzip"))
        assertJSONError(client.readResponse(), 413)
    }

    func testCorruptAndTruncatedBodiesGet400() throws {
        let server = try startServer(handler: inspectingHandler)
        defer { server.stop(gracePeriod: 1) }
        let packed = HTTPCompression.compress(sampleText(bytes: 5000), coding: .gzip)
        for body in [Array(packed.dropLast(4)), Array("not gzip at all".utf8), packed + [0]] {
            let client = try TestClient(port: server.boundPort)
            client.send(post("/p", body, encoding: "gzip"))
            assertJSONError(client.readResponse(), 400)
        }
    }

    func testUnknownCodingGets415WithAcceptEncoding() throws {
        let server = try startServer(handler: inspectingHandler)
        defer { server.stop(gracePeriod: 1) }
        for encoding in ["br", "gzip, gzip, gzip", "gzip, zstd"] {
            let client = try TestClient(port: server.boundPort)
            client.send(post("/p", Array("abc".utf8), encoding: encoding))
            let response = client.readResponse()
            assertJSONError(response, 415)
            XCTAssertEqual(response?.headers["Accept-Encoding"], "gzip, deflate, identity", encoding)
        }
        // identity and an empty body need no decoding.
        let client = try TestClient(port: server.boundPort)
        client.send(post("/p", Array("abc".utf8), encoding: "identity"))
        XCTAssertEqual(client.readResponse()?.bodyText, "abc")
        client.send("GET /p HTTP/1.1\r\nHost: test\r\nContent-Encoding: br\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.status, 200)
    }

    func testDecodingCanBeTurnedOff() throws {
        let server = try startServer(configure: { $0.decodeRequestBodies = false }, handler: inspectingHandler)
        defer { server.stop(gracePeriod: 1) }
        let packed = HTTPCompression.compress(sampleText(bytes: 5000), coding: .gzip)
        let client = try TestClient(port: server.boundPort)
        client.send(post("/p", packed, encoding: "br"))
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, packed)
        XCTAssertEqual(response.headers["X-Seen-Encoding"], "br")
    }

    // MARK: - Responses over sockets

    /// `/n/<bytes>` answers that many bytes of text; `?min=` sets the per-response minimum
    /// (`never` = Int.max); `/status/<code>`, `/encoded` (already gzip), `/vary` (own Vary).
    private let sizedHandler: HTTPHandler = { request, respond in
        let parts = request.path.split(separator: "/")
        var response = HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]))
        if parts.first == "n", parts.count > 1, let n = Int(parts[1]) { response.body = sampleText(bytes: n) }
        if parts.first == "status", parts.count > 1, let code = Int(parts[1]) {
            response.status = code
            response.body = sampleText(bytes: 5000)
        }
        if parts.first == "encoded" {
            response.body = HTTPCompression.compress(sampleText(bytes: 5000), coding: .gzip)
            response.headers.add(name: "Content-Encoding", value: "gzip")
        }
        if parts.first == "vary" {
            response.body = sampleText(bytes: 5000)
            response.headers.add(name: "Vary", value: "Origin")
        }
        if let query = request.query, query.hasPrefix("min=") {
            response.compressionMinimumBytes = query == "min=never" ? Int.max : Int(query.dropFirst(4))
        }
        respond(response)
    }

    private func get(_ path: String, accept: String?, method: String = "GET") -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: test\r\n" + (accept.map { "Accept-Encoding: \($0)\r\n" } ?? "") + "\r\n"
    }

    func testResponsesAreCompressedPerAcceptEncoding() throws {
        let server = try startServer(handler: sizedHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let expected = sampleText(bytes: 20_000)
        for (accept, coding) in [("gzip", ContentCoding.gzip), ("deflate, gzip;q=0.5", .deflate), ("br, *;q=0.1", .gzip),
                                 ("gzip;q=0, identity", .identity), (nil, .identity)] as [(String?, ContentCoding)] {
            client.send(get("/n/20000", accept: accept))
            let response = try XCTUnwrap(client.readResponse(), accept ?? "none")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["Vary"], "Accept-Encoding", accept ?? "none")
            XCTAssertEqual(response.headers["Content-Length"], String(response.body.count))
            XCTAssertEqual(response.headers["Content-Type"], "application/json")
            if coding == .identity {
                XCTAssertNil(response.headers["Content-Encoding"])
                XCTAssertEqual(response.body, expected)
            } else {
                XCTAssertEqual(response.headers["Content-Encoding"], coding.rawValue, accept ?? "none")
                XCTAssertLessThan(response.body.count, expected.count / 3)
                XCTAssertEqual(try HTTPCompression.decompress(response.body, coding: coding, limit: 1 << 20), expected)
            }
        }
    }

    func testMinimumSizeGlobalAndPerResponse() throws {
        let server = try startServer(configure: { $0.compressionMinimumBytes = 2000 }, handler: sizedHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let cases: [(String, Bool)] = [
            ("/n/1999", false), ("/n/2000", true),                   // server minimum
            ("/n/5000?min=never", false), ("/n/300?min=100", true),  // per-response override
            ("/n/300?min=0", true), ("/n/0?min=0", false),           // an empty body is never compressed
        ]
        for (path, compressed) in cases {
            client.send(get(path, accept: "gzip"))
            let response = try XCTUnwrap(client.readResponse(), path)
            XCTAssertEqual(response.headers["Content-Encoding"], compressed ? "gzip" : nil, path)
            XCTAssertEqual(response.headers["Vary"], compressed ? "Accept-Encoding" : nil, path)
        }
        let off = try startServer(configure: { $0.compressionMinimumBytes = Int.max }, handler: sizedHandler)
        defer { off.stop(gracePeriod: 1) }
        let other = try TestClient(port: off.boundPort)
        other.send(get("/n/50000", accept: "gzip"))
        XCTAssertNil(try XCTUnwrap(other.readResponse()).headers["Content-Encoding"])
        other.send(get("/n/500?min=100", accept: "gzip"))
        XCTAssertEqual(try XCTUnwrap(other.readResponse()).headers["Content-Encoding"], "gzip", "a response may opt in")
    }

    func testHeadGetsTheSameHeadersAsGet() throws {
        let server = try startServer(handler: sizedHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/n/10000", accept: "gzip"))
        let full = try XCTUnwrap(client.readResponse())
        client.send(get("/n/10000", accept: "gzip", method: "HEAD"))
        let head = try XCTUnwrap(client.readResponse(isHead: true))
        XCTAssertEqual(head.headers["Content-Encoding"], "gzip")
        XCTAssertEqual(head.headers["Content-Length"], full.headers["Content-Length"])
        XCTAssertEqual(head.headers["Vary"], "Accept-Encoding")
        // No body bytes followed the HEAD response: the next response parses cleanly.
        client.send(get("/n/10", accept: nil))
        XCTAssertEqual(client.readResponse()?.body, sampleText(bytes: 10))
    }

    func testExcludedResponsesAreLeftAlone() throws {
        let server = try startServer(handler: sizedHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        for code in [204, 304] {
            client.send(get("/status/\(code)", accept: "gzip"))
            let response = try XCTUnwrap(client.readResponse())
            XCTAssertEqual(response.status, code)
            XCTAssertNil(response.headers["Content-Encoding"])
            XCTAssertNil(response.headers["Content-Length"])
        }
        client.send(get("/status/404", accept: "gzip"))
        XCTAssertEqual(try XCTUnwrap(client.readResponse()).headers["Content-Encoding"], "gzip", "errors are compressed too")
        client.send(get("/encoded", accept: "deflate"))
        let encoded = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(encoded.headers.values(for: "Content-Encoding"), ["gzip"], "handler's coding is kept")
        XCTAssertEqual(try HTTPCompression.decompress(encoded.body, coding: .gzip, limit: 1 << 20), sampleText(bytes: 5000))
        client.send(get("/vary", accept: "gzip"))
        let vary = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(vary.headers.values(for: "Vary"), ["Origin", "Accept-Encoding"])
        // Incompressible bodies are sent as they are.
        let random = (0 ..< 5000).map { _ in UInt8.random(in: 0 ... 255) }
        let echo = try startServer()
        defer { echo.stop(gracePeriod: 1) }
        let raw = try TestClient(port: echo.boundPort)
        raw.send(Array("POST /r HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nContent-Length: 5000\r\n\r\n".utf8) + random)
        let plain = try XCTUnwrap(raw.readResponse())
        XCTAssertNil(plain.headers["Content-Encoding"])
        XCTAssertEqual(plain.body, random)
    }

    /// A large response compressed off the I/O queue keeps pipelined responses in order.
    func testLargeCompressedResponsePipelined() throws {
        let server = try startServer(handler: sizedHandler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort, timeout: 10)
        client.send(get("/n/3000000", accept: "gzip") + get("/n/10", accept: "gzip") + get("/n/5000", accept: "deflate"))
        let first = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(first.headers["Content-Encoding"], "gzip")
        XCTAssertEqual(try HTTPCompression.decompress(first.body, coding: .gzip, limit: 1 << 22), sampleText(bytes: 3_000_000))
        XCTAssertEqual(try XCTUnwrap(client.readResponse()).body, sampleText(bytes: 10))
        XCTAssertEqual(try XCTUnwrap(client.readResponse()).headers["Content-Encoding"], "deflate")
    }
}
