import SparseJSON
import Testing
@testable import SparseServe

/// Served artifact metadata names files, never where they are on the server.
@Suite struct EndpointTests {
    @Test func absolutePathsInArtifactMetadataAreReducedToTheirFileNames() throws {
        let recorded = try JSON.parse(#"{"quality":{"source":"/srv/models/digits-mlp/test.safetensors","samples":450},"files":["/a/b/c.txt","relative/d.txt"],"note":"kept/as is","recovery":{"trainingFile":"models/digits-mlp/calibration.safetensors"}}"#)
        let served = Endpoint.withoutPaths(recorded)
        let text = String(decoding: JSONWriter.encode(served), as: UTF8.self)
        #expect(!text.contains("/srv") && !text.contains("/a/b"))
        #expect(served["quality"]?["source"]?.stringValue == "test.safetensors")
        #expect(served["files"]?.arrayValue?.compactMap(\.stringValue) == ["c.txt", "relative/d.txt"])
        #expect(served["note"]?.stringValue == "kept/as is")
        #expect(served["recovery"]?["trainingFile"]?.stringValue == "calibration.safetensors")
    }
}
