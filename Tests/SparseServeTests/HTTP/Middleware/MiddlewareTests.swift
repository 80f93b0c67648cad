import Foundation
import HTTPServer
import XCTest
@testable import SparseServe

/// The router's chain of steps: run in order, the first answer ends it, and every response goes
/// through the responders of the steps that ran (the last wrapper outermost).
final class MiddlewareTests: XCTestCase {
    /// Records its name when run, answers `status` when set, and tags every response passing its wrapper.
    private struct Step: Middleware {
        let name: String
        var answers: Int?
        let log: Log
        func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
            log.append(name)
            let inner = respond, name = self.name
            respond = { response in
                var tagged = response
                tagged.headers.add(name: "X-Through", value: name)
                inner(tagged)
            }
            return answers.map { HTTPResponse(status: $0) }
        }
    }

    private final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func append(_ name: String) { lock.lock(); names.append(name); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return names }
    }

    func testStepsRunInOrderAndWrapTheResponder() throws {
        let log = Log(), sink = ResponseSink()
        let chain: [any Middleware] = [Step(name: "a", log: log), Step(name: "b", log: log)]
        let (respond, answer) = chain.run(request("GET", "/v2"), route: try Route(path: "/v2"), respond: sink.responder)
        XCTAssertNil(answer)
        XCTAssertEqual(log.all, ["a", "b"])
        respond(HTTPResponse(status: 200))
        XCTAssertEqual(sink.all.first?.headers.values(for: "X-Through"), ["b", "a"], "b's wrapper runs first, a's last")
    }

    func testFirstAnswerStopsTheChainAndIsDecoratedByTheStepsBefore() throws {
        let log = Log(), sink = ResponseSink()
        let chain: [any Middleware] = [Step(name: "a", log: log), Step(name: "b", answers: 401, log: log), Step(name: "c", answers: 500, log: log)]
        let (respond, answer) = chain.run(request("GET", "/v2"), route: nil, respond: sink.responder)
        XCTAssertEqual(answer?.status, 401)
        XCTAssertEqual(log.all, ["a", "b"], "c never runs")
        respond(try XCTUnwrap(answer))
        XCTAssertEqual(sink.all.first?.headers.values(for: "X-Through"), ["b", "a"])
    }

    func testEmptyChainPassesTheResponderThrough() {
        let sink = ResponseSink()
        let (respond, answer) = [any Middleware]().run(request("GET", "/"), route: nil, respond: sink.responder)
        XCTAssertNil(answer)
        respond(HTTPResponse(status: 204))
        XCTAssertEqual(sink.all.map(\.status), [204])
        XCTAssertFalse(sink.all[0].headers.contains("X-Through"))
    }
}
