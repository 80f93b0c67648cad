import Foundation
import XCTest
@testable import HTTPServer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The POSIX wrappers without an HTTP server: listener addresses and their errors, accept on an
/// empty and a pending queue, peer addresses, hang-up detection and the TCP transport's results.
final class SocketTests: XCTestCase {
    func testListenerRefusesBadPortsAndAddressesNamingThem() {
        for (host, port, fragment) in [("127.0.0.1", -1, "invalid port -1"), ("127.0.0.1", 65536, "invalid port 65536"),
                                       ("example.com", 0, "'example.com'"), ("::zz", 0, "not an IPv6 literal"),
                                       ("127.0.0.300", 0, "IPv4 or IPv6 literal")] {
            XCTAssertThrowsError(try Socket.makeListener(host: host, port: port, backlog: 4), host) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    func testListenerReportsTheBoundAddressAndEphemeralPort() throws {
        for (host, expected) in [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1")] {
            let listener = try Socket.makeListener(host: host, port: 0, backlog: 4)
            defer { Socket.closeDescriptor(listener.fd) }
            XCTAssertEqual(listener.address, expected, host)
            XCTAssertGreaterThan(listener.port, 0, host)
            XCTAssertTrue(fcntl(listener.fd, F_GETFL, 0) & O_NONBLOCK != 0, "listener must be nonblocking")
        }
    }

    func testAddressInUseIsAnErrorNamingHostAndPort() throws {
        let first = try Socket.makeListener(host: "127.0.0.1", port: 0, backlog: 4)
        defer { Socket.closeDescriptor(first.fd) }
        XCTAssertThrowsError(try Socket.makeListener(host: "127.0.0.1", port: first.port, backlog: 4)) { error in
            XCTAssertTrue("\(error)".contains("cannot bind 127.0.0.1:\(first.port)"), "\(error)")
        }
    }

    func testAcceptWouldBlockThenAcceptsWithPeerAddress() throws {
        for host in ["127.0.0.1", "::1"] {
            let listener = try Socket.makeListener(host: host, port: 0, backlog: 4)
            defer { Socket.closeDescriptor(listener.fd) }
            guard case .wouldBlock = Socket.accept(listener: listener.fd) else { return XCTFail("\(host): nothing pending must not block or fail") }
            let client = try connectedSocket(host: host, port: listener.port)
            defer { Socket.closeDescriptor(client.fd) }
            let (fd, remote) = try acceptWithin(listener.fd)
            defer { Socket.closeDescriptor(fd) }
            let expected = host.contains(":") ? "[::1]:\(client.localPort)" : "127.0.0.1:\(client.localPort)"
            XCTAssertEqual(remote, expected)
            XCTAssertTrue(fcntl(fd, F_GETFL, 0) & O_NONBLOCK != 0)
            XCTAssertTrue(fcntl(fd, F_GETFD, 0) & FD_CLOEXEC != 0)
        }
    }

    func testTransportReadsWritesAndSeesTheEndOfStream() throws {
        let listener = try Socket.makeListener(host: "127.0.0.1", port: 0, backlog: 4)
        defer { Socket.closeDescriptor(listener.fd) }
        let client = try connectedSocket(host: "127.0.0.1", port: listener.port)
        let (fd, _) = try acceptWithin(listener.fd)
        let transport = TCPTransport(fileDescriptor: fd)
        defer { transport.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        XCTAssertEqual(transport.read(into: buffer), .wouldBlock, "no data yet on a nonblocking socket")
        XCTAssertFalse(Socket.peerHasHungUp(fd))

        let reply = Array("pong".utf8)
        XCTAssertEqual(reply.withUnsafeBytes { transport.write($0) }, .bytes(4))
        var received = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(recv(client.fd, &received, 4, Int32(MSG_WAITALL)), 4)
        XCTAssertEqual(received, reply)

        XCTAssertEqual(send(client.fd, "ping", 4, 0), 4)
        XCTAssertEqual(try readWithin(transport, buffer), .bytes(4))
        XCTAssertEqual(Array(buffer.prefix(4)), Array("ping".utf8))

        Socket.closeDescriptor(client.fd)
        XCTAssertTrue(try waitFor { Socket.peerHasHungUp(fd) }, "a closed peer is seen without reading")
        XCTAssertEqual(try readWithin(transport, buffer), .closed)
    }

    func testDescribeUnknownFamilyIsEmpty() {
        var storage = sockaddr_storage()
        storage.ss_family = sa_family_t(AF_UNIX)
        XCTAssertEqual(Socket.describe(storage).0, "")
        XCTAssertEqual(Socket.describe(storage).1, 0)
        XCTAssertFalse(Socket.errorText(EADDRINUSE).isEmpty)
    }

    // MARK: - Helpers

    private func connectedSocket(host: String, port: Int) throws -> (fd: Int32, localPort: Int) {
        let six = host.contains(":")
        let fd = socket(six ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError("socket failed") }
        var storage = sockaddr_storage()
        let length: socklen_t
        if six {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &addr.sin6_addr)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &addr.sin_addr)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard rc == 0 else { Socket.closeDescriptor(fd); throw HTTPServerError("connect failed: \(errno)") }
        var local = sockaddr_storage()
        var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) } }
        return (fd, Socket.describe(local).1)
    }

    private func acceptWithin(_ listener: Int32) throws -> (Int32, String) {
        var accepted: (Int32, String)?
        _ = try waitFor {
            if case .accepted(let fd, let remote) = Socket.accept(listener: listener) { accepted = (fd, remote) }
            return accepted != nil
        }
        guard let accepted else { throw HTTPServerError("no connection accepted within 3 s") }
        return accepted
    }

    private func readWithin(_ transport: TCPTransport, _ buffer: UnsafeMutableRawBufferPointer) throws -> TransportResult {
        var result = TransportResult.wouldBlock
        _ = try waitFor {
            result = transport.read(into: buffer)
            return result != .wouldBlock
        }
        return result
    }

    /// Polls `condition` every 5 ms for up to 3 s.
    private func waitFor(_ condition: () -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            if condition() { return true }
            usleep(5000)
        }
        return false
    }
}
