import Foundation

/// The Hugging Face and sentence-transformers files of a bert-encoder folder besides
/// `model.json` and `model.safetensors`: `config.json`, and the files that give the encoder
/// options the manifest's `"encoder"` block leaves out.
enum BertEncoderFiles {
    /// Reads `config.json`; only the exact-erf `gelu` activation and absolute positions are supported.
    static func config(at path: String) throws -> BertConfig {
        func fail(_ message: String) -> ModelLoadError { ModelLoadError(file: path, message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("file does not exist or cannot be read") }
        guard let json = try? JSONDecoder().decode([String: LooseJSONValue].self, from: data) else { throw fail("not a JSON object") }
        func int(_ key: String) throws -> Int {
            guard let v = json[key]?.int, v > 0 else { throw fail("'\(key)' must be a positive integer") }
            return v
        }
        let config = BertConfig(hiddenSize: try int("hidden_size"), layers: try int("num_hidden_layers"),
                                heads: try int("num_attention_heads"), intermediateSize: try int("intermediate_size"),
                                layerNormEpsilon: 0, maxPositions: try int("max_position_embeddings"),
                                vocabularySize: try int("vocab_size"), typeVocabularySize: try int("type_vocab_size"))
        guard let eps = json["layer_norm_eps"]?.double, eps > 0 else { throw fail("'layer_norm_eps' must be a positive number") }
        guard config.hiddenSize % config.heads == 0 else {
            throw fail("hidden_size \(config.hiddenSize) is not a multiple of num_attention_heads \(config.heads)")
        }
        let act = json["hidden_act"]?.string ?? "gelu"
        guard act == "gelu" else { throw fail("hidden_act '\(act)' is not supported (only the exact erf 'gelu')") }
        let positions = json["position_embedding_type"]?.string ?? "absolute"
        guard positions == "absolute" else { throw fail("position_embedding_type '\(positions)' is not supported (only 'absolute')") }
        var result = config
        result.layerNormEpsilon = Float(eps)
        return result
    }

    /// Options from the manifest's block, completed from the sentence-transformers files in `directory`.
    static func options(_ block: BertEncoderOptions.Block?, directory: String, maxPositions: Int) -> BertEncoderOptions {
        func object(_ file: String) -> [String: LooseJSONValue]? { LooseJSON.object(at: ModelLoader.path(directory, file)) }
        var options = BertEncoderOptions(maxTokens: maxPositions)
        if let pooling = object("1_Pooling/config.json") {
            options.pooling = pooling["pooling_mode_cls_token"]?.bool == true ? .cls : .mean
        }
        let modules = LooseJSON.objects(at: ModelLoader.path(directory, "modules.json"))
        options.normalize = modules?.contains { $0["type"]?.string?.hasSuffix(".Normalize") == true } ?? false
        if let length = object("sentence_bert_config.json")?["max_seq_length"]?.int { options.maxTokens = length }
        if let lower = object("tokenizer_config.json")?["do_lower_case"]?.bool { options.lowercase = lower }
        return options.overridden(by: block)
    }
}
