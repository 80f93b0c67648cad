import HTTPServer
import SparseJSON

/// The v2 model repository extension: index, load (with an optional new endpoint config) and unload.
extension V2Routes {
    func repositoryIndex(_ body: [UInt8]) throws -> HTTPResponse {
        let request = body.isEmpty ? JSON.object([]) : try JSON.parse(body)
        var index = repository.indexJSON()
        if let readyOnly = request["ready"]?.boolValue, readyOnly, let list = index.arrayValue {
            index = .array(list.filter { $0["state"]?.stringValue == ModelState.ready.rawValue })
        }
        return json(index)
    }

    func repositoryLoad(_ model: String, _ body: [UInt8], _ reply: @escaping Responder) throws {
        let config = try endpointConfig(forLoad: model, body: body)
        repository.load(model, config: config) { error in
            if let error = error as? ProtocolError {
                reply(.error(status: error.status, error.message))
            } else if let error {
                reply(.error(status: 400, "failed to load '\(model)': \(error)"))
            } else {
                reply(.json(status: 200, Array("{}".utf8)))
            }
        }
    }

    func repositoryUnload(_ model: String) throws -> HTTPResponse {
        guard service.config.server.security.admin.enabled else {
            throw ProtocolError(403, "the repository admin API (load/unload) is off; enable it with server.admin")
        }
        try repository.unload(model)
        return .json(status: 200, Array("{}".utf8))
    }

    /// The endpoint config for a repository `load` request: `parameters.config` (an endpoint object,
    /// or that object as a JSON string, as Triton clients send it) replaces the current config; without
    /// it the current config is reloaded. Relative model paths resolve against the config file's folder.
    func endpointConfig(forLoad name: String, body: [UInt8]) throws -> EndpointConfig? {
        guard service.config.server.security.admin.enabled else {
            throw ProtocolError(403, "the repository admin API (load/unload) is off; enable it with server.admin")
        }
        return try InferenceService.endpointConfig(forLoad: name, body: body, config: service.config,
                                                   currentModelPath: repository.entry(name)?.config.modelPath)
    }
}

extension InferenceService {
    /// The endpoint config of a load request to a server running `config`, whose endpoint `name`
    /// (if any) loads `currentModelPath`: the config file's validation, the admin model root
    /// (one error for every path outside it) and the server's ceilings.
    package static func endpointConfig(forLoad name: String, body: [UInt8], config: ServiceConfig,
                                       currentModelPath: String?) throws -> EndpointConfig? {
        guard !body.isEmpty else { return nil }
        let json = try JSON.parse(body)
        guard json.objectValue != nil else { throw ProtocolError(400, "load request body must be a JSON object") }
        guard var given = json["parameters"]?["config"] else { return nil }
        if let text = given.stringValue { given = try JSON.parse(text) }
        guard given.objectValue != nil else {
            throw ProtocolError(400, "parameters.config must be an endpoint config object (or that object as a JSON string)")
        }
        var merged = given.objectValue ?? []
        if !merged.contains(where: { $0.0 == "name" }) { merged.append(("name", .string(name))) }
        let admin = config.server.security.admin
        if let index = merged.firstIndex(where: { $0.0 == "model" }) {
            guard let path = merged[index].1.stringValue else { throw ProtocolError(400, "parameters.config.model must be a string") }
            merged[index].1 = .string(try admin.confine(path))
        }
        if let index = merged.firstIndex(where: { $0.0 == "artifact" }) {
            guard let path = merged[index].1.stringValue else { throw ProtocolError(400, "parameters.config.artifact must be a string") }
            merged[index].1 = .string(try admin.confine(path))
        }
        if !merged.contains(where: { $0.0 == "model" }), let current = currentModelPath {
            merged.append(("model", .string(current)))
        }
        if let index = merged.firstIndex(where: { $0.0 == "compression" }) {
            merged[index].1 = try confiningCalibration(merged[index].1, admin: admin)
        }
        let endpoint = try ServiceConfig.parseEndpoint(.object(merged), path: "parameters.config", baseDirectory: config.baseDirectory)
        guard endpoint.name == name else {
            throw ProtocolError(400, "parameters.config.name '\(endpoint.name)' does not match the model in the URL '\(name)'")
        }
        try admin.checkCeilings(endpoint, server: config.server)
        return endpoint
    }

    /// A posted compression block with its calibration file (`"calibration": PATH` or `{"path": PATH}`)
    /// confined to the admin model root like `model`; `"default"` (the model folder's own set) stays.
    private static func confiningCalibration(_ compression: JSON, admin: AdminSettings) throws -> JSON {
        guard var pairs = compression.objectValue, let index = pairs.firstIndex(where: { $0.0 == "calibration" }) else { return compression }
        let confine = { (path: String) in path == "default" ? path : try admin.confine(path, kind: "calibration file") }
        switch pairs[index].1 {
        case .string(let path):
            pairs[index].1 = .string(try confine(path))
        case .object(var inner):
            if let p = inner.firstIndex(where: { $0.0 == "path" }), let path = inner[p].1.stringValue {
                inner[p].1 = .string(try confine(path))
            }
            pairs[index].1 = .object(inner)
        default:
            break   // the config parser names the wrong type
        }
        return .object(pairs)
    }
}
