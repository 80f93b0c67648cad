import SparseKernels

/// Samples a model runs during a layer-by-layer pass: token ids per text (text encoders) or rows
/// of features (MLPs).
public enum CalibrationSamples: Sendable {
    case tokens([[Int32]])
    case rows(Matrix)
}

/// One stage of a layer-by-layer pass: the linear layers that read the same inputs, and those
/// inputs for every calibration row (the model's own, after the layers already replaced; and,
/// when tracked, the dense model's inputs to the same layers).
public struct CalibrationStage {
    public struct Layer: Sendable {
        /// The name compression plans match (e.g. "encoder.layer.0.attention.self.query", "fc1").
        public var name: String
        /// The layer's weight (`[outputs, features]`) and bias tensors in the model's weights.
        public var weight: String
        public var bias: String?
        public var outputs: Int
    }

    public var layers: [Layer]
    /// rows × features, row-major.
    public var inputs: UnsafePointer<Float>
    public var denseInputs: UnsafePointer<Float>?
    public var rows: Int
    public var features: Int
}

/// A model that can run calibration samples stage by stage, letting the caller replace each
/// stage's layers before they run (`replace` returns one operator per layer of the stage, nil to
/// keep it). Later stages then see the replaced layers' outputs: this is how data-aware
/// compression works on the compressed model's own activations. With `trackDense`, the dense
/// model runs beside it and every stage also gets the dense inputs.
public protocol LayerwiseCalibratable: InferenceModel {
    func runCalibration(_ samples: CalibrationSamples, trackDense: Bool,
                        replace: (CalibrationStage) throws -> [(any LinearOperator)?]) throws
}
