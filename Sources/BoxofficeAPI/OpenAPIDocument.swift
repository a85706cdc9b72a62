import Foundation
import NIOCore

/// The OpenAPI 3 description of this API, shipped as a resource and served at `/openapi.json`.
enum OpenAPIDocument {
    static let bytes: ByteBuffer = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
              let data = try? Data(contentsOf: url)
        else { preconditionFailure("openapi.json is missing from the BoxofficeAPI bundle; the package build is broken") }
        return ByteBuffer(bytes: data)
    }()
}
