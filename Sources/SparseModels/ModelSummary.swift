/// Sizes of a loaded model, layer by layer (for `inspect`, metadata and compression reports).
public struct ModelSummary: Sendable, Equatable, Codable {
    /// One layer: its shape, parameters and the bytes its weights occupy in memory.
    public struct Layer: Sendable, Equatable, Codable {
        public var name: String
        public var type: String
        public var inputFeatures: Int
        public var outputFeatures: Int
        public var activation: String?
        public var parameterCount: Int
        public var byteCount: Int
        /// Operator storage ("dense", "nm 2:4", "csr", …); nil for layers without weights.
        public var storage: String?
        /// Stored over dense-equivalent parameters.
        public var density: Double?
        /// ‖W − Ŵ‖ / ‖W‖ of the compressed weight (0 for dense).
        public var relativeError: Double?

        public init(name: String, type: String, inputFeatures: Int, outputFeatures: Int, activation: String?,
                    parameterCount: Int, byteCount: Int) {
            self.name = name
            self.type = type
            self.inputFeatures = inputFeatures
            self.outputFeatures = outputFeatures
            self.activation = activation
            self.parameterCount = parameterCount
            self.byteCount = byteCount
        }
    }

    public var architecture: String
    public var name: String?
    public var layers: [Layer]

    public init(architecture: String, name: String?, layers: [Layer]) {
        self.architecture = architecture
        self.name = name
        self.layers = layers
    }

    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }
    /// Stored parameters over those of the dense layers (1 for a dense model).
    public var density: Double {
        let dense = layers.reduce(0.0) { $0 + (($1.density ?? 0) > 0 ? Double($1.parameterCount) / $1.density! : 0) }
        return dense > 0 ? Double(parameterCount) / dense : 1
    }
    public var byteCount: Int { layers.reduce(0) { $0 + $1.byteCount } }
}

/// A model that can describe its layers.
public protocol SummarizedModel {
    var summary: ModelSummary { get }
}

extension MLPModel: SummarizedModel {}

extension IdentityModel: SummarizedModel {
    public var summary: ModelSummary { ModelSummary(architecture: architecture, name: nil, layers: []) }
}
