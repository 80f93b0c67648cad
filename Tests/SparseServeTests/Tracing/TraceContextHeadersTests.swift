import XCTest
@testable import SparseServe

final class TraceContextHeadersTests: XCTestCase {
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    func testValidHeadersAreKept() {
        let h = TraceContextHeaders(traceparent: valid, tracestate: "congo=t61rcWkgMzE")
        XCTAssertEqual(h.traceparent, valid)
        XCTAssertEqual(h.tracestate, "congo=t61rcWkgMzE")
        XCTAssertEqual(TraceContextHeaders.traceID(ofTraceparent: valid), "4bf92f3577b34da6a3ce929d0e0e4736")
        // a later version may add fields after the flags
        XCTAssertTrue(TraceContextHeaders.isValid(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"))
    }

    func testMalformedTraceparentIsDroppedWithItsTracestate() {
        for bad in ["", "garbage", valid.uppercased(), String(valid.dropLast()), valid + "-x", "ff" + valid.dropFirst(2),
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                    valid.replacingOccurrences(of: "-", with: "_"), "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", String(repeating: "a", count: 10_000)] {
            let h = TraceContextHeaders(traceparent: bad, tracestate: "k=v")
            XCTAssertNil(h.traceparent, bad)
            XCTAssertNil(h.tracestate, bad)
        }
    }

    func testOversizedOrControlTracestateIsDropped() {
        XCTAssertNil(TraceContextHeaders(traceparent: valid, tracestate: String(repeating: "k=v,", count: 200)).tracestate)
        XCTAssertNil(TraceContextHeaders(traceparent: valid, tracestate: "k=v\u{1}").tracestate)
        XCTAssertNil(TraceContextHeaders(traceparent: nil, tracestate: "k=v").tracestate)
    }

    func testDescriptionShowsOnlyTheTraceHeaders() {
        XCTAssertEqual(TraceContextHeaders(traceparent: valid, tracestate: nil).description, "traceparent=\(valid) tracestate=-")
    }
}
