import Foundation
import HTTPServer
import SparseJSON

/// OpenAI's model listing, `GET /v1/models` and `GET /v1/models/{id}`: the loaded endpoints that
/// `/v1/embeddings` can serve (text in, FP32 `[-1, d]` out) as OpenAI list and model objects
/// (`id`, `object`, `created`, `owned_by`). The list holds only the endpoints the caller's key
/// opens; an unknown id, or one that is not a text-embedding endpoint, is a 404 in OpenAI's shape.
struct OpenAIModelsRoute: Sendable {
    let service: InferenceService
    let auth: APIKeyAuth

    /// No endpoint name is longer (config validation); longer ids are echoed cut to this.
    static let maxIDLength = 128

    func list(_ request: HTTPRequest) -> HTTPResponse {
        let header = request.headers["authorization"]
        let served = embeddingEndpoints().filter { auth.isAuthorized(header, model: $0.name) }
        return .json(status: 200, JSONWriter.encode(.object([
            ("object", .string("list")), ("data", .array(served.map(Self.object))),
        ])))
    }

    func retrieve(_ id: String) -> HTTPResponse {
        guard id.utf8.count <= Self.maxIDLength, let endpoint = embeddingEndpoints().first(where: { $0.name == id }) else {
            let shown = id.utf8.count <= Self.maxIDLength ? id : String(id.prefix(Self.maxIDLength)) + "…"
            return OpenAIEmbeddings.error(404, "unknown model '\(shown)': GET /v1/models lists the text-embedding endpoints")
        }
        return .json(status: 200, JSONWriter.encode(Self.object(endpoint)))
    }

    /// Loaded endpoints whose model has the text-embedding signature, in config order.
    private func embeddingEndpoints() -> [Endpoint] {
        service.endpoints.filter { (try? OpenAIEmbeddings.signature($0.model, name: $0.name)) != nil }
    }

    static func object(_ endpoint: Endpoint) -> JSON {
        let created = Int64(endpoint.loadedAt.timeIntervalSince1970)
        return .object([
            ("id", .string(endpoint.name)), ("object", .string("model")),
            ("created", .number(double: Double(created), integer: created)), ("owned_by", .string("sparse-serve")),
        ])
    }
}
