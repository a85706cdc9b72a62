import Foundation

/// Debian's `chromium`, headless, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// the browser reads commands from descriptor 3 and writes answers to descriptor 4, each a JSON message
/// ended by a NUL byte), so no WebSocket client is needed. Loopback only (no debugging port is opened),
/// a private profile directory, its own process group (killed whole at the end).
final class HeadlessChromium: @unchecked Sendable {
    static let executable = PrometheusServer.find("chromium")

    struct ChromiumError: Error, CustomStringConvertible {
        let description: String
    }

    let pid: pid_t
    let directory: URL
    private let commands: Int32
    private let answers: Int32
    /// Every protocol exchange runs here, off the cooperative pool (a read blocks, up to its timeout).
    private let queue = DispatchQueue(label: "boxoffice.chromium")
    private var nextID = 0
    private var pending: [UInt8] = []
    private var session: String?

    init(width: Int = 1280, height: Int = 800) throws {
        guard let executable = Self.executable else { throw ChromiumError(description: "chromium is not installed") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "boxoffice-chromium-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var toBrowser: [Int32] = [-1, -1]
        var fromBrowser: [Int32] = [-1, -1]
        guard pipe(&toBrowser) == 0, pipe(&fromBrowser) == 0 else { throw ChromiumError(description: "pipe() failed") }
        // Above 4, so the dup2 to 3 and 4 below can never overwrite one of them; close-on-exec in this process.
        let (childReads, childWrites) = (fcntl(toBrowser[0], F_DUPFD_CLOEXEC, 10), fcntl(fromBrowser[1], F_DUPFD_CLOEXEC, 10))
        close(toBrowser[0])
        close(fromBrowser[1])
        commands = toBrowser[1]
        answers = fromBrowser[0]
        _ = fcntl(commands, F_SETFD, FD_CLOEXEC)
        _ = fcntl(answers, F_SETFD, FD_CLOEXEC)
        defer {
            close(childReads)
            close(childWrites)
        }

        var arguments = [
            executable, "--headless=new", "--remote-debugging-pipe", "--user-data-dir=\(directory.path)",
            "--window-size=\(width),\(height)", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
            "--disable-features=Translate,MediaRouter", "--hide-scrollbars", "about:blank",
        ]
        // Chromium refuses to run as root with its sandbox (and the sandbox needs privileges a container lacks).
        if geteuid() == 0 { arguments.insert("--no-sandbox", at: 1) }
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        let log = directory.appendingPathComponent("chromium.log").path
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, childReads, 3)
        posix_spawn_file_actions_adddup2(&actions, childWrites, 4)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            close(commands)
            close(answers)
            throw ChromiumError(description: "could not run \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    /// What the browser logged, for a failure message.
    var log: String {
        ((try? String(contentsOf: directory.appendingPathComponent("chromium.log"), encoding: .utf8)) ?? "").suffix(3_000).description
    }

    /// Opens a page at `url` (a new tab, attached in flattened mode) at `width`×`height` CSS pixels.
    func open(_ url: String, width: Int = 1280, height: Int = 800) async throws {
        let target = try await call("Target.createTarget", ["url": "about:blank"], inSession: false)
        guard let targetID = target["targetId"] as? String else { throw ChromiumError(description: "no targetId: \(target)") }
        let attached = try await call("Target.attachToTarget", ["targetId": targetID, "flatten": true], inSession: false)
        guard let session = attached["sessionId"] as? String else { throw ChromiumError(description: "no sessionId: \(attached)") }
        queue.sync { self.session = session }
        _ = try await call(
            "Emulation.setDeviceMetricsOverride", ["width": width, "height": height, "deviceScaleFactor": 1, "mobile": false])
        let navigated = try await call("Page.navigate", ["url": url])
        if let failure = navigated["errorText"] as? String { throw ChromiumError(description: "navigation failed: \(failure)") }
    }

    /// The value of a JavaScript expression in the page (JSON-serializable values only).
    func evaluate(_ expression: String) async throws -> Any? {
        let answer = try await call("Runtime.evaluate", ["expression": expression, "returnByValue": true])
        if let exception = answer["exceptionDetails"] { throw ChromiumError(description: "\(expression) threw: \(exception)") }
        return (answer["result"] as? [String: Any])?["value"]
    }

    /// A PNG of the page's viewport.
    func screenshot() async throws -> Data {
        let answer = try await call("Page.captureScreenshot", ["format": "png"])
        guard let text = answer["data"] as? String, let data = Data(base64Encoded: text) else {
            throw ChromiumError(description: "no screenshot data")
        }
        return data
    }

    /// Kills the browser's process group (the browser and every helper it started) and removes its profile.
    func stop() {
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(commands)
        close(answers)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Sends one command (to the page's session unless `inSession` is false) and waits up to `timeout`
    /// for its answer's `result`; events in between are skipped.
    private func call(_ method: String, _ parameters: [String: Any], inSession: Bool = true, timeout: Double = 20) async throws -> [String: Any] {
        let encoded = try JSONSerialization.data(withJSONObject: parameters)
        let frame = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, any Error>) in
            queue.async {
                continuation.resume(with: Result { try self.exchange(method, encoded, inSession: inSession, timeout: timeout) })
            }
        }
        guard let answer = try JSONSerialization.jsonObject(with: frame) as? [String: Any] else { return [:] }
        if let error = answer["error"] { throw ChromiumError(description: "\(method) failed: \(error)") }
        return answer["result"] as? [String: Any] ?? [:]
    }

    /// Writes the command and reads until its answer, which it returns whole (a JSON object).
    private func exchange(_ method: String, _ parameters: Data, inSession: Bool, timeout: Double) throws -> Data {
        nextID += 1
        let id = nextID
        var head: [String: Any] = ["id": id, "method": method]
        if inSession, let session { head["sessionId"] = session }
        // {"id":…,"method":…[,"sessionId":…]} with ,"params":{…} spliced in before its closing brace.
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: head).dropLast())
        bytes += Array(#","params":"#.utf8) + parameters + [UInt8(ascii: "}"), 0]
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(commands, $0.baseAddress, $0.count) }
            guard count > 0 else { throw ChromiumError(description: "the browser's pipe closed (\(method))\n\(log)") }
            written += count
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while let end = pending.firstIndex(of: 0) {
                let frame = Data(pending[..<end])
                pending.removeSubrange(...end)
                guard let answer = try JSONSerialization.jsonObject(with: frame) as? [String: Any], answer["id"] as? Int == id else { continue }
                return frame
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw ChromiumError(description: "no answer to \(method) within \(timeout) s\n\(log)") }
            var descriptor = pollfd(fd: answers, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(left * 1_000) + 1) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            let count = read(answers, &buffer, buffer.count)
            guard count > 0 else { throw ChromiumError(description: "the browser exited (\(method))\n\(log)") }
            pending += buffer[..<count]
        }
    }
}
