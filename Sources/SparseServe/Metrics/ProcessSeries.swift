import CoreMetrics
import Foundation

/// The standard `process_*` metrics, read from /proc (Linux) at every scrape; zero where unavailable.
final class ProcessSeries: @unchecked Sendable {
    private let memory: Gauge, descriptors: Gauge
    private let cpu: FloatingPointCounter
    private let lock = NSLock()
    private var cpuReported = 0.0

    init(factory: any MetricsFactory) {
        Gauge(label: MetricCatalog.processStart, factory: factory).record(Date().timeIntervalSince1970)
        memory = Gauge(label: MetricCatalog.processMemory, factory: factory)
        descriptors = Gauge(label: MetricCatalog.processFDs, factory: factory)
        cpu = FloatingPointCounter(label: MetricCatalog.processCPU, factory: factory)
        refresh()
    }

    /// Sets the gauges, and advances the CPU counter by the time used since the last scrape.
    func refresh() {
        memory.record(Self.residentBytes())
        descriptors.record(Self.openFileDescriptors())
        let now = Self.cpuSeconds()
        lock.lock()
        let delta = now - cpuReported
        if delta > 0 { cpuReported = now }
        lock.unlock()
        if delta > 0 { cpu.increment(by: delta) }
    }

    static func residentBytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func openFileDescriptors() -> Double {
        Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }
}
