import COpenSSL
import Foundation
import Logging
import XCTest
@testable import HTTPServer

/// HTTPS through the system OpenSSL, with certificates generated at run time: curl (`--cacert`),
/// an in-process OpenSSL client, and `openssl s_client`.
final class TLSTests: XCTestCase {
    private func startTLSServer(requireClientCertificates: Bool = false,
                                configure: (inout HTTPServerConfiguration) -> Void = { _ in },
                                handler: @escaping HTTPHandler = echoHandler) throws -> (HTTPServer, TestCertificates) {
        let certificates = try TestCertificates.shared()
        let server = try startServer(configure: {
            $0.tls = certificates.serverTLS(requireClientCertificates: requireClientCertificates)
            configure(&$0)
        }, handler: handler)
        return (server, certificates)
    }

    func testCurlOverHTTPS() throws {
        let (server, certificates) = try startTLSServer()
        defer { server.stop(gracePeriod: 1) }
        let base = "https://127.0.0.1:\(server.boundPort)"
        // Two URLs in one curl run share the connection (keep-alive over TLS).
        let result = try curl(["-w", "%{http_version} %{num_connects} %{ssl_verify_result}\\n", base + "/text",
                               base + "/text?2", "-o", "/dev/null"], certificates: certificates)
        XCTAssertEqual(result.output.status, 0, result.output.stderr)
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(String(decoding: result.body, as: UTF8.self), "hello")
        XCTAssertEqual(result.output.text, "1.1 1 0\n1.1 0 0\n", "HTTP/1.1, one connection, verified")
        // The hostname form verifies too (SAN DNS:localhost), and a POST body round-trips.
        let post = try curl(["--resolve", "localhost:\(server.boundPort):127.0.0.1", "--data-binary", "payload",
                             "https://localhost:\(server.boundPort)/echo"], certificates: certificates)
        XCTAssertEqual(post.status, 200, post.output.stderr)
        XCTAssertEqual(post.header("X-Body-Length"), "7")
    }

    func testTLSVersions() throws {
        let (server, certificates) = try startTLSServer()
        defer { server.stop(gracePeriod: 1) }
        let url = "https://127.0.0.1:\(server.boundPort)/text"
        let tls12 = try curl(["--tlsv1.2", "--tls-max", "1.2", "-w", "%{http_code}", url], certificates: certificates)
        XCTAssertEqual(tls12.status, 200, tls12.output.stderr)
        let modern = try TLSTestClient(port: server.boundPort, certificates: certificates)
        XCTAssertEqual(modern.protocolVersion, "TLSv1.3")
        let old = try TLSTestClient(port: server.boundPort, certificates: certificates, maxVersion: Int32(TLS1_2_VERSION))
        XCTAssertEqual(old.protocolVersion, "TLSv1.2")
        // A client that stops at TLS 1.1 is refused by the server.
        XCTAssertThrowsError(try TLSTestClient(port: server.boundPort, certificates: certificates,
                                               maxVersion: Int32(TLS1_1_VERSION))) { error in
            XCTAssertTrue("\(error)".contains("protocol version") || "\(error)".contains("no protocols available"), "\(error)")
        }
    }

    func testInProcessClientKeepAlivePipeliningAndCloseNotify() throws {
        let (server, certificates) = try startTLSServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TLSTestClient(port: server.boundPort, certificates: certificates)
        let body = (0 ..< 3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        client.send(Array("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            + Array("GET /text HTTP/1.1\r\nHost: t\r\n\r\nGET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8))
        let big = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(big.body.count, body.count)
        XCTAssertTrue(big.body == body)
        XCTAssertEqual(client.readResponse()?.bodyText, "hello")
        XCTAssertEqual(client.readResponse()?.headers["Connection"], "close")
        XCTAssertTrue(client.waitForClose())
        XCTAssertTrue(client.receivedCloseNotify, "the server must end TLS with close_notify")
    }

    func testCompressionOverTLS() throws {
        let (server, certificates) = try startTLSServer(handler: { request, respond in
            respond(HTTPResponse(status: 200, body: sampleText(bytes: 50_000)))
        })
        defer { server.stop(gracePeriod: 1) }
        let result = try curl(["--compressed", "https://127.0.0.1:\(server.boundPort)/rows"], certificates: certificates)
        XCTAssertEqual(result.status, 200, result.output.stderr)
        XCTAssertEqual(result.header("Content-Encoding"), "gzip")
        XCTAssertEqual(result.body, sampleText(bytes: 50_000), "curl decoded the gzip body")
        // A gzip request body is decoded for the handler over TLS too.
        let echo = try startTLSServer().0
        defer { echo.stop(gracePeriod: 1) }
        let client = try TLSTestClient(port: echo.boundPort, certificates: certificates)
        let packed = HTTPCompression.compress(sampleText(bytes: 20_000), coding: .gzip)
        client.send(Array("POST /e HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: \(packed.count)\r\n\r\n".utf8) + packed)
        XCTAssertEqual(client.readResponse()?.body, sampleText(bytes: 20_000))
    }

    func testMutualTLS() throws {
        let (server, certificates) = try startTLSServer(requireClientCertificates: true)
        defer { server.stop(gracePeriod: 1) }
        let url = "https://127.0.0.1:\(server.boundPort)/text"
        let accepted = try curl(["--cert", certificates.clientCertificate, "--key", certificates.clientKey, url],
                                certificates: certificates)
        XCTAssertEqual(accepted.status, 200, accepted.output.stderr)
        XCTAssertEqual(String(decoding: accepted.body, as: UTF8.self), "hello")

        let anonymous = try curl([url], certificates: certificates)
        XCTAssertNotEqual(anonymous.output.status, 0)
        XCTAssertEqual(anonymous.status, 0, "no response without a client certificate")

        let rogue = try curl(["--cert", certificates.rogueCertificate, "--key", certificates.rogueKey, url], certificates: certificates)
        XCTAssertNotEqual(rogue.output.status, 0)
        XCTAssertEqual(rogue.status, 0, "no response for a certificate from another CA")

        // The in-process client: with a certificate it gets answers; without, the server's alert ends it.
        let client = try TLSTestClient(port: server.boundPort, certificates: certificates,
                                       clientCertificate: (certificates.clientCertificate, certificates.clientKey))
        client.send("GET /text HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.bodyText, "hello")
        do {
            let bare = try TLSTestClient(port: server.boundPort, certificates: certificates)
            bare.send("GET /text HTTP/1.1\r\nHost: t\r\n\r\n") // TLS 1.3: the refusal arrives after the client's Finished
            XCTAssertNil(bare.readResponse())
        } catch {
            XCTAssertTrue("\(error)".contains("alert"), "\(error)")
        }
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 1 })
    }

    func testBadFilesMakeStartThrowNamingTheFile() throws {
        let certificates = try TestCertificates.shared()
        let missing = certificates.directory + "/missing.pem"
        let garbage = certificates.directory + "/garbage.pem"
        try "not a certificate".write(toFile: garbage, atomically: true, encoding: .utf8)
        let cases: [(TLSConfiguration, String)] = [
            (TLSConfiguration(certificatePath: missing, privateKeyPath: certificates.serverKey), missing),
            (TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: missing), missing),
            (TLSConfiguration(certificatePath: garbage, privateKeyPath: certificates.serverKey), garbage),
            (TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: garbage), garbage),
            (TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: certificates.clientKey),
             certificates.clientKey),  // key of another certificate
            (TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: certificates.serverKey,
                              clientCAPath: missing), missing),
            (TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: certificates.serverKey,
                              clientCAPath: garbage), garbage),
        ]
        for (tls, named) in cases {
            var configuration = HTTPServerConfiguration()
            configuration.port = 0
            configuration.tls = tls
            let server = HTTPServer(configuration: configuration, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }), handler: echoHandler)
            XCTAssertThrowsError(try server.start(), named) { error in
                XCTAssertTrue(error is TLSError, "\(error)")
                XCTAssertTrue("\(error)".contains(named), "\(error) should name \(named)")
            }
            XCTAssertEqual(server.boundPort, 0, "nothing bound")
            server.stop(gracePeriod: 0)
        }
    }

    func testPlaintextRequestOnTheTLSPort() throws {
        let (server, certificates) = try startTLSServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("GET /text HTTP/1.1\r\nHost: test\r\n\r\n")
        let response = client.readResponse()
        assertJSONError(response, 400)
        XCTAssertTrue(response?.bodyText.contains("HTTPS") ?? false)
        XCTAssertTrue(client.waitForClose())
        // Other garbage just closes; the server keeps serving TLS.
        let noise = try TestClient(port: server.boundPort)
        noise.send(Array(repeating: 0x16, count: 3) + Array("\u{0}garbage\r\n\r\n".utf8))
        XCTAssertNil(noise.readResponse())
        let result = try curl(["https://127.0.0.1:\(server.boundPort)/text"], certificates: certificates)
        XCTAssertEqual(result.status, 200, result.output.stderr)
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 0 })
    }

    func testHandshakeTimeoutIsTheHeaderTimeout() throws {
        let (server, certificates) = try startTLSServer(configure: { $0.headerReadTimeout = 0.3; $0.idleTimeout = 30 })
        defer { server.stop(gracePeriod: 1) }
        let started = Date()
        let silent = try TestClient(port: server.boundPort, timeout: 5)
        XCTAssertTrue(silent.waitForClose(), "a silent TLS client must be dropped")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        // A half-sent ClientHello is dropped too.
        let partial = try TestClient(port: server.boundPort, timeout: 5)
        partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        XCTAssertTrue(partial.waitForClose())
        // After the handshake the idle timeout applies instead.
        let client = try TLSTestClient(port: server.boundPort, certificates: certificates)
        Thread.sleep(forTimeInterval: 0.6)
        client.send("GET /text HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.bodyText, "hello")
    }

    /// Plaintext and TLS listeners side by side, sharing one handler.
    func testPlaintextAndTLSListenersSideBySide() throws {
        let certificates = try TestCertificates.shared()
        let seen = SchemeCounter()
        let shared: HTTPHandler = { request, respond in
            seen.add(request.path)
            respond(HTTPResponse(status: 200, body: Array("shared \(request.path)".utf8)))
        }
        let plain = try startServer(handler: shared)
        defer { plain.stop(gracePeriod: 1) }
        let secure = try startServer(configure: { $0.tls = certificates.serverTLS() }, handler: shared)
        defer { secure.stop(gracePeriod: 1) }
        XCTAssertNotEqual(plain.boundPort, secure.boundPort)

        let group = DispatchGroup()
        let failures = SchemeCounter()
        for i in 0 ..< 4 {
            DispatchQueue.global().async(group: group) {
                guard let client = try? TestClient(port: plain.boundPort) else { return failures.add("connect") }
                client.send("GET /plain\(i) HTTP/1.1\r\nHost: t\r\n\r\n")
                if client.readResponse()?.bodyText != "shared /plain\(i)" { failures.add("plain\(i)") }
            }
            DispatchQueue.global().async(group: group) {
                guard let client = try? TLSTestClient(port: secure.boundPort, certificates: certificates) else {
                    return failures.add("handshake")
                }
                client.send("GET /tls\(i) HTTP/1.1\r\nHost: t\r\n\r\n")
                if client.readResponse()?.bodyText != "shared /tls\(i)" { failures.add("tls\(i)") }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 15), .success)
        XCTAssertEqual(failures.all, [])
        XCTAssertEqual(seen.all.count, 8)
        let viaCurl = try curl(["https://127.0.0.1:\(secure.boundPort)/curl"], certificates: certificates)
        XCTAssertEqual(String(decoding: viaCurl.body, as: UTF8.self), "shared /curl")
        // A plaintext request to the TLS port and a TLS handshake to the plaintext port both fail cleanly.
        let wrongWay = try TestClient(port: secure.boundPort)
        wrongWay.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(wrongWay.readResponse()?.status, 400)
        XCTAssertThrowsError(try TLSTestClient(port: plain.boundPort, certificates: certificates))
        let stillPlain = try TestClient(port: plain.boundPort)
        stillPlain.send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(stillPlain.readResponse()?.bodyText, "shared /after")
    }

    func testClientGoneOverTLS() throws {
        let held = HeldRequests()
        let (server, certificates) = try startTLSServer(handler: held.handler)
        defer { server.stop(gracePeriod: 1) }
        let client = try TLSTestClient(port: server.boundPort, certificates: certificates)
        client.send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(waitUntil { held.count == 1 })
        XCTAssertFalse(held.request(0).isClientGone())
        client.sendCloseNotify()
        client.close()
        XCTAssertTrue(waitUntil { held.request(0).isClientGone() })
    }

    /// Over the connection cap the 503 is sent after a handshake the write drives (TLS wants to read first).
    func testConnectionCapOverTLS() throws {
        let (server, certificates) = try startTLSServer(configure: { $0.maxConnections = 1 })
        defer { server.stop(gracePeriod: 1) }
        let first = try TLSTestClient(port: server.boundPort, certificates: certificates)
        first.send("GET /text HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(first.readResponse()?.bodyText, "hello")
        let refused = try TLSTestClient(port: server.boundPort, certificates: certificates)
        let response = refused.readResponse()
        assertJSONError(response, 503)
        XCTAssertEqual(response?.headers["Retry-After"], "1")
        XCTAssertTrue(refused.waitForClose())
        XCTAssertTrue(refused.receivedCloseNotify)
        first.send("GET /text HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(first.readResponse()?.bodyText, "hello")
    }

    func testOpenSSLCommandLineClient() throws {
        let (server, certificates) = try startTLSServer()
        defer { server.stop(gracePeriod: 1) }
        let result = try runProcess(TestCertificates.openssl, [
            "s_client", "-connect", "127.0.0.1:\(server.boundPort)", "-CAfile", certificates.caCertificate,
            "-verify_hostname", "localhost", "-verify_return_error", "-alpn", "h2,http/1.1", "-quiet",
        ], stdin: Array("GET /text HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8), timeout: 10)
        XCTAssertFalse(result.timedOut)
        XCTAssertTrue(result.text.hasPrefix("HTTP/1.1 200 OK"), result.text + result.stderr)
        XCTAssertTrue(result.text.hasSuffix("hello"), result.text)
    }
}

/// Thread-safe list of strings.
final class SchemeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.lock(); items.append(item); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
