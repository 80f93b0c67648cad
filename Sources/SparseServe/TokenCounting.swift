import SparseModels

/// The BERT encoder counts tokens with its own tokenizer, truncation included, as `usage` reports.
extension BertEncoderModel: TokenCountingModel {
    public func tokenCount(_ text: String) -> Int {
        encode(texts: [text]).first?.ids.count ?? 0
    }
}
