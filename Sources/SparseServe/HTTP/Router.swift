import HTTPServer

/// Maps HTTP requests to handlers: the route table (`Route`), then the middleware steps (request
/// IDs, metrics, CORS, method check, API keys), then the protocol handler of the route. Health,
/// metadata and errors are answered on the calling I/O queue; inference runs on the compute queue.
public final class Router: Sendable {
    private let service: InferenceService
    private let middleware: [any Middleware]
    private let v2: V2Routes
    private let embeddings: OpenAIEmbeddingsRoute
    private let models: OpenAIModelsRoute
    private let tei: TEIRoutes

    public init(service: InferenceService) {
        let server = service.config.server, repository = service.repository
        let auth = APIKeyAuth(serverKeys: server.apiKeys, publicGroups: server.publicRoutes,
                              endpointKeys: { repository.entry($0)?.config.apiKeys ?? [] })
        self.service = service
        let authentication: any Middleware = service.tracing == nil ? auth : TracedStep(name: "authentication", step: auth)
        middleware = [RequestIDs(), RequestMetrics(metrics: service.metrics), CORS(config: server.cors), MethodCheck(), authentication]
        v2 = V2Routes(service: service)
        embeddings = OpenAIEmbeddingsRoute(service: service, auth: auth)
        models = OpenAIModelsRoute(service: service, auth: auth)
        tei = TEIRoutes(service: service)
    }

    /// Handles one request; `respond` is called exactly once, from any thread.
    public func handle(_ request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let service = self.service
        let parsed = Result { try Route(path: request.path, teiModel: { TEIRoutes.endpointName(service) }) }
        guard let tracing = service.tracing else { return route(request, parsed, respond) }
        tracing.trace(request, route: (try? parsed.get()) ?? nil, respond: respond) { self.route(request, parsed, $0) }
    }

    /// Runs the middleware steps, then the route's handler.
    private func route(_ request: HTTPRequest, _ parsed: Result<Route?, any Error>, _ respond: @escaping Responder) {
        let (reply, answer) = middleware.run(request, route: (try? parsed.get()) ?? nil, respond: respond)
        if let answer { return reply(answer) }
        do {
            guard let route = try parsed.get() else {
                return reply(.error(status: 404, "no route for \(request.method) \(request.path)"))
            }
            try dispatch(route, request, reply)
        } catch {
            reply(ResponseErrors.response(error))
        }
    }

    private func dispatch(_ route: Route, _ request: HTTPRequest, _ reply: @escaping Responder) throws {
        switch route {
        case .serverMetadata: reply(v2.serverMetadata())
        case .live: reply(v2.live())
        case .ready: reply(v2.ready())
        case let .modelMetadata(model, version): reply(try v2.modelMetadata(model, version))
        case let .modelReady(model, version): reply(try v2.modelReady(model, version))
        case let .infer(model, version):
            if let refusal = JSONTreeCharge.refusal(request) { return reply(refusal) }
            try v2.infer(model, version, request, reply)
        case let .modelStatistics(model, version): reply(try v2.statistics(model, version))
        case let .modelConfig(model, version): reply(try v2.modelConfig(model, version))
        case .repositoryIndex: reply(try v2.repositoryIndex(request.body))
        case .repositoryLoad(let model): try v2.repositoryLoad(model, request.body, reply)
        case .repositoryUnload(let model): reply(try v2.repositoryUnload(model))
        case .embeddings: embeddings.handle(request, reply)
        case .models: reply(models.list(request))
        case .model(let id): reply(models.retrieve(id))
        case let .tei(operation, model): tei.handle(operation, model: model, request, reply)
        case .openAPI: reply(OpenAPIDocument.response())
        case .metrics:
            var response = HTTPResponse(status: 200, body: service.metrics.exposition())
            response.headers.set(name: "Content-Type", value: PrometheusExposition.contentType)
            reply(response)
        }
    }
}
