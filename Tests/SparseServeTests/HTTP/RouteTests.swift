import XCTest
@testable import SparseServe

final class RouteTests: XCTestCase {
    func testRoutes() throws {
        XCTAssertEqual(try Route(path: "/v2"), .serverMetadata)
        XCTAssertEqual(try Route(path: "/v2/"), .serverMetadata)
        XCTAssertEqual(try Route(path: "/v2/health/live"), .live)
        XCTAssertEqual(try Route(path: "/v2/health/ready"), .ready)
        XCTAssertEqual(try Route(path: "/v2/models/a%20b"), .modelMetadata(model: "a b", version: nil))
        XCTAssertEqual(try Route(path: "/v2/models/m/versions/3"), .modelMetadata(model: "m", version: "3"))
        XCTAssertEqual(try Route(path: "/v2/models/m/ready"), .modelReady(model: "m", version: nil))
        XCTAssertEqual(try Route(path: "/v2/models/m/versions/2/infer"), .infer(model: "m", version: "2"))
        XCTAssertEqual(try Route(path: "/v2/models/m/stats"), .modelStatistics(model: "m", version: nil))
        XCTAssertEqual(try Route(path: "/v2/models/stats"), .modelStatistics(model: nil, version: nil))
        XCTAssertEqual(try Route(path: "/metrics"), .metrics)
        XCTAssertNil(try Route(path: "/v2/models/m/other"))
        XCTAssertEqual(try Route(path: "/v1/models"), .models)
        XCTAssertEqual(try Route(path: "/v1/models/mini%2Flm"), .model(id: "mini/lm"))
        XCTAssertNil(try Route(path: "/v1/models/a/b"))
        XCTAssertNil(try Route(path: "/v2/health"))
        XCTAssertNil(try Route(path: "*"))
        XCTAssertThrowsError(try Route(path: "/v2/models/%zz"))
        // Edges of the byte-wise split: slashes, trailing slashes, non-ASCII names.
        XCTAssertNil(try Route(path: "/"))
        XCTAssertNil(try Route(path: "//metrics"))
        XCTAssertEqual(try Route(path: "/metrics/"), .metrics)
        XCTAssertNil(try Route(path: "/v2//models/m"))
        XCTAssertEqual(try Route(path: "/v2/models/é模型/infer"), .infer(model: "é模型", version: nil))
        XCTAssertNil(try Route(path: "/v2/models/m/versions/2/infer/x"))
        XCTAssertNil(try Route(path: "/v2/models/m/versions"))
        XCTAssertEqual(try Route(path: "/v2/repository/models/m/unload"), .repositoryUnload(model: "m"))
        XCTAssertNil(try Route(path: "/v2/repository/models/m/other"))
        XCTAssertEqual(try Route(path: "/v2/repository/index"), .repositoryIndex)
    }

    /// Every route that names an endpoint in its path checks that endpoint's keys (repository
    /// actions need an admin key); the switch in `Route.keyScope` has no default, so a new route
    /// cannot skip the choice, and this test pins the choice for each path.
    func testRoutesThatNameAModelUseItsKeys() throws {
        let endpointScoped = ["/v2/models/m", "/v2/models/m/versions/2", "/v2/models/m/ready", "/v2/models/m/infer",
                              "/v2/models/m/versions/2/infer", "/v2/models/m/stats", "/v2/models/m/config"]
        for path in endpointScoped {
            XCTAssertEqual(try Route(path: path)?.keyScope, .endpoint("m"), path)
        }
        for path in ["/v2/repository/models/m/load", "/v2/repository/models/m/unload"] {
            XCTAssertEqual(try Route(path: path)?.keyScope, .admin, path)
        }
        for path in ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/stats", "/metrics", "/openapi.yaml", "/v2/repository/index"] {
            XCTAssertEqual(try Route(path: path)?.keyScope, .server, path)
        }
        XCTAssertEqual(try Route(path: "/v1/embeddings")?.keyScope, .namedInBody)
        XCTAssertEqual(try Route(path: "/v1/models")?.keyScope, .namedInBody, "the handler lists what the key opens")
        XCTAssertEqual(try Route(path: "/v1/models/m")?.keyScope, .endpoint("m"))
        for operation in TEIOperation.allCases {
            XCTAssertEqual(try Route(path: "/" + operation.rawValue, teiModel: { "m" })?.keyScope, .endpoint("m"), operation.rawValue)
        }
    }

    /// The TEI routes exist only while `compat.tei` names an endpoint, and the model is asked for
    /// only on paths that could be TEI routes.
    func testTEIRoutes() throws {
        XCTAssertNil(try Route(path: "/embed"))
        XCTAssertNil(try Route(path: "/"))
        XCTAssertEqual(try Route(path: "/", teiModel: { "e" }), .tei(.root, model: "e"))
        XCTAssertEqual(try Route(path: "/embed_all/", teiModel: { "e" }), .tei(.embedAll, model: "e"))
        XCTAssertNil(try Route(path: "/embed/x", teiModel: { "e" }))
        XCTAssertEqual(try Route(path: "/v2/health/live", teiModel: { XCTFail("asked"); return "e" }), .live)
        XCTAssertEqual(try Route(path: "/health", teiModel: { "e" })?.group, .health)
        XCTAssertEqual(try Route(path: "/info", teiModel: { "e" })?.group, .metadata)
        XCTAssertEqual(try Route(path: "/tokenize", teiModel: { "e" })?.group, .protected)
        XCTAssertEqual(try Route(path: "/embed", teiModel: { "e" })?.allowedMethods, ["POST"])
        XCTAssertEqual(try Route(path: "/info", teiModel: { "e" })?.allowedMethods, ["GET", "HEAD"])
        XCTAssertEqual(try Route(path: "/similarity", teiModel: { "e" })?.errorShape, .tei)
        XCTAssertEqual(try Route(path: "/v1/models")?.errorShape, .openAI)
    }

    func testGroupsAndLabels() throws {
        XCTAssertEqual(try Route(path: "/v2/models/m/ready")?.group, .metadata, "a model's readiness names it")
        XCTAssertEqual(try Route(path: "/v2/health/ready")?.group, .health)
        XCTAssertEqual(try Route(path: "/v2/models/m/infer")?.group, .protected)
        XCTAssertEqual(try Route(path: "/v2/models/m/config")?.label, .metadata)
        XCTAssertFalse(RouteGroup.exemptible.contains(.protected))
        XCTAssertEqual(try Route(path: "/v2/repository/models/m/load")?.allowedMethods, ["POST"])
    }
}
