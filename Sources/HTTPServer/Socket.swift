import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Error thrown by `HTTPServer.start()` (invalid address, address in use, ...).
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Outcome of one transport read or write.
enum TransportResult: Equatable {
    case bytes(Int)
    /// Nothing to do until the descriptor is readable (for reads) or writable (for writes).
    case wouldBlock
    /// (read) TLS must send before it can read more: wait until writable, then read again.
    case needsWritable
    /// (write) TLS must receive before it can send more: wait until readable, then write again.
    case needsReadable
    /// Orderly end of stream or reset (reads), or peer gone (writes).
    case closed
    case failed(Int32)
    /// (TLS) Handshake or record-layer failure, with OpenSSL's reason; close without answering.
    case tlsFailed(String)
    /// (TLS, read) The peer sent a plaintext HTTP request to a TLS listener. The transport now
    /// passes bytes through unencrypted, so the connection can answer 400 in plaintext and close.
    case plaintextOnTLSPort
}

/// The byte stream below an HTTP connection. All calls come from the connection's I/O queue;
/// `wouldBlock` and the `needs…` results tell the connection which readiness to wait for.
protocol ConnectionTransport: AnyObject {
    /// Descriptor watched by the connection's dispatch sources.
    var fileDescriptor: Int32 { get }
    /// False while a TLS handshake is in progress (the connection applies the header timeout).
    var handshakeComplete: Bool { get }
    /// Whether decrypted bytes wait inside the transport, where a read source cannot see them.
    var hasBufferedInput: Bool { get }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportResult
    func write(_ bytes: UnsafeRawBufferPointer) -> TransportResult
    /// Half-closes the sending side (FIN after pending data; TLS sends close_notify first).
    func shutdownWrite()
    /// Closes the descriptor; called exactly once, after every source on it has been cancelled.
    func close()
}

/// Plain TCP over a nonblocking socket.
final class TCPTransport: ConnectionTransport {
    let fileDescriptor: Int32

    init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    var handshakeComplete: Bool { true }
    var hasBufferedInput: Bool { false }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportResult {
        while true {
            let n = recv(fileDescriptor, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ECONNRESET: return .closed
            case let e: return .failed(e)
            }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TransportResult {
        while true {
            let n = send(fileDescriptor, bytes.baseAddress, bytes.count, Socket.sendFlags)
            if n >= 0 { return .bytes(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EPIPE, ECONNRESET: return .closed
            case let e: return .failed(e)
            }
        }
    }

    func shutdownWrite() {
        _ = shutdown(fileDescriptor, Int32(SHUT_WR))
    }

    func close() {
        Socket.closeDescriptor(fileDescriptor)
    }
}

/// Thin wrappers over the POSIX socket calls the server needs.
enum Socket {
    #if os(Linux)
    static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    static let sendFlags: Int32 = 0
    #endif

    enum AcceptResult {
        case accepted(Int32, String)
        case wouldBlock
        case failed(Int32)
    }

    /// Creates a nonblocking listening socket; returns it with the bound address and port.
    static func makeListener(host: String, port: Int, backlog: Int32) throws -> (fd: Int32, address: String, port: Int) {
        guard (0 ... 65535).contains(port) else { throw HTTPServerError("invalid port \(port)") }
        let literal = host == "localhost" ? "127.0.0.1" : host
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        if literal.contains(":") {
            var addr = sockaddr_in6()
            guard inet_pton(AF_INET6, literal, &addr.sin6_addr) == 1 else {
                throw HTTPServerError("invalid listen address '\(host)': not an IPv6 literal")
            }
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in6.self) }
        } else {
            var addr = sockaddr_in()
            guard inet_pton(AF_INET, literal, &addr.sin_addr) == 1 else {
                throw HTTPServerError("invalid listen address '\(host)': use an IPv4 or IPv6 literal or 'localhost'")
            }
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in.self) }
        }

        #if os(Linux)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(family, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HTTPServerError("socket() failed: \(errorText(errno))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        if bound != 0 {
            let e = errno
            closeDescriptor(fd)
            throw HTTPServerError("cannot bind \(host):\(port): \(errorText(e))")
        }
        if listen(fd, backlog) != 0 {
            let e = errno
            closeDescriptor(fd)
            throw HTTPServerError("cannot listen on \(host):\(port): \(errorText(e))")
        }
        setNonBlocking(fd)
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let (address, actualPort) = named == 0 ? describe(storage) : (literal, port)
        return (fd, address, actualPort)
    }

    /// Accepts one connection as a nonblocking, close-on-exec socket with TCP_NODELAY.
    static func accept(listener: Int32) -> AcceptResult {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                #if canImport(Glibc)
                Glibc.accept(listener, address, &length)
                #else
                Darwin.accept(listener, address, &length)
                #endif
            }
        }
        if fd < 0 {
            let e = errno
            return (e == EAGAIN || e == EWOULDBLOCK) ? .wouldBlock : .failed(e)
        }
        setNonBlocking(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        #if !os(Linux)
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (address, port) = describe(storage)
        let remote = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        return .accepted(fd, remote)
    }

    /// Whether the peer has shut down its sending side or reset the connection, without reading
    /// (bytes it sent before may still wait unread). Used while reading is paused.
    static func peerHasHungUp(_ fd: Int32) -> Bool {
        #if os(Linux)
        let rdhup: Int16 = 0x2000 // POLLRDHUP
        #else
        let rdhup: Int16 = 0
        #endif
        var entry = pollfd(fd: fd, events: rdhup, revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return false }
        return entry.revents & (rdhup | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL, 0)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func closeDescriptor(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }

    /// Numeric host and port of an IPv4 or IPv6 socket address.
    static func describe(_ storage: sockaddr_storage) -> (String, Int) {
        var storage = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            let addr = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            var inAddr = addr.sin_addr
            _ = inet_ntop(AF_INET, &inAddr, &text, socklen_t(text.count))
            return (cText(text), Int(UInt16(bigEndian: addr.sin_port)))
        case AF_INET6:
            let addr = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            var inAddr = addr.sin6_addr
            _ = inet_ntop(AF_INET6, &inAddr, &text, socklen_t(text.count))
            return (cText(text), Int(UInt16(bigEndian: addr.sin6_port)))
        default:
            return ("", 0)
        }
    }

    private static func cText(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
