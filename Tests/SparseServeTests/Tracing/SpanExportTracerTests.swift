import Dispatch
import Foundation
import Tracing
import XCTest
@testable import SparseServe

final class SpanExportTracerTests: XCTestCase {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    func testExtractThenInjectContinuesTheCallersTrace() {
        let tracer = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 1)
        var context = ServiceContext.topLevel
        tracer.extract(["traceparent": traceparent, "tracestate": "k=v"], into: &context, using: DictionaryExtractor())
        let span = tracer.startSpan("root", context: context, ofKind: .server, at: DefaultTracerClock.now)
        var out: [String: String] = [:]
        tracer.inject(span.context, into: &out, using: DictionaryInjector())
        let parts = out["traceparent"]!.split(separator: "-")
        XCTAssertEqual(parts[0], "00")
        XCTAssertEqual(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736")
        XCTAssertNotEqual(parts[2], "00f067aa0ba902b7", "a span of its own")
        XCTAssertEqual(parts[3], "01")
        XCTAssertEqual(out["tracestate"], "k=v")
        XCTAssertEqual(span.context[SpanExportTracer.ContextKey.self]?.traceIDHex, "4bf92f3577b34da6a3ce929d0e0e4736")
    }

    func testMalformedOrMissingTraceparentStartsANewTrace() {
        let tracer = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 1)
        var context = ServiceContext.topLevel
        tracer.extract(["traceparent": traceparent.uppercased()], into: &context, using: DictionaryExtractor())
        XCTAssertNil(context[SpanExportTracer.ContextKey.self])
        let a = tracer.childContext(of: nil), b = tracer.childContext(of: nil)
        XCTAssertNotEqual(a.traceIDHex, b.traceIDHex)
        XCTAssertNotEqual(a.spanID, 0)
        XCTAssertEqual(a.traceIDHex.count, 32)
        XCTAssertNotNil(ExportSpanContext(traceparent: a.traceparent, tracestate: nil))
    }

    func testIDsDrawnOnManyThreadsAllDiffer() {
        let tracer = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 1)
        // NSLock, not Synchronization.Mutex: the prebuilt Mutex's futex is invisible to
        // ThreadSanitizer, which then reports the guarded appends as a race.
        let lock = NSLock()
        nonisolated(unsafe) var all: [ExportSpanContext] = []
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            let mine = (0..<200).map { _ in tracer.serverContext(of: nil) }
            XCTAssertEqual(Set(mine.map(\.seed)).count, 200)
            lock.withLock { all += mine.map(\.context) }
        }
        XCTAssertEqual(Set(all.map(\.traceIDHex)).count, all.count, "each thread's generator is seeded on its own")
        XCTAssertEqual(Set(all.map(\.spanID)).count, all.count)
        XCTAssertFalse(all.contains { $0.spanID == 0 })
    }

    func testSamplingFollowsTheParentAndTheRatioForNewTraces() {
        let never = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 0)
        XCTAssertFalse((0..<200).contains { _ in never.childContext(of: nil).sampled })
        let caller = ExportSpanContext(traceparent: traceparent, tracestate: nil)!
        XCTAssertTrue(never.childContext(of: caller).sampled, "a caller's sampled trace is followed")
        let unsampled = ExportSpanContext(traceparent: String(traceparent.dropLast(2)) + "00", tracestate: nil)!
        let always = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 1)
        XCTAssertFalse(always.childContext(of: unsampled).sampled, "and so is an unsampled one")
        let half = SpanExportTracer(queue: SpanExportQueue(), sampleRatio: 0.5)
        let kept = (0..<4000).filter { _ in half.childContext(of: nil).sampled }.count
        XCTAssertTrue((1700...2300).contains(kept), "\(kept) of 4000 at ratio 0.5")
    }

    func testRecordQueuesAFinishedChildWithItsAttributesAndError() {
        let queue = SpanExportQueue()
        let tracer = SpanExportTracer(queue: queue, sampleRatio: 1)
        let parent = ExportSpanContext(traceparent: traceparent, tracestate: "k=v")!
        struct Broken: Error {}
        tracer.record("decode", parent: parent, start: 10, end: 5, error: Broken()) { $0.set("sparseserve.batch.rows", 4) }
        tracer.record("skipped", parent: ExportSpanContext(traceparent: String(traceparent.dropLast(2)) + "00", tracestate: nil)!,
                      start: 1, end: 2)
        let (queued, dropped, _) = { queue.close(); return queue.next() }()
        let batch = queued.spans
        XCTAssertEqual(dropped, 0)
        XCTAssertEqual(batch.map(\.name), ["decode"], "an unsampled parent records nothing")
        let span = batch[0]
        XCTAssertEqual(span.parentSpanID, parent.spanID)
        XCTAssertEqual(span.context.traceIDHex, parent.traceIDHex)
        XCTAssertEqual([span.start, span.end], [10, 10], "an end before the start is clamped")
        XCTAssertEqual(span.attributes.get("sparseserve.batch.rows"), .int64(4))
        XCTAssertEqual(span.status?.code, .error)
        XCTAssertEqual(span.events.map(\.name), ["exception"])
    }

    func testXoshiroIsDeterministicForASeedAndSpreadsBits() {
        struct Fixed: RandomNumberGenerator { var n: UInt64 = 0; mutating func next() -> UInt64 { n += 1; return n } }
        var a = Xoshiro256(seed: Fixed()), b = Xoshiro256(seed: Fixed())
        let xs = (0..<64).map { _ in a.next() }
        XCTAssertEqual(xs, (0..<64).map { _ in b.next() })
        XCTAssertEqual(Set(xs).count, 64)
        let ones = xs.reduce(0) { $0 + $1.nonzeroBitCount }
        XCTAssertTrue((64 * 32 - 300...64 * 32 + 300).contains(ones), "\(ones) set bits")
    }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

final class SpanExportTracerSamplerTests: XCTestCase {
    func testANonParentBasedSamplerDecidesUnderACallersTraceToo() throws {
        let caller = ExportSpanContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: nil)!
        let off = SpanExportTracer(queue: SpanExportQueue(), sampler: try XCTUnwrap(TraceSampler(name: "always_off")))
        XCTAssertFalse(off.childContext(of: caller).sampled, "always_off records nothing, even a caller's sampled trace")
        var unsampled = caller
        unsampled.sampled = false
        let on = SpanExportTracer(queue: SpanExportQueue(), sampler: try XCTUnwrap(TraceSampler(name: "always_on")))
        XCTAssertTrue(on.childContext(of: unsampled).sampled, "always_on records a caller's unsampled trace")
    }
}
