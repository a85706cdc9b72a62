import AsyncHTTPClient
import EmbeddedPostgres
import Foundation
import NIOCore

/// Debian's `prometheus`, started by the test itself on loopback with a private config and data
/// directory, scraping the given targets every second.
final class PrometheusServer: @unchecked Sendable {
    /// Where Debian's package puts the binaries; PATH is searched too.
    static func find(_ name: String) -> String? {
        (["/usr/bin/\(name)"] + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" })
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    static let executable = find("prometheus")
    static let promtool = find("promtool")

    let process = Process()
    let directory: URL
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `targets`: job name → `host:port` scraped at `/metrics`.
    init(targets: [(job: String, target: String)]) throws {
        guard let executable = Self.executable else { throw CocoaError(.fileNoSuchFile) }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "boxoffice-prometheus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Loopback.freePort()
        // The scrape config deploy/README.md documents, with a 1 s interval so a test sees changes quickly.
        var configuration = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:

            """
        for (job, target) in targets {
            configuration += """
                  - job_name: \(job)
                    metrics_path: /metrics
                    static_configs:
                      - targets: ['\(target)']

                """
        }
        let file = directory.appendingPathComponent("prometheus.yml")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--config.file=\(file.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--storage.tsdb.retention.time=1h", "--log.level=warn",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while !PgBouncer.accepts(port: port) {
            guard process.isRunning, Date() < deadline else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                stop()
                throw PrometheusError(message: "prometheus did not start: \(text.suffix(2_000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    struct PrometheusError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The instant vector of `query` (`/api/v1/query`): each series' labels and value.
    func query(_ query: String, http: HTTPClient) async throws -> [(labels: [String: String], value: Double)] {
        var components = URLComponents(string: baseURL + "/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: query)]
        let encoded = components.percentEncodedQuery!.replacingOccurrences(of: "+", with: "%2B")
        let response = try await http.execute(HTTPClientRequest(url: baseURL + "/api/v1/query?" + encoded), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 22)
        guard let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            json["status"] as? String == "success", let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { throw PrometheusError(message: "query \(query) failed: \(String(buffer: body))") }
        return result.compactMap { series in
            guard let pair = series["value"] as? [Any], pair.count == 2, let text = pair[1] as? String, let value = Double(text) else { return nil }
            return (series["metric"] as? [String: String] ?? [:], value)
        }
    }

    /// `promtool check metrics` on `body`: nil when it passes, else what it said.
    static func check(metrics body: String) throws -> String? {
        guard let promtool else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(body.utf8))
        try input.fileHandleForWriting.close()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? nil : "exit \(process.terminationStatus): \(said)"
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
