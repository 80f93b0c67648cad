import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS setup failure thrown by `HTTPServer.start()`: a missing or unreadable certificate, key or
/// CA file (named in the message), a key that does not match the certificate, with OpenSSL's reason.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }

    init(_ what: String) {
        let code = ERR_get_error()
        ERR_clear_error()
        message = code == 0 ? what : what + ": " + Self.describe(code)
    }

    /// OpenSSL's text for a packed error code.
    static func describe(_ code: UInt) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Server-side TLS settings for `HTTPServerConfiguration.tls`.
///
/// The listener speaks TLS 1.2 and 1.3 only (1.2 restricted to ECDHE with AES-GCM or ChaCha20),
/// offers ALPN `http/1.1`, and has no TLS compression or renegotiation.
public struct TLSConfiguration: Sendable, Equatable {
    /// PEM file with the server certificate first, then any intermediates.
    public var certificatePath: String
    /// PEM file with the certificate's private key (unencrypted).
    public var privateKeyPath: String
    /// When set: PEM file of the CA(s) client certificates must chain to. Clients are then required
    /// to present a valid certificate (mutual TLS); the handshake fails without one.
    public var clientCAPath: String?

    public init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// A loaded OpenSSL server context, shared by every connection of one listener (thread-safe).
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// TLS 1.2 cipher suites (TLS 1.3 uses OpenSSL's defaults, all AEAD).
    static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        + "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        + "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    init(_ config: TLSConfiguration) throws {
        ERR_clear_error()
        var files = [(config.certificatePath, "certificate"), (config.privateKeyPath, "private key")]
        if let ca = config.clientCAPath { files.append((ca, "client CA")) }
        for (path, what) in files {
            guard FileManager.default.fileExists(atPath: path) else { throw TLSError("TLS \(what) file '\(path)' does not exist") }
            guard FileManager.default.isReadableFile(atPath: path) else { throw TLSError("TLS \(what) file '\(path)' is not readable") }
        }
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new failed") }
        self.ctx = ctx
        guard cssl_ctx_set_min_tls12(ctx) == 1 else { throw TLSError("cannot require TLS 1.2") }
        _ = cssl_ctx_set_options_defaults(ctx)
        _ = cssl_ctx_set_partial_write(ctx)
        cssl_ctx_alpn_http11(ctx)
        // An encrypted key must fail instead of prompting for a passphrase on the terminal.
        SSL_CTX_set_default_passwd_cb(ctx) { _, _, _, _ in 0 }
        guard SSL_CTX_set_cipher_list(ctx, Self.tls12Ciphers) == 1 else { throw TLSError("cannot set the TLS 1.2 cipher list") }
        let sessionContext = Array("sparseserve".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, sessionContext, UInt32(sessionContext.count))
        guard SSL_CTX_use_certificate_chain_file(ctx, config.certificatePath) == 1 else {
            throw TLSError("cannot load the TLS certificate '\(config.certificatePath)'")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, config.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("cannot load the TLS private key '\(config.privateKeyPath)'")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("the TLS private key '\(config.privateKeyPath)' does not match the certificate '\(config.certificatePath)'")
        }
        if let ca = config.clientCAPath {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else {
                throw TLSError("cannot load the TLS client CA '\(ca)'")
            }
            SSL_CTX_set_client_CA_list(ctx, names)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// TLS over the connection's nonblocking socket (`SSL_set_fd`: OpenSSL reads and writes the
/// descriptor itself, no extra copies). The handshake runs inside the first reads (or writes);
/// `SSL_ERROR_WANT_READ`/`WANT_WRITE` become `wouldBlock`, `needsReadable` or `needsWritable`, so
/// the connection's dispatch sources drive TLS exactly like plain TCP.
///
/// A plaintext HTTP request to the TLS port is detected by OpenSSL during the handshake; the
/// transport then switches to raw bytes so the connection can answer 400 in plaintext.
final class TLSTransport: ConnectionTransport {
    let fileDescriptor: Int32
    private let ssl: OpaquePointer
    private(set) var handshakeComplete = false
    /// After a fatal error OpenSSL must not be used again (not even for close_notify).
    private var fatal = false
    private var closeNotifySent = false
    /// Plain HTTP arrived: bytes now pass through unencrypted, via `raw`.
    private var plaintext = false
    private let raw: TCPTransport

    init(fileDescriptor: Int32, context: TLSContext) throws {
        guard let ssl = SSL_new(context.ctx) else { throw TLSError("cannot create a TLS session") }
        self.fileDescriptor = fileDescriptor
        self.ssl = ssl
        raw = TCPTransport(fileDescriptor: fileDescriptor)
        guard SSL_set_fd(ssl, fileDescriptor) == 1 else {
            throw TLSError("cannot attach the TLS session to the socket") // deinit frees `ssl`
        }
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    var hasBufferedInput: Bool { handshakeComplete && !fatal && !plaintext && SSL_pending(ssl) > 0 }

    /// The negotiated protocol ("TLSv1.3"), for diagnostics.
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportResult {
        if plaintext { return raw.read(into: buffer) }
        if fatal { return .closed }
        if !handshakeComplete, let pending = handshake(reading: true) { return pending }
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        return n > 0 ? .bytes(Int(n)) : outcome(n, reading: true)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TransportResult {
        if plaintext { return raw.write(bytes) }
        if fatal { return .closed }
        if !handshakeComplete, let pending = handshake(reading: false) {
            // A plaintext client on the TLS port: what the connection writes now goes out as is.
            return pending == .plaintextOnTLSPort ? write(bytes) : pending
        }
        guard !bytes.isEmpty else { return .bytes(0) }
        ERR_clear_error()
        // Partial writes are on, and the output buffer only grows between retries (as OpenSSL
        // requires of a retried SSL_write).
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, 1 << 20)))
        return n > 0 ? .bytes(Int(n)) : outcome(n, reading: false)
    }

    /// Sends close_notify (best effort, once), then FIN.
    func shutdownWrite() {
        sendCloseNotify()
        _ = shutdown(fileDescriptor, Int32(SHUT_WR))
    }

    func close() {
        sendCloseNotify()
        Socket.closeDescriptor(fileDescriptor)
    }

    private func sendCloseNotify() {
        guard handshakeComplete, !fatal, !plaintext, !closeNotifySent else { return }
        closeNotifySent = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Advances the handshake; nil once it is complete.
    private func handshake(reading: Bool) -> TransportResult? {
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            handshakeComplete = true
            return nil
        }
        return outcome(r, reading: reading)
    }

    private func outcome(_ result: Int32, reading: Bool) -> TransportResult {
        let savedErrno = errno
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ:
            return reading ? .wouldBlock : .needsReadable
        case SSL_ERROR_WANT_WRITE:
            return reading ? .needsWritable : .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .closed // close_notify (or EOF, with SSL_OP_IGNORE_UNEXPECTED_EOF)
        case SSL_ERROR_SYSCALL:
            fatal = true
            ERR_clear_error()
            if savedErrno == 0 || savedErrno == ECONNRESET || savedErrno == EPIPE { return .closed }
            return .failed(savedErrno)
        default:
            let first = ERR_peek_error()
            if !handshakeComplete, cssl_err_is_http_request(first) != 0 {
                ERR_clear_error()
                plaintext = true
                return .plaintextOnTLSPort
            }
            fatal = true
            var reason = first == 0 ? "TLS error \(code)" : TLSError.describe(first)
            ERR_clear_error()
            if !handshakeComplete, SSL_get_verify_result(ssl) != X509_V_OK {
                let verify = String(cString: X509_verify_cert_error_string(SSL_get_verify_result(ssl)))
                reason += " (client certificate: \(verify))"
            }
            return .tlsFailed(reason)
        }
    }
}
