/// How data-aware compression runs: the compression JSON's `"calibration"` (a path, or an
/// object with `path` and `samples`), `"saliency"`, `"refit"` and `"damping"`. The defaults are
/// the best measured (see README's quality table): second-order (OBS) saliency with compensation,
/// then a least-squares refit of the kept weights and biases to the dense layer's outputs.
public struct CalibrationOptions: Sendable, Equatable, CustomStringConvertible {
    /// How weights are scored for pruning.
    public enum Saliency: String, Sendable, CaseIterable {
        /// |w|: the weights alone (no compensation).
        case magnitude
        /// |w|·‖x‖ per input (Wanda): how much each weight moves the outputs (no compensation).
        case activation
        /// w² / [H⁻¹]_jj with optimal-brain-surgeon compensation of the kept weights (SparseGPT).
        case hessian
    }

    /// How int8 weights (`compression.quantize`) are rounded when calibrating.
    public enum Rounding: String, Sendable, CaseIterable {
        /// Each weight to its nearest level (as without calibration).
        case nearest
        /// GPTQ: the OBS sweep with the quantizer in place of pruning, compensating each rounding
        /// error with the weights to its right (`SecondOrderPruning.quantize`).
        case gptq
    }

    /// The calibration file; nil means the model's own default (`calibration.txt` or
    /// `calibration.safetensors` in its folder).
    public var path: String?
    /// How many samples (texts or rows) of the file are used, from its start.
    public var samples: Int
    public var saliency: Saliency
    /// Refit kept weights and biases to the dense layer's outputs (N:M, transposable N:M, CSR).
    public var refit: Bool
    /// Hessian damping, as a fraction of its mean diagonal.
    public var damping: Double
    /// Most conjugate-gradient iterations of the refit.
    public var refitIterations: Int
    public var rounding: Rounding

    public init(path: String? = nil, samples: Int = 512, saliency: Saliency = .hessian, refit: Bool = true, damping: Double = 0.01,
                refitIterations: Int = 15, rounding: Rounding = .gptq) {
        self.path = path
        self.samples = samples
        self.saliency = saliency
        self.refit = refit
        self.damping = damping
        self.refitIterations = refitIterations
        self.rounding = rounding
    }

    /// Most samples a calibration run may use.
    public static let maximumSamples = 65_536

    public var description: String {
        "calibration \(path ?? "(model default)") samples=\(samples) saliency=\(saliency.rawValue) refit=\(refit) (\(refitIterations) iterations) damping=\(damping) rounding=\(rounding.rawValue)"
    }

    /// The default calibration file in a model folder, when there is one.
    public static func defaultFile(inModel directory: String) -> String? {
        for name in ["calibration.txt", "calibration.safetensors"] {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }
}

import Foundation
