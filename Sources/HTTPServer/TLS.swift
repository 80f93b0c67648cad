import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TLS setup failure (unreadable certificate or key, mismatch, bad CA file), with OpenSSL's reason.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ what: String) {
        var detail = ""
        let code = ERR_get_error()
        if code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            detail = ": " + String(cString: buffer)
        }
        ERR_clear_error()
        description = what + detail
    }
}

/// Server-side TLS settings: certificate chain and key (PEM files), optional client-certificate CA.
public struct TLSConfiguration: Sendable, Equatable {
    public var certificatePath: String
    public var privateKeyPath: String
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    public var clientCAPath: String?

    public init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// A loaded OpenSSL server context (TLS 1.2 or newer), shared by every connection of a listener.
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    init(_ config: TLSConfiguration) throws {
        for (path, what) in [(config.certificatePath, "certificate"), (config.privateKeyPath, "private key")]
            where !FileManager.default.isReadableFile(atPath: path) {
            throw TLSError("cannot read TLS \(what) '\(path)'")
        }
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new failed") }
        self.ctx = ctx
        _ = cssl_ctx_set_min_tls12(ctx)
        _ = cssl_ctx_set_options_defaults(ctx)
        _ = cssl_ctx_set_partial_write(ctx)
        guard SSL_CTX_use_certificate_chain_file(ctx, config.certificatePath) == 1 else {
            throw TLSError("cannot load TLS certificate '\(config.certificatePath)'")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, config.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("cannot load TLS private key '\(config.privateKeyPath)'")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("TLS private key '\(config.privateKeyPath)' does not match the certificate")
        }
        if let ca = config.clientCAPath {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                throw TLSError("cannot load client CA '\(ca)'")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// TLS over a nonblocking socket (OpenSSL reads and writes the descriptor itself). The handshake
/// runs inside the first reads; `WANT_READ`/`WANT_WRITE` map to `wouldBlock`, so the connection's
/// dispatch sources drive it like plain TCP. Handshake records are a few KB and fit the socket
/// buffer, so a handshake never waits for writability.
final class TLSTransport: ConnectionTransport {
    let fileDescriptor: Int32
    private let ssl: OpaquePointer
    private var handshakeDone = false

    init(fileDescriptor: Int32, context: TLSContext) throws {
        guard let ssl = SSL_new(context.ctx) else { throw TLSError("cannot create a TLS session") }
        self.fileDescriptor = fileDescriptor
        self.ssl = ssl
        SSL_set_fd(ssl, fileDescriptor)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    private func outcome(_ result: Int32) -> TransportResult {
        let code = SSL_get_error(ssl, result)
        let saved = errno
        ERR_clear_error()
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            if saved == EAGAIN || saved == EWOULDBLOCK || saved == EINTR { return .wouldBlock }
            return saved == 0 || saved == ECONNRESET || saved == EPIPE ? .closed : .failed(saved)
        default:
            return .failed(EPROTO)  // handshake failure (plaintext client, no client certificate, …)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TransportResult {
        if !handshakeDone {
            let r = SSL_do_handshake(ssl)
            guard r == 1 else { return outcome(r) }
            handshakeDone = true
        }
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        return n > 0 ? .bytes(Int(n)) : outcome(n)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TransportResult {
        guard handshakeDone else { return .wouldBlock }
        guard !bytes.isEmpty else { return .bytes(0) }
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, 1 << 20)))
        return n > 0 ? .bytes(Int(n)) : outcome(n)
    }

    func shutdownWrite() {
        if handshakeDone { _ = SSL_shutdown(ssl) }  // close_notify
        _ = shutdown(fileDescriptor, Int32(SHUT_WR))
    }

    func close() {
        _ = Glibc.close(fileDescriptor)
    }
}
