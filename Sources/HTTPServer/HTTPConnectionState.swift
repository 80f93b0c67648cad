import Foundation

/// Whether the client that sent a request is still connected, for handlers that queue work
/// (a batcher can drop requests whose client left instead of computing answers nobody reads).
///
/// The server keeps watching the socket while a request is handled. `isClientGone` turns true
/// when the peer closes its side (FIN or reset) or the server closes the connection before the
/// response was written. Like nginx, a half-close (`shutdown(SHUT_WR)` after sending the request)
/// counts as gone: HTTP/1.1 gives no way to tell it from a client that gave up. While more than a
/// bounded amount of pipelined bytes waits unread, the socket is polled every 250 ms instead.
/// Once the handler has responded the state no longer changes.
public final class HTTPConnectionState: @unchecked Sendable {
    private let lock = NSLock()
    private var gone = false
    private var callbacks: [@Sendable () -> Void] = []

    /// A state that reports the client as connected until `markClientGone()` (for tests and for
    /// requests built by hand).
    public init() {}

    /// True once the client disconnected while its request was in progress.
    public var isClientGone: Bool {
        lock.lock(); defer { lock.unlock() }
        return gone
    }

    /// Runs `callback` once when the client goes away (at once, on the caller's thread, if it is
    /// already gone; otherwise on the connection's I/O queue, so keep it short and non-blocking).
    /// It is never called when the request completes normally.
    public func onClientGone(_ callback: @escaping @Sendable () -> Void) {
        lock.lock()
        if gone {
            lock.unlock()
            callback()
            return
        }
        callbacks.append(callback)
        lock.unlock()
    }

    /// Marks the client as gone and runs the registered callbacks (once).
    public func markClientGone() {
        lock.lock()
        guard !gone else { lock.unlock(); return }
        gone = true
        let pending = callbacks
        callbacks = []
        lock.unlock()
        for callback in pending { callback() }
    }

    /// Drops the callbacks once the request is answered (they must not run later).
    func finish() {
        lock.lock()
        callbacks = []
        lock.unlock()
    }
}
