import ArgumentParser
import BoxofficeStore
import Foundation

/// The Idempotency-Key lifetime, one option for every command that needs it (`serve` treats an older
/// key as absent, `work` deletes it, `prune` never deletes younger outcomes): same name, same
/// environment variable, same default (``Retention/idempotencyKeyLifetimeDefault``).
struct RetentionOptions: ParsableArguments {
    static let environmentVariable = "BOXOFFICE_IDEMPOTENCY_KEY_LIFETIME_SECONDS"
    static let secondsRange = 1...31_536_000

    @Option(
        help: ArgumentHelp(
            "Seconds an Idempotency-Key replays its intent; an older key is accepted as new and deleted by the workers' sweep (also: \(Self.environmentVariable); default \(Int(Retention.idempotencyKeyLifetimeDefault.components.seconds)), 24 hours). Give every serve, work and prune the same value.",
            valueName: "seconds"))
    var idempotencyKeyLifetimeSeconds: Int?

    /// The flag, else the environment variable, else the default.
    func idempotencyKeyLifetime(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Duration {
        let seconds: Int
        if let flag = idempotencyKeyLifetimeSeconds {
            seconds = flag
        } else if let text = environment[Self.environmentVariable], !text.isEmpty {
            guard let value = Int(text) else { throw CommandError("\(Self.environmentVariable) must be a whole number of seconds, got \(text)") }
            seconds = value
        } else {
            return Retention.idempotencyKeyLifetimeDefault
        }
        guard Self.secondsRange.contains(seconds) else {
            throw CommandError("the Idempotency-Key lifetime must be 1...31536000 seconds (a year), got \(seconds)")
        }
        return .seconds(seconds)
    }
}
