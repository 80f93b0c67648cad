/// The `serve` flags that override `server` settings (`--host`, `--port`, `--threads`,
/// `--api-keys-file`). They are applied to the settings read at start and again to those re-read
/// on SIGHUP, so a reload compares like with like: an unchanged file is not "server settings
/// changed" just because flags were given.
public struct ServerOverrides: Sendable, Equatable {
    public var host: String?
    public var port: Int?
    public var threads: Int?
    /// Read again on every `applied(to:)`: its keys join `server.apiKeys`.
    public var apiKeysFile: String?

    public init(host: String? = nil, port: Int? = nil, threads: Int? = nil, apiKeysFile: String? = nil) {
        self.host = host
        self.port = port
        self.threads = threads
        self.apiKeysFile = apiKeysFile
    }

    /// `config` with the flags applied; an unreadable keys file throws, naming `--api-keys-file`.
    public func applied(to config: ServiceConfig) throws -> ServiceConfig {
        var config = config
        if let apiKeysFile { config.server.apiKeys += try SecuritySettings.readKeyFile(apiKeysFile, field: "--api-keys-file") }
        if let host { config.server.host = host }
        if let port { config.server.port = port }
        if let threads { config.server.threads = threads }
        return config
    }
}
