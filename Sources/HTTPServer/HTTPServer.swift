import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Called once per request on the connection's I/O queue. Call the completion exactly once,
/// from any thread; the handler itself must not block (hand heavy work to other threads).
public typealias HTTPHandler = @Sendable (HTTPRequest, @escaping @Sendable (HTTPResponse) -> Void) -> Void

/// HTTP/1.1 server on POSIX sockets and Dispatch.
///
/// A nonblocking listener is watched by a read source on an accept queue; accepted connections are spread
/// round-robin over `ioThreads` serial I/O queues, each connection driven by its own read/write/timer sources.
///
/// With `configuration.tls` set the listener speaks HTTPS only. To serve plaintext and TLS side by side,
/// create two servers (one with `tls`, one without, on different ports) with the same handler.
public final class HTTPServer: @unchecked Sendable {
    private enum State { case initial, running, stopping, stopped }

    /// Most connections kept open just to answer 503 when over the cap; beyond that they are closed at once.
    private static let maxRejectingConnections = 64

    private let configuration: HTTPServerConfiguration
    private let logger: Logger
    private let headPolicy: HTTPHeadPolicy
    private let handler: HTTPHandler
    private let budget: HTTPMemoryBudget

    /// Guards everything below; also signalled whenever a connection closes.
    private let condition = NSCondition()
    private var state = State.initial
    private var loops: [IOLoop] = []
    private var nextLoop = 0
    private var nextConnectionID = 0
    private var connections: [Int: HTTPConnection] = [:]
    private var servingCount = 0
    /// Open serving connections per client IP (port dropped).
    private var perClient: [String: Int] = [:]
    private var rejectingCount = 0
    private var listenSource: DispatchSourceRead?
    private var listenDescriptor: Int32 = -1
    private var acceptPaused = false
    private var port = 0
    private var address = ""
    private let acceptQueue = DispatchQueue(label: "sparseserve.http.accept", qos: .userInitiated)
    private let listenerClosed = DispatchSemaphore(value: 0)
    private var tlsContext: TLSContext?

    /// - Parameters:
    ///   - bodyLimit: per-request body cap by method and path; defaults to `configuration.maxBodyBytes`.
    ///   - headPolicy: decides from each request head, before the body is read, whether to read it
    ///     (and its cap) or to answer and close (e.g. 401); when given, `bodyLimit` is not used.
    ///   - handler: called for every complete request.
    public init(configuration: HTTPServerConfiguration, logger: Logger,
                bodyLimit: (@Sendable (_ method: String, _ path: String) -> Int)? = nil,
                headPolicy: HTTPHeadPolicy? = nil,
                handler: @escaping HTTPHandler) {
        self.configuration = configuration
        self.logger = logger
        let defaultLimit = configuration.maxBodyBytes
        let limit = bodyLimit ?? { _, _ in defaultLimit }
        self.headPolicy = headPolicy ?? { .accept(maxBodyBytes: limit($0.method, $0.path)) }
        self.budget = configuration.bodyMemoryBudget ?? HTTPMemoryBudget(limit: configuration.maxTotalBodyBytes)
        self.handler = handler
    }

    /// Bytes of request bodies currently held against the body memory budget.
    public var reservedBodyBytes: Int { budget.reservedBytes }

    /// Loads the TLS files (if any), binds and listens. Throws `HTTPServerError` for an invalid address,
    /// an address in use, or a second start, and `TLSError` (naming the file) for a missing, unreadable or
    /// invalid certificate, key or client CA, before anything is bound.
    public func start() throws {
        condition.lock()
        defer { condition.unlock() }
        guard state == .initial else { throw HTTPServerError("the server was already started") }
        signal(SIGPIPE, SIG_IGN)
        if let tls = configuration.tls { tlsContext = try TLSContext(tls) }
        let (fd, boundAddress, boundPort) = try Socket.makeListener(
            host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        loops = (0 ..< max(1, configuration.ioThreads)).map { IOLoop(label: "sparseserve.http.io.\($0)") }
        listenDescriptor = fd
        address = boundAddress
        port = boundPort
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        let closed = listenerClosed
        source.setEventHandler { self.acceptConnections() }
        source.setCancelHandler {
            Socket.closeDescriptor(fd)
            closed.signal()
        }
        listenSource = source
        state = .running
        source.resume()
        logger.info("HTTP server listening", metadata: ["address": "\(boundAddress)", "port": "\(boundPort)"])
    }

    /// Re-reads the TLS certificate chain, private key and client CA from the configured paths (on
    /// SIGHUP, after a certificate renewal): connections accepted afterwards use them, open ones
    /// keep theirs. Throws `TLSError` naming the file, and keeps serving the current ones, when the
    /// new files do not load or do not match. Does nothing for a plaintext server.
    public func reloadTLS() throws {
        guard let tls = configuration.tls else { return }
        let fresh = try TLSContext(tls)
        condition.lock()
        tlsContext = fresh
        condition.unlock()
        logger.info("TLS certificate reloaded", metadata: ["certificate": "\(tls.certificatePath)"])
    }

    /// The bound port (useful when configured with port 0); 0 before `start()`.
    public var boundPort: Int {
        condition.lock(); defer { condition.unlock() }
        return port
    }

    /// The bound address as a numeric literal; empty before `start()`.
    public var boundAddress: String {
        condition.lock(); defer { condition.unlock() }
        return address
    }

    /// Open connections, including ones being refused over the cap.
    public var activeConnectionCount: Int {
        condition.lock(); defer { condition.unlock() }
        return connections.count
    }

    /// Labels of the I/O queues serving the open connections (for tests and diagnostics).
    var connectionQueueLabels: [String] {
        condition.lock(); defer { condition.unlock() }
        return connections.keys.sorted().compactMap { connections[$0]?.loop.queue.label }
    }

    /// Stops gracefully and blocks until done: closes the listener and idle connections, lets requests in
    /// progress finish (their responses carry `Connection: close`), and force-closes whatever is left when
    /// `gracePeriod` seconds have passed. Do not call from a handler or an I/O queue.
    public func stop(gracePeriod: Double) {
        condition.lock()
        guard state == .running else {
            if state == .initial { state = .stopped }
            condition.unlock()
            return
        }
        state = .stopping
        if let source = listenSource {
            source.cancel()
            if acceptPaused {
                acceptPaused = false
                source.resume()
            }
            listenSource = nil
        }
        let open = Array(connections.values)
        condition.unlock()

        _ = listenerClosed.wait(timeout: .now() + 2)
        for connection in open { connection.drain() }

        let deadline = Date(timeIntervalSinceNow: max(0, gracePeriod))
        condition.lock()
        while !connections.isEmpty && condition.wait(until: deadline) {}
        let left = Array(connections.values)
        condition.unlock()

        if !left.isEmpty {
            logger.warning("grace period over; closing connections still open", metadata: ["count": "\(left.count)"])
            for connection in left { connection.forceClose() }
            let forceDeadline = Date(timeIntervalSinceNow: 2)
            condition.lock()
            while !connections.isEmpty && condition.wait(until: forceDeadline) {}
            condition.unlock()
        }
        condition.lock()
        state = .stopped
        condition.unlock()
        logger.info("HTTP server stopped")
    }

    // MARK: - Accepting

    private func acceptConnections() {
        for _ in 0 ..< 64 {
            switch Socket.accept(listener: listenDescriptor) {
            case .accepted(let fd, let remote):
                register(fd, remote: remote)
            case .wouldBlock:
                return
            case .failed(let code):
                switch code {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    logger.warning("accept failed; pausing accepts for 100 ms",
                                   metadata: ["error": "\(Socket.errorText(code))"])
                    pauseAccepting()
                    return
                default:
                    logger.warning("accept failed", metadata: ["error": "\(Socket.errorText(code))"])
                    return
                }
            }
        }
    }

    private func pauseAccepting() {
        condition.lock()
        defer { condition.unlock() }
        guard state == .running, let source = listenSource, !acceptPaused else { return }
        source.suspend()
        acceptPaused = true
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) {
            self.condition.lock()
            defer { self.condition.unlock() }
            if self.acceptPaused, let source = self.listenSource {
                self.acceptPaused = false
                source.resume()
            }
        }
    }

    private func register(_ fd: Int32, remote: String) {
        condition.lock()
        defer { condition.unlock() }
        guard state == .running else {
            Socket.closeDescriptor(fd)
            return
        }
        let client = Self.clientAddress(remote)
        let rejecting = servingCount >= configuration.maxConnections
            || perClient[client, default: 0] >= configuration.maxConnectionsPerClient
        if rejecting {
            guard rejectingCount < Self.maxRejectingConnections else {
                Socket.closeDescriptor(fd)
                return
            }
            rejectingCount += 1
            logger.warning("connection limit reached; refusing connection",
                           metadata: ["limit": "\(configuration.maxConnections)",
                                      "perClientLimit": "\(configuration.maxConnectionsPerClient)", "remote": "\(remote)"])
        } else {
            servingCount += 1
            perClient[client, default: 0] += 1
        }
        let loop = loops[nextLoop % loops.count]
        nextLoop &+= 1
        nextConnectionID &+= 1
        let transport: ConnectionTransport
        if let tlsContext {
            guard let secure = try? TLSTransport(fileDescriptor: fd, context: tlsContext) else {
                logger.warning("cannot create a TLS session; closing connection", metadata: ["remote": "\(remote)"])
                if rejecting { rejectingCount -= 1 } else { releaseSlot(client) }
                Socket.closeDescriptor(fd) // the failed transport's deinit does not close it
                return
            }
            transport = secure
        } else {
            transport = TCPTransport(fileDescriptor: fd)
        }
        let connection = HTTPConnection(
            id: nextConnectionID, loop: loop, transport: transport, remoteAddress: remote,
            configuration: configuration, logger: logger, budget: budget, headPolicy: headPolicy, handler: handler,
            isRejection: rejecting, onClose: { [weak self] in self?.connectionClosed($0) })
        connections[connection.id] = connection
        connection.start()
    }

    private func connectionClosed(_ connection: HTTPConnection) {
        condition.lock()
        defer { condition.unlock() }
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        if connection.isRejection { rejectingCount -= 1 } else { releaseSlot(Self.clientAddress(connection.remoteAddress)) }
        condition.broadcast()
    }

    /// A serving connection from `client` ended (call with the lock held).
    private func releaseSlot(_ client: String) {
        servingCount -= 1
        let left = perClient[client, default: 1] - 1
        perClient[client] = left > 0 ? left : nil
    }

    /// The peer's IP from "1.2.3.4:port" or "[::1]:port" (the port differs per connection).
    static func clientAddress(_ remote: String) -> String {
        guard let colon = remote.lastIndex(of: ":") else { return remote }
        return String(remote[..<colon])
    }
}
