#if !FUZZING
import Foundation

/// Replay mode (the normal build): runs every file of `Fuzz/corpus/<target>/` through its target
/// and reports how many passed; a crash stops the process like it would the fuzzer. The test suite
/// runs this over the committed seed corpora and every crash reproducer saved there.
@main
struct Replay {
    static func main() {
        let root = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fuzz/corpus"
        var total = 0
        for name in FuzzTargets.all.keys.sorted() {
            let folder = URL(fileURLWithPath: root).appendingPathComponent(name)
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
            for file in files {
                guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path) else { continue }
                FuzzTargets.all[name]!(Array(data))
                total += 1
            }
            print("\(name): \(files.count) inputs replayed")
        }
        guard total > 0 else {
            print("no corpus under \(root)")
            exit(1)
        }
    }
}
#endif
