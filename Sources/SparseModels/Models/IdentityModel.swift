/// A model that returns each input unchanged as the output at the same position. It has no
/// weights; it exists to check protocol handling of every datatype end to end (like the identity
/// models inference servers ship for conformance tests).
public final class IdentityModel: InferenceModel {
    public let architecture = "identity"
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]

    /// Output i mirrors input i; their datatypes and ranks must agree.
    public init(inputs: [TensorSpec], outputs: [TensorSpec]) throws {
        guard !inputs.isEmpty, inputs.count == outputs.count else {
            throw InvalidInputError("identity model needs as many outputs as inputs (got \(inputs.count) and \(outputs.count))")
        }
        for (i, o) in zip(inputs, outputs) where i.datatype != o.datatype || i.shape.count != o.shape.count {
            throw InvalidInputError("identity output '\(o.name)' must have the datatype and rank of input '\(i.name)'")
        }
        self.inputs = inputs
        self.outputs = outputs
    }

    public func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (i, o) in zip(self.inputs, outputs) {
            guard let t = inputs[i.name] else { throw InvalidInputError("missing input '\(i.name)'") }
            result[o.name] = t
        }
        return result
    }
}
