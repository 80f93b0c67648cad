import Foundation
import SparseKernels
import SparseModels

/// Why a model cannot be recovery-trained (said before any training starts).
public struct RecoveryRefusal: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension ClassifierRecovery {
    /// The student (the compressed layers `builder` built from `manifest`) and the dense teacher
    /// (the source's weights) of an mlp classifier, as chains up to the logits. Refuses models
    /// it cannot train: other architectures, activations without a backward kernel, a softmax
    /// before the last layer, and plans that leave every layer dense (nothing to recover).
    static func chains(manifest: ModelManifest, builder: LinearLayerBuilder, source: SafeTensors) throws -> (student: TrainableChain, teacher: TrainableChain) {
        guard manifest.architecture == .mlp else {
            throw RecoveryRefusal("recovery training supports mlp and sequential classifiers and bert-encoders; this model is '\(manifest.architecture.rawValue)'")
        }
        var links: [(name: String, weight: String, bias: String?, activation: Activation)] = []
        for (i, layer) in manifest.layers.enumerated() {
            let name = layer.name ?? "layers[\(i)]"
            switch layer {
            case .linear(let spec):
                links.append((name, spec.weight, spec.bias, spec.activation))
            case .activation(let spec):
                guard let last = links.indices.last, links[last].activation == .none else {
                    throw RecoveryRefusal("layer '\(name)': an activation must follow a linear layer without one to be trained")
                }
                links[last].activation = spec.activation
            case .softmax:
                guard i == manifest.layers.count - 1 else { throw RecoveryRefusal("layer '\(name)': a softmax before the last layer cannot be trained") }
            default:
                throw RecoveryRefusal("layer '\(name)' of type '\(layer.type)' has no backward pass")
            }
        }
        if let bad = links.first(where: { !TrainingKernels.hasBackward($0.activation) }) {
            throw RecoveryRefusal("layer '\(bad.name)': activation '\(bad.activation.rawValue)' has no backward kernel (none, relu and gelu do)")
        }
        let built = try compressedLayers(builder)
        var student: [TrainableChain.Stage] = [], teacher: [TrainableChain.Stage] = []
        for link in links {
            guard let layer = built[link.name] else { throw RecoveryRefusal("layer '\(link.name)' was not built") }
            student.append(.init(layer: try TrainableLinear(layer.packed), activation: link.activation))
            let (out, inp) = (layer.packed.outputFeatures, layer.packed.inputFeatures)
            let dense = PackedLayer(outputFeatures: out, inputFeatures: inp, form: .dense(weight: try source.tensor(named: link.weight, shape: [out, inp])),
                                    bias: try link.bias.map { try source.tensor(named: $0, shape: [out]) })
            teacher.append(.init(layer: try TrainableLinear(dense), activation: link.activation))
        }
        return (TrainableChain(student), TrainableChain(teacher))
    }
}

/// The result of `ClassifierRecovery.recover`: each trained layer in its original stored form, by
/// layer name, and the run's report.
public struct RecoveredLayers: Sendable {
    public var layers: [String: PackedLayer]
    /// Other trained tensors by name (an encoder's LayerNorm gains and biases), stored in place of the source's.
    public var tensors: [String: [Float]] = [:]
    public var report: RecoveryReport
}

extension ClassifierRecovery {
    /// The layers `builder` built, by name; refuses a compression that leaves every layer dense.
    static func compressedLayers(_ builder: LinearLayerBuilder) throws -> [String: BuiltLinearLayer] {
        let built = Dictionary(builder.built.map { ($0.name, $0.layer) }, uniquingKeysWith: { a, _ in a })
        guard built.values.contains(where: { $0.packed.method != "dense" || $0.packed.layout != .dense }) else {
            throw RecoveryRefusal("nothing to recover: the compression leaves every layer dense")
        }
        return built
    }

    /// Fine-tunes the layers `builder` compressed from the dense mlp or sequential classifier in `directory` against that
    /// dense model on the labelled samples in `training`, measures accuracy on `heldOut` (dense,
    /// one-shot and recovered), and returns the trained layers in their stored forms.
    public static func recover(directory: String, builder: LinearLayerBuilder, training: String, heldOut: String?,
                               options: RecoveryOptions, progress: (String) -> Void,
                               shouldStop: () -> Bool) throws -> RecoveredLayers {
        let manifest = try ModelManifest.load(path: ModelLoader.path(directory, ModelLoader.manifestFileName))
        let source = try SafeTensors(contentsOf: ModelLoader.path(directory, ModelLoader.weightsFileName))
        let parts: (student: any TrainableClassifier, teacher: any TrainableClassifier, names: [String], channels: Int)
        if manifest.architecture == .sequential {
            let models = try TrainableSequence.models(manifest: manifest, builder: builder, source: source)
            parts = (models.student, models.teacher, models.student.names, models.student.inputChannels)
        } else {
            let mlp = try Self.chains(manifest: manifest, builder: builder, source: source)
            parts = (mlp.student, mlp.teacher, builder.built.map(\.name), 1)
        }
        let (student, teacher, names, channels) = parts
        func samples(_ path: String) throws -> LabelledSamples {
            try LabelledSamples(path: path, features: student.inputFeatures, classes: student.outputFeatures, channels: channels)
        }
        let data = try samples(training)
        let held = try heldOut.map(samples)
        let run = ClassifierRecovery(student: student, teacher: teacher, data: data, options: options)
        let report = try run.run(heldOut: held, progress: progress, shouldStop: shouldStop)
        var layers: [String: PackedLayer] = [:]
        for (name, layer) in zip(names, student.layers) { layers[name] = try layer.repacked() }
        return RecoveredLayers(layers: layers, report: report)
    }
}
