import SparseModels

/// Loads a model directory into a runnable model, choosing the implementation by the manifest's
/// architecture.
public enum ModelRepository {
    public static func load(directory: String) throws -> any InferenceModel {
        try ModelLoader.load(directory: directory)
    }
}
