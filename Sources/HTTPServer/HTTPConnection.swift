import Dispatch
import Foundation
import Logging

/// One accepted connection: a state machine driven by dispatch sources on its I/O loop's serial queue.
///
/// Requests are parsed and handled strictly one at a time; bytes of pipelined requests wait in the parser
/// until the current response is written. Every method except `start`, `drain` and `forceClose` (which hop
/// onto the queue) must run on `loop.queue`.
///
/// While a request is handled the socket stays watched, so a client that goes away flips the request's
/// `HTTPConnectionState`; pipelined bytes are buffered up to `pauseThreshold`, after which reading pauses
/// and the socket is polled for a hang-up instead. Request bodies with a `Content-Encoding` are decoded
/// (off the I/O queue unless tiny) before the handler runs; responses are compressed per `Accept-Encoding`.
/// Over TLS the handshake happens in the first reads, under the header-read timeout.
final class HTTPConnection: @unchecked Sendable {
    private enum Phase { case idle, readingHead, readingBody, handling, writing, lingering, closed }
    private enum TimerKind { case none, handshake, idle, header, body, write, linger, probe }

    private struct InFlight {
        let method: String
        let target: String
        let versionMinor: Int
        let keepAlive: Bool
        let started: UInt64
        let token: Int
        let acceptEncoding: [String]
    }

    /// Most bytes read in one readable event before yielding to other connections on the queue.
    private static let readBudgetPerEvent = 256 * 1024
    /// Bytes discarded while lingering before giving up and closing.
    private static let lingerDiscardLimit = 1 << 20
    /// Encoded request bodies up to this size are decoded on the I/O queue (deflate expands at most
    /// ~1032:1, so ≤ 1 MiB of output); larger ones on a global queue.
    private static let inlineDecodingBytes = 1024
    /// Response bodies up to this size are compressed on the I/O queue; larger ones on a global queue.
    private static let inlineCompressionBytes = 64 * 1024
    /// Seconds between hang-up polls while reading is paused during handling.
    private static let hangUpProbeInterval = 0.25

    let id: Int
    let loop: IOLoop
    let remoteAddress: String
    /// Opened beyond the connection cap: answers 503 and closes.
    let isRejection: Bool

    private let transport: ConnectionTransport
    private let configuration: HTTPServerConfiguration
    private let logger: Logger
    private let handler: HTTPHandler
    private let onClose: @Sendable (HTTPConnection) -> Void
    private let pauseThreshold: Int
    /// The current request's share of the body memory budget (a fresh one per request).
    private let accounts: BodyAccountSlot

    private var parser: HTTPRequestParser
    private var phase = Phase.idle
    private var readSource: DispatchSourceRead?
    private var readSuspended = false
    private var writeSource: DispatchSourceWrite?
    private var timer: DispatchSourceTimer?
    private var timerKind = TimerKind.none
    private var timerDeadline = DispatchTime.distantFuture
    private var liveDescriptorSources = 0
    private var descriptorClosed = false
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var closeAfterWrite = false
    private var peerClosed = false
    private var draining = false
    private var inFlight: InFlight?
    private var requestToken = 0
    private var lingerDiscarded = 0
    private var headStarted: UInt64 = 0
    /// The handled request's view of the client; marked gone on hang-up or close.
    private var clientState: HTTPConnectionState?
    /// The TLS handshake has not finished yet (the handshake timer runs).
    private var awaitingHandshake = false
    /// A read needs the socket writable first (TLS); the read source is paused meanwhile.
    private var readWaitsForWritable = false
    /// A write needs the socket readable first (TLS); reading stays on meanwhile.
    private var writeWaitsForReadable = false

    init(id: Int, loop: IOLoop, transport: ConnectionTransport, remoteAddress: String,
         configuration: HTTPServerConfiguration, logger: Logger, budget: HTTPMemoryBudget,
         headPolicy: @escaping HTTPHeadPolicy, handler: @escaping HTTPHandler,
         isRejection: Bool, onClose: @escaping @Sendable (HTTPConnection) -> Void) {
        self.id = id
        self.loop = loop
        self.transport = transport
        self.remoteAddress = remoteAddress
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "remote"] = "\(remoteAddress)"
        self.logger = logger
        self.handler = handler
        self.isRejection = isRejection
        self.onClose = onClose
        let accounts = BodyAccountSlot(budget: budget)
        self.accounts = accounts
        self.parser = HTTPRequestParser(limits: HTTPParserLimits(configuration), headPolicy: { head in
            var head = head
            head.remoteAddress = remoteAddress
            let decision = headPolicy(head)
            if case .accept(let limit) = decision { accounts.bodyLimit = limit }
            return decision
        }, reserveBody: { accounts.current.reserve($0) })
        self.pauseThreshold = max(64 * 1024, configuration.maxRequestLineBytes + configuration.maxHeaderBytes)
    }

    // MARK: - Entry points (any thread)

    /// Installs the sources; call once after init.
    func start() {
        loop.queue.async { self.begin() }
    }

    /// Server is stopping: close now if idle, otherwise after the current response (which says `Connection: close`).
    func drain() {
        loop.queue.async { self.beginDrain() }
    }

    /// Closes immediately, abandoning any request in progress.
    func forceClose() {
        loop.queue.async { self.close() }
    }

    // MARK: - Setup

    private func begin() {
        guard phase != .closed, readSource == nil else { return }
        let fd = transport.fileDescriptor
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: loop.queue)
        source.setEventHandler { self.readable() }
        source.setCancelHandler { self.descriptorSourceCancelled() }
        liveDescriptorSources += 1
        readSource = source
        source.resume()

        let timer = DispatchSource.makeTimerSource(queue: loop.queue)
        timer.setEventHandler { self.timerFired() }
        timer.schedule(deadline: .distantFuture)
        self.timer = timer
        timer.resume()

        if isRejection {
            respondWithServerError(503, "too many connections; retry later", extraHeaders: [("Retry-After", "1")])
        } else if draining {
            close()
        } else if !transport.handshakeComplete {
            awaitingHandshake = true
            arm(.handshake, configuration.headerReadTimeout)
        } else {
            arm(.idle, idleTimeout)
        }
    }

    /// Before the first request: the shorter of `firstRequestTimeout` and `idleTimeout`; between
    /// requests: `idleTimeout`.
    private var idleTimeout: Double {
        requestToken == 0 ? min(configuration.firstRequestTimeout, configuration.idleTimeout) : configuration.idleTimeout
    }

    // MARK: - Reading

    private func readable() {
        guard phase != .closed else { return }
        if writeWaitsForReadable {
            writeWaitsForReadable = false
            flush()
            guard phase != .closed else { return }
        }
        let buffer = loop.readBuffer
        var total = 0
        reading: while total < Self.readBudgetPerEvent && !readWaitsForWritable {
            if !isDiscarding && (phase == .handling || phase == .writing) && parser.bufferedByteCount > pauseThreshold {
                break reading
            }
            switch transport.read(into: buffer) {
            case .bytes(let n):
                total += n
                if isDiscarding {
                    lingerDiscarded += n
                    if lingerDiscarded > Self.lingerDiscardLimit { close(); return }
                } else {
                    parser.append(UnsafeRawBufferPointer(rebasing: buffer[0 ..< n]))
                }
            case .wouldBlock, .needsReadable:
                break reading
            case .needsWritable:
                readWaitsForWritable = true
                waitUntilWritable()
                break reading
            case .closed:
                peerClosed = true
                break reading
            case .failed(let code):
                logger.warning("read failed; closing connection", metadata: ["error": "\(Socket.errorText(code))"])
                close()
                return
            case .tlsFailed(let reason):
                logger.debug("TLS failed; closing connection", metadata: ["reason": "\(reason)"])
                close()
                return
            case .plaintextOnTLSPort:
                respondWithServerError(400, "this port speaks HTTPS (TLS); the request was sent as plain HTTP")
                return
            }
        }
        if awaitingHandshake && transport.handshakeComplete {
            awaitingHandshake = false
            if timerKind == .handshake { arm(.idle, idleTimeout) }
        }
        if peerClosed { clientState?.markClientGone() }
        updateReading()
        switch phase {
        case .idle, .readingHead, .readingBody:
            processInput()
        case .handling:
            armHangUpProbeIfPaused()
        case .lingering:
            if peerClosed { close() }
        case .writing, .closed:
            break
        }
        if total >= Self.readBudgetPerEvent, phase != .closed, !readSuspended, transport.hasBufferedInput {
            loop.queue.async { self.readable() } // decrypted bytes the read source cannot see
        }
    }

    /// Received bytes are thrown away: the final response is being written or has been.
    private var isDiscarding: Bool { phase == .lingering || (phase == .writing && closeAfterWrite) }

    /// Whether the read source should be active now.
    private var shouldRead: Bool {
        if phase == .closed { return false }
        if writeWaitsForReadable { return true }
        if peerClosed || readWaitsForWritable { return false }
        if !isDiscarding && (phase == .handling || phase == .writing) && parser.bufferedByteCount > pauseThreshold {
            return false // enough pipelined bytes buffered; the rest waits in the socket
        }
        return true
    }

    /// Suspends or resumes the read source to match `shouldRead`.
    private func updateReading() {
        guard let source = readSource else { return }
        if shouldRead {
            guard readSuspended else { return }
            readSuspended = false
            source.resume()
            if transport.hasBufferedInput { loop.queue.async { self.readable() } }
        } else if !readSuspended {
            source.suspend()
            readSuspended = true
        }
    }

    /// While a request is handled with reading paused, polls the socket for a hang-up.
    private func armHangUpProbeIfPaused() {
        guard phase == .handling, readSuspended, !peerClosed, clientState != nil, timerKind != .probe else { return }
        arm(.probe, Self.hangUpProbeInterval)
    }

    /// Parses buffered bytes while no request is being handled.
    private func processInput() {
        while phase == .idle || phase == .readingHead || phase == .readingBody {
            switch parser.next() {
            case .needMore:
                if phase == .idle && parser.hasPartialRequest {
                    if draining && !peerClosed {
                        // A new request started after stop began: refuse it politely.
                        respondWithServerError(503, "server is shutting down")
                        return
                    }
                    phase = .readingHead
                    headStarted = DispatchTime.now().uptimeNanoseconds
                    arm(.header, configuration.headerReadTimeout)
                }
                if peerClosed {
                    if phase != .idle {
                        logger.debug("peer closed in the middle of a request")
                    }
                    close()
                }
                return
            case .headComplete(let expectsContinue):
                phase = .readingBody
                arm(.body, configuration.bodyReadTimeout)
                if expectsContinue {
                    enqueue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                    flush()
                }
            case .request(var request):
                request.remoteAddress = remoteAddress
                dispatch(request)
                return
            case .failure(let error):
                let retry = error.status == 503 ? [("Retry-After", "1")] : []
                respondWithServerError(error.status, error.message, extraHeaders: retry)
                return
            case .rejected(let response):
                respondAndClose(response, reason: "refused from its headers")
                return
            }
        }
    }

    // MARK: - Handling

    private func dispatch(_ request: HTTPRequest) {
        phase = .handling
        disarm()
        requestToken &+= 1
        let token = requestToken
        let state = HTTPConnectionState()
        if peerClosed { state.markClientGone() }
        clientState = state
        var request = request
        request.connectionState = state
        request.isClientGone = { state.isClientGone }
        request.bodyAccount = accounts.current
        inFlight = InFlight(method: request.method, target: request.target, versionMinor: request.versionMinor,
                            keepAlive: request.wantsKeepAlive, started: DispatchTime.now().uptimeNanoseconds, token: token,
                            acceptEncoding: request.headers.values(for: "Accept-Encoding"))
        updateReading()
        armHangUpProbeIfPaused()
        guard configuration.decodeRequestBodies, !request.body.isEmpty, request.headers.contains("Content-Encoding") else {
            return callHandler(request, token: token)
        }
        let limit = accounts.bodyLimit
        let encodings = request.headers.values(for: "Content-Encoding")
        let received = request
        let account = accounts.current
        let decode: @Sendable () -> Result<[UInt8], any Error> = {
            Result { try HTTPCompression.decodeBody(received.body, contentEncoding: encodings, limit: limit, account: account) }
        }
        if received.body.count <= Self.inlineDecodingBytes {
            return bodyDecoded(received, decode(), token: token)
        }
        let queue = loop.queue
        DispatchQueue.global(qos: .userInitiated).async {
            let result = decode()
            queue.async { self.bodyDecoded(received, result, token: token) }
        }
    }

    /// Hands the decoded body to the handler, or answers 413/415/400.
    private func bodyDecoded(_ request: HTTPRequest, _ result: Result<[UInt8], any Error>, token: Int) {
        guard phase == .handling, let current = inFlight, current.token == token else { return }
        switch result {
        case .success(let body):
            var request = request
            request.body = body
            request.headers.remove(name: "Content-Encoding")
            if request.headers.contains("Content-Length") {
                request.headers.set(name: "Content-Length", value: String(body.count))
            }
            callHandler(request, token: token)
        case .failure(CompressionError.tooLarge(let limit)):
            respondWithServerError(413, "request body exceeds the limit of \(limit) bytes once decompressed")
        case .failure(CompressionError.unsupported(let message)):
            respondWithServerError(415, message, extraHeaders: [("Accept-Encoding", "gzip, deflate, identity")])
        case .failure(CompressionError.overBudget):
            respondWithServerError(503, HTTPRequestParser.overBudgetMessage, extraHeaders: [("Retry-After", "1")])
        case .failure(CompressionError.corrupt(let message)):
            respondWithServerError(400, "cannot decode the request body: \(message)")
        case .failure(let error):
            respondWithServerError(400, "cannot decode the request body: \(error)")
        }
    }

    private func callHandler(_ request: HTTPRequest, token: Int) {
        let queue = loop.queue
        handler(request) { [weak self] response in
            guard let connection = self else { return }
            queue.async { connection.complete(response, token: token) }
        }
    }

    private func complete(_ response: HTTPResponse, token: Int) {
        guard phase == .handling, let request = inFlight, request.token == token else {
            if phase != .closed {
                logger.warning("handler completed a request more than once; ignoring the extra response")
            }
            return
        }
        inFlight = nil
        clientState?.finish()
        clientState = nil
        accounts.finishRequest()
        if timerKind == .probe { disarm() }
        var response = response
        guard let coding = prepareCompression(&response, acceptEncoding: request.acceptEncoding) else {
            return send(response, for: request)
        }
        let level = configuration.compressionLevel
        if response.body.count <= Self.inlineCompressionBytes {
            Self.compress(&response, coding, level: level)
            return send(response, for: request)
        }
        let queue = loop.queue
        let uncompressed = response
        DispatchQueue.global(qos: .userInitiated).async {
            var compressed = uncompressed
            Self.compress(&compressed, coding, level: level)
            let done = compressed
            queue.async {
                // Still ours unless the connection closed meanwhile (phase stays .handling until sent).
                guard self.phase == .handling, self.inFlight == nil, self.requestToken == request.token else { return }
                self.send(done, for: request)
            }
        }
    }

    /// Decides whether `response` is compressed: adds `Vary: Accept-Encoding` when its representation
    /// depends on `Accept-Encoding`, and returns the coding to apply (nil = send as is).
    private func prepareCompression(_ response: inout HTTPResponse, acceptEncoding: [String]) -> ContentCoding? {
        let minimum = response.compressionMinimumBytes ?? configuration.compressionMinimumBytes
        guard minimum != Int.max, !response.body.isEmpty, response.body.count >= minimum,
              !HTTPStatus.forbidsBody(response.status), response.status != 206,
              !response.headers.contains("Content-Encoding") else { return nil }
        let varies = response.headers.values(for: "Vary").contains { value in
            value.split(separator: ",").contains {
                let token = $0.trimmingASCIIWhitespace()
                return token == "*" || HTTPHeaders.namesEqual(String(token), "Accept-Encoding")
            }
        }
        if !varies { response.headers.add(name: "Vary", value: "Accept-Encoding") }
        let coding = ContentCoding.negotiate(acceptEncoding)
        return coding == .identity ? nil : coding
    }

    /// Replaces the body with its compressed form, unless that would not be smaller.
    private static func compress(_ response: inout HTTPResponse, _ coding: ContentCoding, level: Int) {
        let compressed = HTTPCompression.compress(response.body, coding: coding, level: level)
        guard compressed.count < response.body.count else { return }
        response.body = compressed
        response.headers.set(name: "Content-Encoding", value: coding.rawValue)
        response.headers.remove(name: "Content-Length") // a HEAD handler's length is the identity one
    }

    private func send(_ response: HTTPResponse, for request: InFlight) {
        let handlerWantsClose = response.headers.values(for: "Connection").contains { value in
            value.split(separator: ",").contains { $0.trimmingASCIIWhitespace().lowercased() == "close" }
        }
        let keepAlive = request.keepAlive && !draining && !handlerWantsClose
        let connectionValue: String? = keepAlive ? (request.versionMinor == 0 ? "keep-alive" : nil) : "close"
        let bytes = response.serialized(omitBody: request.method == "HEAD", connection: connectionValue,
                                        date: HTTPDate.shared.now(), serverName: configuration.serverName)
        logRequest(method: request.method, target: request.target, status: response.status,
                   bytes: request.method == "HEAD" ? 0 : response.body.count, started: request.started,
                   requestID: response.headers["x-request-id"], extra: response.logMetadata)
        phase = .writing
        closeAfterWrite = !keepAlive
        enqueue(bytes)
        arm(.write, configuration.idleTimeout)
        flush()
    }

    /// Writes a JSON error generated by the server itself and closes afterwards.
    private func respondWithServerError(_ status: Int, _ message: String, extraHeaders: [(String, String)] = []) {
        var response = HTTPResponse.error(status: status, message)
        for (name, value) in extraHeaders { response.headers.add(name: name, value: value) }
        respondAndClose(response, reason: message)
    }

    /// Writes `response` (from the server or the head policy) and closes afterwards; body bytes
    /// still arriving are discarded while lingering, never parsed.
    private func respondAndClose(_ response: HTTPResponse, reason: String) {
        let bytes = response.serialized(omitBody: false, connection: "close",
                                        date: HTTPDate.shared.now(), serverName: configuration.serverName)
        let started = headStarted == 0 ? DispatchTime.now().uptimeNanoseconds : headStarted
        logRequest(method: "-", target: "-", status: response.status, bytes: response.body.count, started: started,
                   reason: reason)
        inFlight = nil
        clientState?.finish()
        clientState = nil
        accounts.finishRequest()
        phase = .writing
        closeAfterWrite = true
        enqueue(bytes)
        arm(.write, configuration.idleTimeout)
        flush()
    }

    private func logRequest(method: String, target: String, status: Int, bytes: Int, started: UInt64,
                            reason: String? = nil, requestID: String? = nil, extra: [String: String] = [:]) {
        guard logger.logLevel <= .debug else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e6
        var metadata: Logger.Metadata = [
            "status": "\(status)", "bytes": "\(bytes)", "ms": "\((elapsed * 1000).rounded() / 1000)",
        ]
        if let reason { metadata["reason"] = "\(reason)" }
        if let requestID { metadata["request_id"] = "\(requestID)" }
        for (key, value) in extra { metadata[key] = "\(value)" }
        logger.debug("\(method) \(target) \(status)", metadata: metadata)
    }

    // MARK: - Writing

    private func enqueue(_ bytes: [UInt8]) {
        if outputOffset == output.count {
            output = bytes
            outputOffset = 0
        } else {
            output += bytes
        }
    }

    private func flush() {
        guard phase != .closed else { return }
        while outputOffset < output.count {
            let result = output.withUnsafeBytes { all in
                transport.write(UnsafeRawBufferPointer(rebasing: all[outputOffset...]))
            }
            switch result {
            case .bytes(let n):
                outputOffset += n
            case .wouldBlock, .needsWritable:
                waitUntilWritable()
                return
            case .needsReadable:
                writeWaitsForReadable = true
                updateReading()
                return
            case .closed:
                logger.debug("peer went away before the response was written")
                close()
                return
            case .failed(let code):
                logger.warning("write failed; closing connection", metadata: ["error": "\(Socket.errorText(code))"])
                close()
                return
            case .tlsFailed(let reason):
                logger.debug("TLS failed while writing; closing connection", metadata: ["reason": "\(reason)"])
                close()
                return
            case .plaintextOnTLSPort:
                close() // not produced by writes
                return
            }
        }
        output = []
        outputOffset = 0
        if let source = writeSource {
            writeSource = nil
            source.cancel()
        }
        if readWaitsForWritable {
            // The socket is writable (or the read is simply retried): let TLS continue its read.
            readWaitsForWritable = false
            updateReading()
            loop.queue.async { self.readable() }
        }
        if phase == .writing { responseWritten() }
    }

    private func waitUntilWritable() {
        guard writeSource == nil else { return }
        let source = DispatchSource.makeWriteSource(fileDescriptor: transport.fileDescriptor, queue: loop.queue)
        source.setEventHandler { self.flush() }
        source.setCancelHandler { self.descriptorSourceCancelled() }
        liveDescriptorSources += 1
        writeSource = source
        source.resume()
    }

    private func responseWritten() {
        if closeAfterWrite || draining {
            beginLinger()
            return
        }
        phase = .idle
        headStarted = 0
        arm(.idle, configuration.idleTimeout)
        updateReading()
        processInput()
    }

    /// After the final response: send FIN, then read and discard until the peer closes (or a short timeout),
    /// so unread request bytes do not turn our close into a reset that destroys the response.
    private func beginLinger() {
        phase = .lingering
        transport.shutdownWrite()
        if peerClosed {
            close()
            return
        }
        updateReading()
        arm(.linger, draining ? 0.25 : 1.0)
    }

    // MARK: - Timers

    private func arm(_ kind: TimerKind, _ seconds: Double) {
        guard let timer else { return }
        timerKind = kind
        let nanos = seconds.isFinite ? max(0, min(seconds, 1e7)) * 1e9 : 1e16
        timerDeadline = DispatchTime.now() + .nanoseconds(Int(nanos))
        timer.schedule(deadline: timerDeadline, leeway: .milliseconds(5))
    }

    private func disarm() {
        timerKind = .none
        timerDeadline = .distantFuture
        timer?.schedule(deadline: .distantFuture)
    }

    private func timerFired() {
        guard phase != .closed, timerKind != .none else { return }
        if DispatchTime.now() < timerDeadline {
            timer?.schedule(deadline: timerDeadline, leeway: .milliseconds(5))
            return
        }
        let kind = timerKind
        disarm()
        switch (kind, phase) {
        case (.idle, .idle):
            logger.debug("closing idle connection")
            close()
        case (.header, .readingHead):
            respondWithServerError(408, "timed out reading the request headers")
        case (.body, .readingBody):
            respondWithServerError(408, "timed out reading the request body")
        case (.write, .writing):
            logger.warning("response write stalled; closing connection")
            close()
        case (.linger, .lingering):
            close()
        case (.handshake, .idle):
            logger.debug("TLS handshake timed out; closing connection")
            close()
        case (.probe, .handling):
            if Socket.peerHasHungUp(transport.fileDescriptor) {
                clientState?.markClientGone()
            } else {
                armHangUpProbeIfPaused()
            }
        default:
            break
        }
    }

    // MARK: - Shutdown

    private func beginDrain() {
        guard phase != .closed else { return }
        draining = true
        switch phase {
        case .idle:
            if !parser.hasPartialRequest { close() }
        case .lingering:
            arm(.linger, 0.25)
        default:
            break // the current request finishes; its response says Connection: close
        }
    }

    /// Cancels every source; the descriptor is closed once the last descriptor source reports cancellation.
    private func close() {
        guard phase != .closed else { return }
        phase = .closed
        inFlight = nil
        clientState?.markClientGone() // closed before the response was written
        clientState = nil
        accounts.finishRequest()
        timer?.cancel()
        if let source = readSource {
            source.cancel()
            if readSuspended {
                readSuspended = false
                source.resume()
            }
        }
        writeSource?.cancel()
        if liveDescriptorSources == 0 { closeDescriptor() }
    }

    private func descriptorSourceCancelled() {
        liveDescriptorSources -= 1
        if phase == .closed && liveDescriptorSources == 0 { closeDescriptor() }
    }

    private func closeDescriptor() {
        guard !descriptorClosed else { return }
        descriptorClosed = true
        transport.close()
        readSource = nil
        writeSource = nil
        timer = nil
        onClose(self)
    }
}

/// The budget account of a connection's current request, and the body limit its head was given.
/// Touched on the connection's queue (the parser's callbacks run there); a decoding thread holds
/// on to the account object itself, which stops taking reservations once the request is over.
private final class BodyAccountSlot: @unchecked Sendable {
    private let budget: HTTPMemoryBudget
    private(set) var current: HTTPBodyAccount
    var bodyLimit = 0

    init(budget: HTTPMemoryBudget) {
        self.budget = budget
        self.current = HTTPBodyAccount(budget: budget)
    }

    /// Releases what the finished (or abandoned) request held; the next request gets a new account.
    func finishRequest() {
        current.finish()
        current = HTTPBodyAccount(budget: budget)
    }
}
