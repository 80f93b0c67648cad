import Foundation
import SparseKernels

/// A model folder with its manifest read, and how its layers are to be built: what every
/// architecture's loader is given.
struct ModelSource {
    let directory: String
    let manifestPath: String
    let manifest: ModelManifest
    let plan: CompressionPlan
    let compressor: (any LayerCompressor)?
    /// Time compressed layers against dense (off for `compress` and `inspect`).
    let timeLayers: Bool
    let pool: KernelPool

    /// Checks that `directory` exists and reads its `model.json`.
    init(directory: String, plan: CompressionPlan, compressor: (any LayerCompressor)?, timeLayers: Bool,
         pool: KernelPool = .shared) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelLoadError(file: directory, "model directory does not exist")
        }
        self.directory = directory
        manifestPath = ModelLoader.path(directory, ModelLoader.manifestFileName)
        manifest = try ModelManifest.load(path: manifestPath)
        self.plan = plan
        self.compressor = compressor
        self.timeLayers = timeLayers
        self.pool = pool
    }

    /// An error about the manifest.
    func fail(_ message: String) -> ModelLoadError { ModelLoadError(file: manifestPath, message) }

    /// The builder of the model's linear layers (`model.safetensors`: dense, or an artifact's).
    func linearLayers() throws -> LinearLayerBuilder {
        try LinearLayerBuilder(directory: directory, manifest: manifest, manifestPath: manifestPath, plan: plan,
                               compressor: compressor, timeLayers: timeLayers)
    }
}
