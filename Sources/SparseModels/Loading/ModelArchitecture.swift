/// The architectures a manifest can name, each with its own loader.
public enum ModelArchitecture: String, Sendable, CaseIterable, Codable {
    case mlp
    case sequential
    case identity
    case bertEncoder = "bert-encoder"
}
