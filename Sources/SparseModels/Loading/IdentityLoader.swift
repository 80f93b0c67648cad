/// Builds an `IdentityModel` from its manifest alone (it has no weights).
enum IdentityLoader {
    static func open(_ source: ModelSource) throws -> IdentityModel {
        do {
            return try IdentityModel(inputs: source.manifest.inputs, outputs: source.manifest.outputs)
        } catch let error as InvalidInputError {
            throw source.fail(error.description)
        }
    }
}
