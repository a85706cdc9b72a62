import Foundation

/// Closed-loop HTTP saturation with `wrk` (a C load generator), when it is installed.
///
/// The in-process AsyncHTTPClient generator spends more CPU per request than the API does on
/// `GET /health`, on the same 2 cores, so it measures itself as much as the server (16k/s health
/// with it against 45k/s with wrk, same server). wrk's share stays near 10%, so the health/intake
/// ratio it reports is the server's. `apt-get install wrk` provides it.
public struct Wrk: Sendable {
    public let executable: URL
    /// "wrk 4.1.0 …", as it prints itself.
    public let version: String

    /// wrk from PATH, or nil when it is not installed.
    public static func find() -> Wrk? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("wrk")
            guard FileManager.default.isExecutableFile(atPath: candidate.path) else { continue }
            let version = (try? Wrk.capture(candidate, ["--version"]))?.split(separator: "\n").first.map(String.init) ?? "wrk"
            return Wrk(executable: candidate, version: version.components(separatedBy: " Copyright").first ?? version)
        }
        return nil
    }

    public struct Result: Sendable {
        /// Responses with a 2xx status per second.
        public let rate: Double
        public let requests: Int
        /// Non-2xx responses plus socket errors.
        public let failures: Int
    }

    /// Runs `connections` connections on one wrk thread for `seconds`; `post` sends that body as JSON.
    public func run(url: String, connections: Int, seconds: Int, post body: String? = nil, token: String? = nil) throws -> Result {
        var arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "--timeout", "10s"]
        var script: URL?
        if let body {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-wrk-\(getpid())-\(UUID().uuidString).lua")
            let quoted = body.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            var lua = "wrk.method = 'POST'\nwrk.body = '\(quoted)'\nwrk.headers['Content-Type'] = 'application/json'\n"
            if let token { lua += "wrk.headers['Authorization'] = 'Bearer \(token)'\n" }
            try lua.write(to: file, atomically: true, encoding: .utf8)
            script = file
            arguments += ["-s", file.path]
        }
        defer { if let script { try? FileManager.default.removeItem(at: script) } }
        let output = try Wrk.capture(executable, arguments + [url])
        // "  376543 requests in 8.00s, 50.12MB read"
        let summary = output.split(separator: "\n").first { $0.contains(" requests in ") }?.split(separator: " ") ?? []
        guard summary.count >= 4, let requests = Double(summary[0]),
            let elapsed = Double(summary[3].trimmingCharacters(in: CharacterSet(charactersIn: "s,")))
        else {
            throw WrkError(output: output)
        }
        var failures = 0
        for line in output.split(separator: "\n") where line.contains("Non-2xx or 3xx responses:") || line.contains("Socket errors:") {
            let counts = line.split(separator: ":", maxSplits: 1).last ?? ""
            failures += counts.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.reduce(0, +)
        }
        return Result(rate: (requests - Double(failures)) / max(elapsed, 0.001), requests: Int(requests), failures: failures)
    }

    public struct WrkError: Error, CustomStringConvertible {
        public let output: String
        public var description: String { "wrk printed no request count: \(output.prefix(400))" }
    }

    static func capture(_ executable: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
