import Dispatch
import Foundation
import Logging

/// A flag the connection raises when its peer goes away during handling, read from any thread.
final class ClientPresence: @unchecked Sendable {
    private let lock = NSLock()
    private var gone = false
    func markGone() { lock.lock(); gone = true; lock.unlock() }
    var isGone: Bool { lock.lock(); defer { lock.unlock() }; return gone }
}

/// One accepted connection: a state machine driven by dispatch sources on its I/O loop's serial queue.
///
/// Requests are parsed and handled strictly one at a time; bytes of pipelined requests wait in the parser
/// until the current response is written. Every method except `start`, `drain` and `forceClose` (which hop
/// onto the queue) must run on `loop.queue`.
final class HTTPConnection: @unchecked Sendable {
    private enum Phase { case idle, readingHead, readingBody, handling, writing, lingering, closed }
    private enum TimerKind { case none, idle, header, body, write, linger }

    private struct InFlight {
        let method: String
        let target: String
        let versionMinor: Int
        let keepAlive: Bool
        let started: UInt64
        let token: Int
        let acceptEncoding: String?
    }

    /// Most bytes read in one readable event before yielding to other connections on the queue.
    private static let readBudgetPerEvent = 256 * 1024
    /// Bytes discarded while lingering before giving up and closing.
    private static let lingerDiscardLimit = 1 << 20

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
    private let bodyLimit: @Sendable (String, String) -> Int

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
    /// Presence of the client for the request being handled.
    private var presence: ClientPresence?

    init(id: Int, loop: IOLoop, transport: ConnectionTransport, remoteAddress: String,
         configuration: HTTPServerConfiguration, logger: Logger,
         bodyLimit: @escaping @Sendable (String, String) -> Int, handler: @escaping HTTPHandler,
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
        self.parser = HTTPRequestParser(limits: HTTPParserLimits(configuration), bodyLimit: bodyLimit)
        self.bodyLimit = bodyLimit
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
        } else {
            arm(.idle, configuration.idleTimeout)
        }
    }

    // MARK: - Reading

    private func readable() {
        guard phase != .closed else { return }
        let buffer = loop.readBuffer
        var total = 0
        reading: while total < Self.readBudgetPerEvent {
            switch transport.read(into: buffer) {
            case .bytes(let n):
                total += n
                if phase == .lingering || (phase == .writing && closeAfterWrite) {
                    lingerDiscarded += n
                    if lingerDiscarded > Self.lingerDiscardLimit { close(); return }
                } else {
                    parser.append(UnsafeRawBufferPointer(rebasing: buffer[0 ..< n]))
                }
            case .wouldBlock:
                break reading
            case .closed:
                peerClosed = true
                break reading
            case .failed(let code):
                logger.warning("read failed; closing connection", metadata: ["error": "\(Socket.errorText(code))"])
                close()
                return
            }
        }
        if peerClosed {
            pauseReading()
            if phase == .handling { presence?.markGone() }
        }
        switch phase {
        case .idle, .readingHead, .readingBody:
            processInput()
        case .handling, .writing:
            if parser.bufferedByteCount > pauseThreshold { pauseReading() }
        case .lingering:
            if peerClosed { close() }
        case .closed:
            break
        }
    }

    private func pauseReading() {
        guard let source = readSource, !readSuspended else { return }
        source.suspend()
        readSuspended = true
    }

    private func resumeReading() {
        guard let source = readSource, readSuspended, !peerClosed else { return }
        readSuspended = false
        source.resume()
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
                respondWithServerError(error.status, error.message)
                return
            }
        }
    }

    // MARK: - Handling

    private func dispatch(_ request: HTTPRequest) {
        var request = request
        if configuration.decodeRequestBodies, let coding = request.headers["content-encoding"] {
            // Decoded here, capped by the same limit as the raw body (zip-bomb guard).
            guard let parsed = ContentCoding.parse(coding) else {
                return respondWithServerError(415, "Content-Encoding '\(coding)' is not supported; use gzip, deflate or identity",
                                              extraHeaders: [("Accept-Encoding", "gzip, deflate, identity")])
            }
            do {
                request.body = try HTTPCompression.decompress(request.body, coding: parsed, limit: bodyLimit(request.method, request.path))
                request.headers.remove(name: "Content-Encoding")
            } catch CompressionError.tooLarge(let limit) {
                return respondWithServerError(413, "request body is larger than \(limit) bytes once decompressed")
            } catch {
                return respondWithServerError(400, "request body is not valid \(parsed.rawValue): \(error)")
            }
        }
        let presence = ClientPresence()
        self.presence = presence
        request.isClientGone = { presence.isGone }
        phase = .handling
        disarm()
        requestToken &+= 1
        let token = requestToken
        inFlight = InFlight(method: request.method, target: request.target, versionMinor: request.versionMinor,
                            keepAlive: request.wantsKeepAlive, started: DispatchTime.now().uptimeNanoseconds, token: token,
                            acceptEncoding: request.headers["accept-encoding"])
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
        presence = nil
        let handlerWantsClose = response.headers.values(for: "Connection").contains { value in
            value.split(separator: ",").contains { $0.trimmingASCIIWhitespace().lowercased() == "close" }
        }
        let keepAlive = request.keepAlive && !draining && !handlerWantsClose
        let connectionValue: String? = keepAlive ? (request.versionMinor == 0 ? "keep-alive" : nil) : "close"
        var response = response
        compressIfAccepted(&response, acceptEncoding: request.acceptEncoding)
        let bytes = response.serialized(omitBody: request.method == "HEAD", connection: connectionValue,
                                        date: HTTPDate.shared.now(), serverName: configuration.serverName)
        logRequest(method: request.method, target: request.target, status: response.status,
                   bytes: request.method == "HEAD" ? 0 : response.body.count, started: request.started,
                   requestID: response.headers["x-request-id"])
        phase = .writing
        closeAfterWrite = !keepAlive
        enqueue(bytes)
        arm(.write, configuration.idleTimeout)
        flush()
    }

    /// Compresses the body with the best coding the client accepts when it is large enough, the
    /// status may carry a body and the handler did not encode it already. HEAD gets the same headers.
    private func compressIfAccepted(_ response: inout HTTPResponse, acceptEncoding: String?) {
        let minimum = response.compressionMinimumBytes ?? configuration.compressionMinimumBytes
        guard minimum != Int.max, response.body.count >= minimum, !HTTPStatus.forbidsBody(response.status),
              response.status != 206, !response.headers.contains("Content-Encoding") else { return }
        response.headers.add(name: "Vary", value: "Accept-Encoding")
        let coding = ContentCoding.negotiate(acceptEncoding)
        guard coding != .identity else { return }
        response.body = HTTPCompression.compress(response.body, coding: coding, level: configuration.compressionLevel)
        response.headers.set(name: "Content-Encoding", value: coding.rawValue)
    }

    /// Writes a JSON error generated by the server itself and closes afterwards.
    private func respondWithServerError(_ status: Int, _ message: String, extraHeaders: [(String, String)] = []) {
        var response = HTTPResponse.error(status: status, message)
        for (name, value) in extraHeaders { response.headers.add(name: name, value: value) }
        let bytes = response.serialized(omitBody: false, connection: "close",
                                        date: HTTPDate.shared.now(), serverName: configuration.serverName)
        let started = headStarted == 0 ? DispatchTime.now().uptimeNanoseconds : headStarted
        logRequest(method: "-", target: "-", status: status, bytes: response.body.count, started: started,
                   reason: message)
        inFlight = nil
        phase = .writing
        closeAfterWrite = true
        enqueue(bytes)
        arm(.write, configuration.idleTimeout)
        flush()
    }

    private func logRequest(method: String, target: String, status: Int, bytes: Int, started: UInt64,
                            reason: String? = nil, requestID: String? = nil) {
        guard logger.logLevel <= .debug else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e6
        var metadata: Logger.Metadata = [
            "status": "\(status)", "bytes": "\(bytes)", "ms": "\((elapsed * 1000).rounded() / 1000)",
        ]
        if let reason { metadata["reason"] = "\(reason)" }
        if let requestID { metadata["request_id"] = "\(requestID)" }
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
            case .wouldBlock:
                waitUntilWritable()
                return
            case .closed:
                logger.debug("peer went away before the response was written")
                close()
                return
            case .failed(let code):
                logger.warning("write failed; closing connection", metadata: ["error": "\(Socket.errorText(code))"])
                close()
                return
            }
        }
        output = []
        outputOffset = 0
        if let source = writeSource {
            writeSource = nil
            source.cancel()
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
        resumeReading()
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
        resumeReading()
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
        presence?.markGone()
        presence = nil
        phase = .closed
        inFlight = nil
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
