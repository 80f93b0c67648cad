import Foundation
import SparseModels

/// `--model-dir`: serving a folder of models without writing a config, as KServe's storage
/// initializer leaves one in `/mnt/models`.
///
/// The folder is read in this order:
/// 1. `sparse-serve.json` in it is the config (relative model paths resolve against the folder);
/// 2. else, if the folder holds `model.json`, it is one model, served under `name` (default: the
///    folder's own name);
/// 3. else every subfolder holding `model.json` is a model named after the subfolder.
///
/// `name` matters only in case 2, so a KServe runtime can always pass the InferenceService's name.
///
/// A folder that does not exist, cannot be read or holds no model is an error naming its path:
/// the server stops at start rather than run without a model.
public enum ModelDirectory {
    /// The config file a model folder may carry for server and per-endpoint settings.
    public static let configFileName = "sparse-serve.json"

    /// A folder that cannot be served, with its path and why.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "--model-dir '\(path)': \(reason)" }
    }

    /// The service config for the folder at `path` (see the type's rules); `name` names the model
    /// when the folder itself is one.
    public static func config(path: String, name: String? = nil) throws -> ServiceConfig {
        let folder = URL(fileURLWithPath: path).standardizedFileURL.path
        try checkReadable(folder)
        let configPath = ModelLoader.path(folder, configFileName)
        if FileManager.default.fileExists(atPath: configPath) { return try ServiceConfig.load(path: configPath) }
        var config = ServiceConfig()
        config.baseDirectory = folder
        config.endpoints = try endpoints(in: folder, name: name)
        return config
    }

    /// One endpoint per model in `folder` (rules 2 and 3), with default settings.
    public static func endpoints(in folder: String, name: String? = nil) throws -> [EndpointConfig] {
        if holdsModel(folder) {
            let endpoint = name ?? URL(fileURLWithPath: folder).lastPathComponent
            guard ServiceConfig.isValidName(endpoint) else {
                throw Failure(path: folder, reason: "'\(endpoint)' cannot name an endpoint (1-128 letters, digits, '-', '_', '.'): pass --model-name")
            }
            return [EndpointConfig(name: endpoint, modelPath: folder)]
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw Failure(path: folder, reason: "cannot list the folder (\(error.localizedDescription))")
        }
        let models = entries.filter { !$0.hasPrefix(".") }.sorted().filter { holdsModel(ModelLoader.path(folder, $0)) }
        guard !models.isEmpty else {
            throw Failure(path: folder, reason: "holds no model: expected \(configFileName), or \(ModelLoader.manifestFileName) in the folder or in its subfolders")
        }
        return try models.map { entry in
            guard ServiceConfig.isValidName(entry) else {
                throw Failure(path: ModelLoader.path(folder, entry), reason: "the folder name '\(entry)' cannot name an endpoint (1-128 letters, digits, '-', '_', '.')")
            }
            return EndpointConfig(name: entry, modelPath: ModelLoader.path(folder, entry))
        }
    }

    /// Whether `folder` holds a model manifest.
    static func holdsModel(_ folder: String) -> Bool {
        var isDirectory: ObjCBool = false
        let manifest = ModelLoader.path(folder, ModelLoader.manifestFileName)
        return FileManager.default.fileExists(atPath: manifest, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    private static func checkReadable(_ folder: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw Failure(path: folder, reason: "does not exist")
        }
        guard isDirectory.boolValue else { throw Failure(path: folder, reason: "is not a folder") }
        guard access(folder, R_OK | X_OK) == 0 else { throw Failure(path: folder, reason: "cannot be read (permission denied)") }
    }
}
