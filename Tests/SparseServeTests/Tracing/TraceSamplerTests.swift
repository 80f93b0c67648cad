import XCTest
@testable import SparseServe

final class TraceSamplerTests: XCTestCase {
    private func kept(_ sampler: TraceSampler, parentSampled: Bool?, traces: Int = 4000) -> Int {
        var ids = Xoshiro256(seed: SystemRandomNumberGenerator())
        return (0..<traces).filter { _ in sampler.samples(traceLow: ids.next(), parentSampled: parentSampled) }.count
    }

    func testEachSamplerDecidesAsOpenTelemetrySpecifies() throws {
        let cases: [(String, Double, ClosedRange<Int>, ClosedRange<Int>, ClosedRange<Int>)] = [
            // name, ratio, kept of 4000 new traces, under a sampled parent, under an unsampled parent
            ("always_on", 0.1, 4000...4000, 4000...4000, 4000...4000),
            ("always_off", 0.9, 0...0, 0...0, 0...0),
            ("traceidratio", 0.25, 800...1200, 800...1200, 800...1200),
            ("parentbased_always_on", 0, 4000...4000, 4000...4000, 0...0),
            ("parentbased_always_off", 1, 0...0, 4000...4000, 0...0),
            ("parentbased_traceidratio", 0.25, 800...1200, 4000...4000, 0...0),
        ]
        for (name, ratio, new, underSampled, underUnsampled) in cases {
            let s = try XCTUnwrap(TraceSampler(name: name, ratio: ratio))
            XCTAssertTrue(new.contains(kept(s, parentSampled: nil)), name)
            XCTAssertTrue(underSampled.contains(kept(s, parentSampled: true)), name)
            XCTAssertTrue(underUnsampled.contains(kept(s, parentSampled: false)), name)
        }
    }

    func testTheRatioDecisionDependsOnTheTraceIDOnly() throws {
        let s = try XCTUnwrap(TraceSampler(name: "traceidratio", ratio: 0.5))
        XCTAssertTrue(s.samples(traceLow: 0, parentSampled: false))
        XCTAssertFalse(s.samples(traceLow: .max, parentSampled: true))
        XCTAssertEqual(s.samples(traceLow: 0x1234, parentSampled: nil), s.samples(traceLow: 0x1234, parentSampled: true))
    }

    func testUnknownNamesAndRatiosAreRefused() {
        XCTAssertNil(TraceSampler(name: "jaeger_remote"))
        XCTAssertNil(TraceSampler(name: "ALWAYS_ON"))
        XCTAssertNil(TraceSampler(name: "traceidratio", ratio: 1.5))
        XCTAssertEqual(TraceSampler(name: "always_on")?.description, "always_on")
        XCTAssertEqual(TraceSampler(name: "traceidratio", ratio: 0.5)?.description, "traceidratio 0.5")
    }
}
