// Finding the server binaries, the postgres OS account, temp directories, quoting and log tails.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Discovery, temp dir, port

let notFoundMessage =
    "PostgreSQL server binaries not found: install them (apt-get install postgresql) or set PG_BINDIR, "
    + "or set DATABASE_URL to use your own server"

func hasInitdb(_ dir: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: dir + "/initdb")
}

func findBinDirectory() throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let dir = env["PG_BINDIR"], !dir.isEmpty {
        guard hasInitdb(dir) else {
            throw EmbeddedPostgresError("PG_BINDIR=\(dir) does not contain initdb. " + notFoundMessage)
        }
        return dir
    }
    if let pgConfig = which("pg_config"),
        let result = try? runProcess(pgConfig, ["--bindir"], cwd: nil, timeout: 10), result.status == 0
    {
        let dir = result.output.trimmed
        if !dir.isEmpty, hasInitdb(dir) { return dir }
    }
    let root = "/usr/lib/postgresql"
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
        .filter { hasInitdb(root + "/" + $0 + "/bin") }
        .sorted { versionKey($0).lexicographicallyPrecedes(versionKey($1)) }
    if let newest = versions.last { return root + "/" + newest + "/bin" }
    throw EmbeddedPostgresError(notFoundMessage)
}

func versionKey(_ name: String) -> [Int] {
    name.split(separator: ".").map { Int($0) ?? 0 }
}

func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") where !dir.isEmpty {
        let candidate = dir + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

var runningAsRoot: Bool { geteuid() == 0 }

func postgresAccount() throws -> (uid: uid_t, gid: gid_t) {
    guard let pw = getpwnam("postgres") else {
        throw EmbeddedPostgresError(
            "running as root but there is no 'postgres' OS user to run the server as "
                + "(PostgreSQL refuses to run as root); install postgresql or run as a non-root user")
    }
    return (pw.pointee.pw_uid, pw.pointee.pw_gid)
}

func makeTempDirectory() throws -> String {
    var template = Array("/tmp/boxoffice-pg-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else {
        throw EmbeddedPostgresError("mkdtemp /tmp/boxoffice-pg-XXXXXX failed: \(String(cString: strerror(errno)))")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    guard chmod(path, 0o700) == 0 else {
        rmdir(path)
        throw EmbeddedPostgresError("chmod 0700 \(path) failed: \(String(cString: strerror(errno)))")
    }
    if runningAsRoot {
        do {
            let account = try postgresAccount()
            guard chown(path, account.uid, account.gid) == 0 else {
                throw EmbeddedPostgresError("chown postgres \(path) failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            rmdir(path)
            throw error
        }
    }
    return path
}

func shellQuote(_ value: String) -> String {
    let safe = CharacterSet(
        charactersIn:
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=+@%")
    if !value.isEmpty, value.unicodeScalars.allSatisfy({ safe.contains($0) }) { return value }
    return "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

func logTail(_ path: String, lines: Int) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log at \(path))" }
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
}
