import HTTPServer

/// The OpenAPI 3.1 description served at `GET /openapi.yaml`: `openapi.yaml` beside this file
/// (the repository's top-level `openapi.yaml` links to it), embedded by SwiftPM at build time.
enum OpenAPIDocument {
    static let yaml: [UInt8] = PackageResources.openapi_yaml

    static func response() -> HTTPResponse {
        var response = HTTPResponse(status: 200, body: yaml)
        response.headers.set(name: "Content-Type", value: "application/yaml; charset=utf-8")
        return response
    }
}
