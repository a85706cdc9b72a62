import Foundation
import PackagePlugin

/// Embeds files into the target that uses this plugin, as `enum Embedded { static let files }`:
/// - BoxofficeStore: every `db/migrations/*.sql` (the one source of truth of the schema), by name;
/// - BoxofficeAPI: `Resources/openapi.json` and `Resources/dashboard.html`.
/// The files are the command's inputs, so editing or adding one rebuilds the target.
@main
struct EmbedFiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let inputs: [URL]
        switch target.name {
        case "BoxofficeStore":
            let folder = context.package.directoryURL.appending(path: "db/migrations")
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
            inputs = names.map { folder.appending(path: $0) }
        case "BoxofficeAPI":
            inputs = ["openapi.json", "dashboard.html"].map { context.package.directoryURL.appending(path: "Sources/BoxofficeAPI/Resources/\($0)") }
        default:
            Diagnostics.error("EmbedFiles knows no files for target \(target.name)")
            return []
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "Embedded.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) file(s) in \(target.name)",
                executable: try context.tool(named: "boxoffice-embed").url,
                arguments: [output.path, "Embedded"] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
