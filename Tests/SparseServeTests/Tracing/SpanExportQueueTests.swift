import Foundation
import XCTest
@testable import SparseServe

final class SpanExportQueueTests: XCTestCase {
    func span(_ i: Int) -> FinishedSpan {
        FinishedSpan(context: ExportSpanContext(traceHigh: 1, traceLow: 2, spanID: UInt64(i + 1), sampled: true, traceState: nil),
                     parentSpanID: 0, name: "s\(i)", kind: .internal, start: 0, end: 1)
    }

    func testAFullQueueDropsAndCountsAndBatchesAreBounded() {
        var settings = SpanExportQueue.Settings()
        (settings.maxQueueSize, settings.batchSize, settings.scheduleDelay) = (10, 4, 60)
        let queue = SpanExportQueue(settings: settings)
        for i in 0..<25 { queue.push(span(i)) }
        XCTAssertEqual(queue.count, 10)
        let first = queue.next()
        XCTAssertEqual(first.batch.spans.map(\.name), (0..<8).map { "s\($0)" }, "whole batches are taken at once, oldest first")
        XCTAssertEqual(first.batch.chunks(of: 4).map(\.spans), [4, 4], "and posted in batches of batchSize")
        XCTAssertEqual(queue.count, 2, "the two spans past the last whole batch stay queued")
        XCTAssertEqual(first.dropped, 15)
        XCTAssertFalse(first.closed)
        queue.recycle(first.batch)
        for i in 10..<12 { queue.push(span(i)) }
        let second = queue.next()
        XCTAssertEqual(second.dropped, 0, "drops are reported once")
        XCTAssertEqual(second.batch.spans.map(\.name), ["s8", "s9", "s10", "s11"], "a full batch wakes the exporter, the kept spans first")
        queue.recycle(second.batch)
        queue.push(span(5))
        queue.flushSoon()
        XCTAssertTrue(queue.next().batch === first.batch, "the buffers are reused, not reallocated")
        queue.close()
        queue.push(span(99))
        let last = queue.next()
        XCTAssertEqual(last.batch.spanCount, 0, "nothing was left")
        XCTAssertTrue(last.closed)
        XCTAssertEqual(last.dropped, 1, "a closed queue refuses spans")
    }

    func testAPartialBatchGoesAfterTheScheduleDelayOrAFlush() {
        var settings = SpanExportQueue.Settings()
        (settings.batchSize, settings.scheduleDelay) = (100, 0.2)
        let queue = SpanExportQueue(settings: settings)
        queue.push(span(0))
        let t = Date()
        XCTAssertEqual(queue.next().batch.spanCount, 1)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t), 0.15)
        settings.scheduleDelay = 60
        let slow = SpanExportQueue(settings: settings)
        slow.push(span(1))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) { slow.flushSoon() }
        let u = Date()
        XCTAssertEqual(slow.next().batch.spanCount, 1)
        XCTAssertLessThan(Date().timeIntervalSince(u), 30)
    }

    func testTheByteBudgetBoundsTheQueueToo() {
        var settings = SpanExportQueue.Settings()
        (settings.maxQueueSize, settings.batchSize, settings.scheduleDelay) = (200, 200, 60)  // 100 KiB of bytes at most
        let queue = SpanExportQueue(settings: settings)
        var big = span(0)
        big.attributes["payload"] = .string(String(repeating: "x", count: 1000))  // about 1.1 kB each
        for _ in 0..<150 { queue.push(big) }
        let (batch, dropped, _) = queue.next()  // half the byte budget woke it before a full batch
        XCTAssertLessThanOrEqual(batch.byteCount, settings.maxQueueBytes)
        XCTAssertEqual(batch.spanCount + dropped, 150)
        XCTAssertGreaterThan(dropped, 0, "spans beyond the byte budget are dropped and counted")
    }

    func testSettingsFromTheEnvironment() {
        let s = SpanExportQueue.Settings.from(environment: ["OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "128",
                                                            "OTEL_BSP_SCHEDULE_DELAY": "200"])
        XCTAssertEqual(s.maxQueueSize, 64)
        XCTAssertEqual(s.batchSize, 64, "a batch is never larger than the queue")
        XCTAssertEqual(s.scheduleDelay, 0.2)
        XCTAssertEqual(SpanExportQueue.Settings.from(environment: ["OTEL_BSP_MAX_QUEUE_SIZE": "x", "OTEL_BSP_SCHEDULE_DELAY": "-1"]),
                       SpanExportQueue.Settings())
    }

    func testARequestsSpansAreQueuedTogetherOrDroppedTogether() {
        var settings = SpanExportQueue.Settings()
        (settings.maxQueueSize, settings.batchSize, settings.scheduleDelay) = (10, 4, 60)
        let queue = SpanExportQueue(settings: settings)
        let three = (0..<3).flatMap { span($0).encoded }
        for _ in 0..<4 { three.withUnsafeBytes { queue.push($0, spans: 3) } }
        XCTAssertEqual(queue.count, 9, "the fourth request's three spans would pass the queue's 10: all three are dropped")
        queue.flushSoon()
        let (batch, dropped, _) = queue.next()  // (a flush: all that waits, the partial batch too)
        XCTAssertEqual(dropped, 3)
        XCTAssertEqual(batch.spans.map(\.name), ["s0", "s1", "s2", "s0", "s1", "s2", "s0", "s1", "s2"])
        XCTAssertEqual(batch.chunks(of: 4).map(\.spans), [4, 4, 1], "posts still split at span boundaries")
        queue.recycle(batch)
        let server = span(9)
        three.withUnsafeBytes { queue.push($0, spans: 3) { $0.span(server) } }
        XCTAssertEqual(queue.count, 4, "a request's children, then its server span encoded in place")
        for _ in 0..<2 { three.withUnsafeBytes { queue.push($0, spans: 3) { $0.span(server) } } }
        XCTAssertEqual(queue.count, 8, "the third request's 4 would pass 10: dropped")
        queue.push(UnsafeRawBufferPointer(start: nil, count: 0), spans: 0) { $0.span(server) }
        let (next, lost, _) = queue.next()
        XCTAssertEqual(next.spans.map(\.name), ["s0", "s1", "s2", "s9", "s0", "s1", "s2", "s9"], "two whole batches")
        XCTAssertEqual(lost, 4)
        queue.close()
        XCTAssertEqual(queue.next().batch.spans.map(\.name), ["s9"], "closing sends the partial rest")
    }

    func testAPartialRestIsKeptInOrderUntilABatchIsWhole() {
        var settings = SpanExportQueue.Settings()
        (settings.maxQueueSize, settings.batchSize, settings.scheduleDelay) = (100, 3, 60)
        let queue = SpanExportQueue(settings: settings)
        let sizes = [1, 40, 200, 7, 130, 2, 300]  // spans of other lengths, 1- and 2-byte length prefixes
        for (i, n) in sizes.enumerated() {
            var s = span(i)
            s.attributes["pad"] = .string(String(repeating: "x", count: n))
            queue.push(s)
        }
        let first = queue.next()
        XCTAssertEqual(first.batch.spans.map(\.name), (0..<6).map { "s\($0)" })
        queue.recycle(first.batch)
        queue.push(span(7))
        queue.push(span(8))
        let second = queue.next()
        XCTAssertEqual(second.batch.spans.map(\.name), ["s6", "s7", "s8"])
        XCTAssertEqual(second.batch.spans.first?.attributes["pad"], .string(String(repeating: "x", count: 300)), "moved bytes intact")
        XCTAssertEqual(queue.count, 0)
    }

    func testTheBatchBoundaryIsMarkedAsSpansArriveAndSplitsWithoutAWalk() {
        let batch = SpanBatch(capacity: 4096, batchSpans: 4)
        let three = (0..<3).flatMap { span($0).encoded }
        for _ in 0..<3 { three.withUnsafeBytes { XCTAssertTrue(batch.append($0, spans: 3)) } }
        let eight = (0..<3).flatMap { span($0).encoded } + (0..<3).flatMap { span($0).encoded } + (0..<2).flatMap { span($0).encoded }
        XCTAssertEqual(batch.marked.spans, 8, "the 8th span ends in the third run of three")
        XCTAssertEqual(batch.marked.bytes, eight.count)
        XCTAssertTrue(batch.append { $0.span(span(7)) })
        XCTAssertEqual(batch.marked.spans, 8, "10 spans: the last multiple of 4 is still the 8th")
        for i in 10..<12 { XCTAssertTrue(batch.append { $0.span(span(i)) }) }
        XCTAssertEqual(batch.marked.spans, 12, "one span encoded in place that makes 12")
        let rest = SpanBatch(capacity: 4096, batchSpans: 4)
        batch.moveSpans(after: 12, to: rest)
        XCTAssertEqual(rest.spanCount, 0)
        XCTAssertTrue(batch.append { $0.span(span(12)) })
        batch.moveSpans(after: 8, to: rest)
        XCTAssertEqual(batch.bytes.count, eight.count, "split at the 8th span (walked: the mark was the 12th)")
        XCTAssertEqual(batch.marked.spans, 0, "a mark past what is kept is dropped")
        XCTAssertEqual(rest.spans.map(\.name), ["s2", "s7", "s10", "s11", "s12"])
        XCTAssertEqual(rest.marked.spans, 4)
        XCTAssertEqual(batch.chunks(of: 8).map(\.spans), [8], "one post")
        batch.reset()
        XCTAssertEqual(batch.marked.spans, 0)
    }
}
