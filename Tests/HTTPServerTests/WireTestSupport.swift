import COpenSSL
import Foundation
import XCTest
@testable import HTTPServer
#if canImport(Glibc)
import Glibc
#endif

// Helpers for the compression, TLS and disconnect tests: child processes with a time limit,
// peak-memory probes, certificates generated at run time, and a blocking OpenSSL client.

/// Output of a child process.
struct ProcessOutput {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String
    var timedOut: Bool
    var text: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs `executable` with `arguments`, killing it after `timeout` seconds.
func runProcess(_ executable: String, _ arguments: [String], stdin input: [UInt8]? = nil,
                directory: String? = nil, timeout: Double = 20) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    try process.run()
    final class Box: @unchecked Sendable { var out = Data(), err = Data() }
    let box = Box()
    let readers = DispatchGroup()
    DispatchQueue.global().async(group: readers) { box.out = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: readers) { box.err = err.fileHandleForReading.readDataToEndOfFile() }
    if let input {
        inPipe.fileHandleForWriting.write(Data(input))
        try? inPipe.fileHandleForWriting.close()
    }
    var timedOut = false
    if done.wait(timeout: .now() + timeout) == .timedOut {
        timedOut = true
        process.terminate()
        _ = done.wait(timeout: .now() + 5)
    }
    _ = readers.wait(timeout: .now() + 5)
    return ProcessOutput(status: process.terminationStatus, stdout: Array(box.out),
                         stderr: String(decoding: box.err, as: UTF8.self), timedOut: timedOut)
}

/// Peak resident memory of this process, in bytes (`VmHWM`), after `resetPeakMemory()`.
func peakResidentBytes() -> Int {
    statusField("VmHWM:")
}

/// Current resident memory of this process, in bytes.
func residentBytes() -> Int {
    statusField("VmRSS:")
}

/// Resets `VmHWM` to the current resident size (Linux `clear_refs` value 5); false if unsupported.
@discardableResult
func resetPeakMemory() -> Bool {
    guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    defer { try? handle.close() }
    return (try? handle.write(contentsOf: Data("5".utf8))) != nil
}

private func statusField(_ name: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(name) {
        let kb = line.dropFirst(name.count).split(separator: " ").first.flatMap { Int($0) } ?? 0
        return kb * 1024
    }
    return 0
}

/// `count` zero bytes compressed with `coding`, produced 1 MiB at a time (never holding `count` bytes).
func compressedZeros(_ count: Int, coding: ContentCoding) -> [UInt8] {
    let deflater = Deflater(coding: coding, level: 9)!
    let block = [UInt8](repeating: 0, count: 1 << 20)
    var out: [UInt8] = []
    var left = count
    while left > 0 {
        let take = min(left, block.count)
        left -= take
        out += deflater.compress(take == block.count ? block : Array(block[0 ..< take]), finish: left == 0)
    }
    return out
}

/// Compressible but not trivial text: JSON-like rows.
func sampleText(bytes: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes + 64)
    var i = 0
    while out.count < bytes {
        out += Array("{\"row\":\(i),\"value\":\(Double(i) * 0.37),\"label\":\"item-\(i % 97)\"},\n".utf8)
        i += 1
    }
    return Array(out[0 ..< bytes])
}

/// Certificates made with the `openssl` command in a temporary folder: a server CA and a server
/// certificate for `localhost`/127.0.0.1, a client CA with a client certificate, and a self-signed
/// client certificate that chains to nothing. EC P-256 keys (fast to make).
final class TestCertificates: @unchecked Sendable {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCA: String { directory + "/client-ca.pem" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var rogueCertificate: String { directory + "/rogue.pem" }
    var rogueKey: String { directory + "/rogue.key" }

    static let openssl = "/usr/bin/openssl"
    private static let lock = NSLock()
    nonisolated(unsafe) private static var made: TestCertificates?

    /// Made once per test run (skips the test when the `openssl` command is missing); the folder
    /// is removed when the test process exits.
    static func shared() throws -> TestCertificates {
        guard FileManager.default.isExecutableFile(atPath: openssl) else { throw XCTSkip("no \(openssl)") }
        lock.lock(); defer { lock.unlock() }
        if let made { return made }
        let certificates = try TestCertificates()
        made = certificates
        atexit { if let made = TestCertificates.made { try? FileManager.default.removeItem(atPath: made.directory) } }
        return certificates
    }

    private init() throws {
        directory = NSTemporaryDirectory() + "sparseserve-tls-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try write("server.ext", "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        try write("client.ext", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        try openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=SparseServe Test CA"])
        try openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.pem", "-days", "2", "-extfile", "server.ext"])
        try openssl(["req", "-x509"] + ec + ["-keyout", "client-ca.key", "-out", "client-ca.pem", "-days", "2",
                                             "-subj", "/CN=SparseServe Test Client CA"])
        try openssl(["req"] + ec + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=test-client"])
        try openssl(["x509", "-req", "-in", "client.csr", "-CA", "client-ca.pem", "-CAkey", "client-ca.key",
                     "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.ext"])
        try openssl(["req", "-x509"] + ec + ["-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=rogue"])
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runProcess(Self.openssl, arguments, directory: directory, timeout: 30)
        guard result.status == 0 else {
            throw HTTPServerError("openssl \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
    }

    /// A TLS configuration for the server certificate (optionally requiring client certificates).
    func serverTLS(requireClientCertificates: Bool = false) -> TLSConfiguration {
        TLSConfiguration(certificatePath: serverCertificate, privateKeyPath: serverKey,
                         clientCAPath: requireClientCertificates ? clientCA : nil)
    }
}

/// curl over HTTPS with our CA. Returns (status code, headers text, body) or nil on failure.
struct CurlResult {
    var output: ProcessOutput
    var headers: String
    var body: [UInt8]
    /// The status line's code, 0 when curl got no response.
    var status: Int {
        let lines = headers.split(separator: "\r\n").filter { $0.hasPrefix("HTTP/") }
        return lines.last.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
    }
    func header(_ name: String) -> String? {
        for line in headers.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == name.lowercased() {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }
}

let curlPath = "/usr/bin/curl"

/// Runs curl with `--cacert`, writing headers and body to separate files so both can be checked.
func curl(_ arguments: [String], certificates: TestCertificates, timeout: Double = 10) throws -> CurlResult {
    guard FileManager.default.isExecutableFile(atPath: curlPath) else { throw XCTSkip("no \(curlPath)") }
    let tag = UInt32.random(in: 0 ... .max)
    let headerFile = certificates.directory + "/headers-\(tag).txt"
    let bodyFile = certificates.directory + "/body-\(tag).bin"
    defer {
        try? FileManager.default.removeItem(atPath: headerFile)
        try? FileManager.default.removeItem(atPath: bodyFile)
    }
    let output = try runProcess(curlPath, ["--silent", "--show-error", "--max-time", "\(Int(timeout))",
                                           "--cacert", certificates.caCertificate, "-D", headerFile, "-o", bodyFile]
                                   + arguments, timeout: timeout + 5)
    let headers = (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? ""
    let body = (try? Data(contentsOf: URL(fileURLWithPath: bodyFile))).map(Array.init) ?? []
    return CurlResult(output: output, headers: headers, body: body)
}

/// A blocking TLS client (OpenSSL, verifying the server against the test CA) with `TestClient`'s API.
final class TLSTestClient: TestClient {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    /// Set when the server's close_notify arrived (SSL_read reported a clean TLS shutdown).
    private(set) var receivedCloseNotify = false

    enum Failure: Error { case handshake(String) }

    init(port: Int, certificates: TestCertificates, clientCertificate: (String, String)? = nil,
         maxVersion: Int32? = nil, timeout: Double = 5) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw Failure.handshake("SSL_CTX_new") }
        self.context = context
        if let maxVersion {
            _ = cssl_ctx_set_min_proto(context, 0)
            _ = cssl_ctx_set_max_proto(context, maxVersion)
            _ = SSL_CTX_set_cipher_list(context, "DEFAULT:@SECLEVEL=0")
        }
        SSL_CTX_load_verify_locations(context, certificates.caCertificate, nil)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let (cert, key) = clientCertificate {
            SSL_CTX_use_certificate_chain_file(context, cert)
            SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM)
        }
        ssl = SSL_new(context)!
        try super.init(port: port, timeout: timeout)
        _ = cssl_set_sni(ssl, "localhost")
        SSL_set1_host(ssl, "localhost")
        SSL_set_fd(ssl, fd)
        ERR_clear_error()
        if SSL_connect(ssl) != 1 {
            let code = ERR_get_error()
            throw Failure.handshake(code == 0 ? "handshake failed (errno \(errno))" : TLSError.describe(code))
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// The negotiated protocol, e.g. "TLSv1.3".
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Sends our close_notify (without closing the socket).
    func sendCloseNotify() { _ = SSL_shutdown(ssl) }

    override func transmit(_ bytes: UnsafeRawBufferPointer) -> Int {
        ERR_clear_error()
        return Int(SSL_write(ssl, bytes.baseAddress, Int32(bytes.count)))
    }

    override func receive(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
        if n > 0 { return Int(n) }
        let error = SSL_get_error(ssl, n)
        if error == SSL_ERROR_ZERO_RETURN {
            receivedCloseNotify = true
            return 0
        }
        if error == SSL_ERROR_SSL {
            // With OpenSSL 3, an EOF without close_notify is an SSL error; report it as EOF.
            return 0
        }
        return n == 0 ? 0 : -1
    }
}
