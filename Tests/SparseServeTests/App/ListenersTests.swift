import Foundation
import HTTPServer
import XCTest
@testable import SparseServe

/// Listeners: which sockets a server config opens (plaintext, HTTPS beside it, or HTTPS alone)
/// with its HTTP settings, and that a listener failing to start stops the ones before it.
final class ListenersTests: XCTestCase {
    func server(_ extra: String = "") throws -> ServerConfig {
        let text = #"{"server": {"host": "127.0.0.1", "port": 0, "ioThreads": 3, "maxConnections": 77, "maxBodyBytes": 5000,"#
            + #""headerReadTimeoutSeconds": 2, "bodyReadTimeoutSeconds": 3, "idleTimeoutSeconds": 4\#(extra)},"#
            + #""endpoints": [{"name": "identity", "model": "Tests/fixtures/models/identity"}]}"#
        return try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot()).server
    }

    func testPlaintextCarriesTheServerSettings() throws {
        let s = try server(#", "gzip": {"minimumBytes": 321}, "maxTotalBodyBytes": 90000"#)
        let listeners = Listeners.configurations(s)
        XCTAssertEqual(listeners.map(\.1), ["http"])
        let http = listeners[0].0
        XCTAssertEqual(http.host, "127.0.0.1")
        XCTAssertEqual(http.port, 0)
        XCTAssertEqual(http.ioThreads, 3)
        XCTAssertEqual(http.maxConnections, 77)
        XCTAssertEqual(http.maxBodyBytes, 5000)
        XCTAssertEqual([http.headerReadTimeout, http.bodyReadTimeout, http.idleTimeout], [2, 3, 4])
        XCTAssertEqual(http.compressionMinimumBytes, 321)
        XCTAssertEqual(http.bodyMemoryBudget?.limit, 90000)
        XCTAssertEqual(http.maxConnectionsPerClient, s.security.perClientLimit(s))
        XCTAssertNil(http.tls)
        let off = Listeners.configurations(try server(#", "gzip": {"enabled": false}"#))[0].0
        XCTAssertEqual(off.compressionMinimumBytes, Int.max, "gzip off: never compress")
    }

    func testTLSAloneOrBesidePlaintext() throws {
        let tls = #", "tls": {"certificate": "/certs/server.pem", "privateKey": "/certs/key.pem", "clientCA": "/certs/ca.pem""#
        let alone = Listeners.configurations(try server(tls + "}"))
        XCTAssertEqual(alone.map(\.1), ["https"])
        XCTAssertEqual(alone[0].0.port, 0)
        XCTAssertEqual(alone[0].0.tls, TLSConfiguration(certificatePath: "/certs/server.pem", privateKeyPath: "/certs/key.pem",
                                                        clientCAPath: "/certs/ca.pem"))
        let both = Listeners.configurations(try server(tls + #", "port": 8443}"#))
        XCTAssertEqual(both.map(\.1), ["http", "https"])
        XCTAssertNil(both[0].0.tls)
        XCTAssertEqual(both[1].0.port, 8443)
        XCTAssertNotNil(both[1].0.tls)
        XCTAssertTrue(both[0].0.bodyMemoryBudget === both[1].0.bodyMemoryBudget, "one body budget for both listeners")
    }

    func testStartedListenersServeAndReportTheirURLs() throws {
        let service = InferenceService(config: try ServiceConfig.parse(Array(#"{"server": {"port": 0}, "endpoints": [{"name": "identity", "model": "Tests/fixtures/models/identity"}]}"#.utf8),
                                                                       baseDirectory: packageRoot()), logger: silentLogger)
        let started = try Listeners.start(service.config.server, router: Router(service: service), gate: RequestGate(service: service),
                                          logger: silentLogger)
        defer { for s in started { s.server.stop(gracePeriod: 0) } }
        XCTAssertEqual(started.count, 1)
        let port = started[0].server.boundPort
        XCTAssertEqual(started[0].url, "http://127.0.0.1:\(port)")
        let answer = try exchange(port, "GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
        XCTAssertTrue(answer.hasSuffix(#"{"live":true}"#), answer)
    }

    /// HTTPS on a second port with a certificate that cannot be read: start fails, and the
    /// plaintext listener already started is stopped (its port accepts no connection).
    func testAFailedListenerStopsTheOnesStartedBeforeIt() throws {
        let port = try freePort()
        let text = #"{"server": {"port": \#(port), "tls": {"certificate": "/nonexistent/cert.pem", "privateKey": "/nonexistent/key.pem", "port": 0}},"#
            + #""endpoints": [{"name": "identity", "model": "Tests/fixtures/models/identity"}]}"#
        let service = InferenceService(config: try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot()), logger: silentLogger)
        XCTAssertThrowsError(try Listeners.start(service.config.server, router: Router(service: service), gate: RequestGate(service: service),
                                                 logger: silentLogger))
        XCTAssertFalse(canConnect(port), "the plaintext listener on \(port) was left open")
    }

    /// A port nothing listens on right now.
    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ProtocolError(500, "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Sends `request` over loopback and reads until the server closes.
    func exchange(_ port: Int, _ request: String) throws -> String {
        guard let fd = connectLoopback(port) else { throw ProtocolError(500, "cannot connect to \(port)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    func canConnect(_ port: Int) -> Bool {
        guard let fd = connectLoopback(port) else { return false }
        close(fd)
        return true
    }

    /// A socket connected to 127.0.0.1:`port`, or nil when nothing accepts there.
    func connectLoopback(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if connected { return fd }
        close(fd)
        return nil
    }
}
