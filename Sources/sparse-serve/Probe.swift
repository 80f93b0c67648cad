import ArgumentParser
import Foundation

/// `sparse-serve probe`: a dependency-free HTTP health check for container HEALTHCHECKs (the
/// runtime image has no curl). Exits 0 when the URL answers 2xx/3xx within the timeout.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that a SparseServe health URL answers 2xx (exit 0) or not (exit 1).")

    @Option(help: "http:// URL to GET.")
    var url: String = "http://127.0.0.1:8000/v2/health/live"

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Double = 2

    func run() throws {
        guard let parsed = URL(string: url), parsed.scheme == "http", let host = parsed.host else {
            throw ValidationError("--url must be an http:// URL")
        }
        let port = parsed.port ?? 80
        let path = parsed.path.isEmpty ? "/" : parsed.path
        let status = try probeStatus(host: host, port: port, path: path, timeout: timeout)
        print("\(url): \(status)")
        if !(200..<400).contains(status) { throw ExitCode(1) }
    }
}

/// Sends one GET and returns the response status code (throws on connect/read failure or timeout).
func probeStatus(host: String, port: Int, path: String, timeout: Double) throws -> Int {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    guard getaddrinfo(bare, String(port), &hints, &list) == 0, let info = list else {
        throw ExitMessage("cannot resolve \(host)")
    }
    defer { freeaddrinfo(list) }
    let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ExitMessage("socket() failed") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
        throw ExitMessage("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
    }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { throw ExitMessage("send failed") }
    var buffer = [UInt8](repeating: 0, count: 512)
    var received: [UInt8] = []
    while received.count < 64 {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received.append(contentsOf: buffer[0..<n])
    }
    let line = String(decoding: received.prefix(while: { $0 != 0x0D }), as: UTF8.self)
    let parts = line.split(separator: " ")
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
        throw ExitMessage("no HTTP status line from \(host):\(port)")
    }
    return code
}
