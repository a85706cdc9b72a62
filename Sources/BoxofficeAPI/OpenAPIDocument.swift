import NIOCore

/// The OpenAPI 3 description of this API (`Resources/openapi.json`, compiled in by the EmbedFiles
/// plugin), served at `/openapi.json`.
enum OpenAPIDocument {
    static let bytes: ByteBuffer = {
        guard let document = Embedded.files.first(where: { $0.name == "openapi.json" }) else {
            preconditionFailure("openapi.json was not embedded in BoxofficeAPI; the package build is broken")
        }
        return ByteBuffer(string: document.text)
    }()
}
