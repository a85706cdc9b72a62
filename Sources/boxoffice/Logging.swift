import ArgumentParser
import Foundation
import Logging

/// How logs look: readable lines in a terminal, one JSON object per line elsewhere (production).
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case auto, text, json
}

/// Writes each log record as one JSON object on stderr, for log shippers.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var record: [String: String] = [
            "ts": ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds]),
            "level": event.level.rawValue,
            "logger": label,
            "msg": "\(event.message)",
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { record[key] = "\(value)" }
        guard var line = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }
}

/// Options every command takes.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text (readable), json (one object per line), auto (text on a terminal, else json).")
    var logFormat: LogFormat = .auto

    /// Bootstraps swift-log once for this process and returns the command's logger.
    func bootstrap(label: String) -> Logger {
        let format: LogFormat = logFormat == .auto ? (isatty(STDERR_FILENO) == 1 ? .text : .json) : logFormat
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
