import SparseModels

/// A decoded, validated v2 inference request: every input matches the model's declared name,
/// datatype and shape.
public struct InferenceRequest: Sendable {
    public var id: String?
    public var inputs: [String: Tensor]
    /// Output names the client asked for, in its order; nil means all of the model's outputs.
    public var requestedOutputs: [String]?
    /// Outputs to return as binary tensor data (binary data extension); nil or empty = all JSON.
    public var binaryOutputs: Set<String>?
    /// Raw binary requests get every output in binary.
    public var allOutputsBinary = false
    /// `parameters.timeout` in microseconds: how long the request may wait in the queue.
    public var timeoutMicroseconds: Int?
    /// `parameters.truncate`: a text-encoding model may cut texts over its token limit (else 422).
    public var truncate = false
    /// Tokens the server produced for a text-encoding request (OpenAI `usage`).
    public var tokenCount: Int?
    /// Run this instead of the model's `infer` (batched only with the same variant).
    public var forward: ForwardVariant?

    public func wantsBinary(_ output: String) -> Bool {
        allOutputsBinary || (binaryOutputs?.contains(output) ?? false)
    }
}

/// An encoded response body; `jsonLength` is set when binary tensors follow the JSON header.
public struct EncodedResponse: Sendable {
    public var body: [UInt8]
    public var jsonLength: Int?
}
