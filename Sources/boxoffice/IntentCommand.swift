import ArgumentParser
import BoxofficeStore
import Foundation
import Logging

struct IntentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intent",
        abstract: "Inspect an intent, and confirm, release or cancel it (what the API's POST /intents/{id}/… do).",
        discussion: """
            A hold (an event with --hold-seconds) is confirmed when its payment succeeded, released when its buyer gives up;
            a confirmed order is cancelled when it is refunded. Each is idempotent: repeating one that happened prints the
            status again and exits 0. An impossible one (confirm an expired hold, cancel a held one…) changes nothing, names
            the reason (the API's 409 code) and exits 1. Returned seats go back into the sale through the workers.
            """,
        subcommands: [Show.self, Confirm.self, Release.self, Cancel.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an intent's status.")
        @Argument(help: "Intent id (a UUID).") var id: String
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "boxoffice.intent")
            let id = try IntentCommand.parse(self.id)
            guard let status = try await withStore(try database.configuration(), logger: logger, { try await $0.status(of: id) }) else {
                throw CommandError("there is no intent \(id.uuidString.lowercased())")
            }
            print(IntentCommand.line(status))
        }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Confirm a hold (held → confirmed), before its expires_at.")
        @Argument(help: "Intent id (a UUID).") var id: String
        @Option(help: "The payment's id, kept on the order (1–\(Transition.noteLengthMax) characters).") var paymentReference: String?
        @Option(help: "Refuse unless the intent is this customer's.") var customer: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            try await IntentCommand.make(.confirm(paymentReference: paymentReference), id, customer, database, logging)
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release a hold (held → released): its seats go back into the sale.")
        @Argument(help: "Intent id (a UUID).") var id: String
        @Option(help: "Refuse unless the intent is this customer's.") var customer: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws { try await IntentCommand.make(.release, id, customer, database, logging) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a confirmed order (confirmed → cancelled; refund it yourself): its seats go back into the sale.")
        @Argument(help: "Intent id (a UUID).") var id: String
        @Option(help: "Why, kept on the order (1–\(Transition.noteLengthMax) characters).") var reason: String?
        @Option(help: "Refuse unless the intent is this customer's.") var customer: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws { try await IntentCommand.make(.cancel(reason: reason), id, customer, database, logging) }
    }

    static func parse(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw ValidationError("an intent id is a UUID, got \(text.prefix(40))") }
        return id
    }

    static func make(_ transition: Transition, _ id: String, _ customer: String?, _ database: DatabaseOptions, _ logging: LoggingOptions) async throws
    {
        let id = try parse(id)
        for note in [transition.paymentReference, transition.cancelReason].compactMap({ $0 })
        where note.isEmpty || note.count > Transition.noteLengthMax {
            throw ValidationError("a payment reference or reason holds 1 to \(Transition.noteLengthMax) characters")
        }
        let logger = logging.bootstrap(label: "boxoffice.intent")
        let result = try await withStore(try database.configuration(), logger: logger) {
            try await $0.transition(transition, of: id, customer: customer)
        }
        switch result {
        case nil:
            throw CommandError("there is no intent \(id.uuidString.lowercased())")
        case .done(let status)?:
            print(line(status))
        case .refused(let status, let pastExpiry)?:
            let refusal = TransitionRefusal(status, pastExpiry: pastExpiry)
            throw CommandError("\(refusal.code): \(refusal.message)")
        case .paymentReferenceDiffers(let status)?:
            throw CommandError("payment_reference_differs: confirmed with payment reference \(status.paymentReference ?? "none"), not this one")
        case .anotherCustomer?:
            throw CommandError("customer_mismatch: the intent is not customer \(customer ?? "")'s")
        }
    }

    /// One line: id, status, quantity, seats, expiry, payment reference, reasons.
    static func line(_ status: IntentStatus) -> String {
        var parts = [
            "intent \(status.publicID.uuidString.lowercased())", "event \(status.eventID)", status.word.rawValue, "quantity \(status.quantity)",
        ]
        switch status.state {
        case .pending(let ahead): parts.append("queue position \(ahead + 1)")
        case .decided(.confirmed(_, let seats)) where !seats.isEmpty && status.word.isLive:
            parts.append("seats \(seats.map(\.description).joined(separator: ","))")
        case .decided(.rejected(let reason)): parts.append("reason \(reason.rawValue)")
        default: break
        }
        if let expiresAt = status.expiresAt { parts.append("expires_at \(expiresAt.formatted(.iso8601))") }
        if let reference = status.paymentReference { parts.append("payment_reference \(reference)") }
        if let reason = status.cancelReason { parts.append("cancel_reason \(reason)") }
        return parts.joined(separator: ", ")
    }
}

extension Transition {
    var paymentReference: String? {
        if case .confirm(let reference) = self { return reference }
        return nil
    }

    var cancelReason: String? {
        if case .cancel(let reason) = self { return reason }
        return nil
    }
}
