import BoxofficeStore
import Foundation
import NIOCore

/// Transition requests (`POST /intents/{id}/confirm|release|cancel`) checked without a database: the
/// optional JSON body in, the transition and the customer it must belong to out, or an ``APIError``.
enum TransitionValidation {
    /// What each transition's body may hold. `customer`, when sent, must be the intent's own.
    static let confirmFields: Set<String> = ["customer", "payment_reference"]
    static let releaseFields: Set<String> = ["customer"]
    static let cancelFields: Set<String> = ["customer", "reason"]

    enum Kind: String, CaseIterable {
        case confirm
        case release
        case cancel

        var fields: Set<String> {
            switch self {
            case .confirm: confirmFields
            case .release: releaseFields
            case .cancel: cancelFields
            }
        }
    }

    /// The transition a body asks for. An empty body (or none) asks for it with nothing more.
    static func transition(_ kind: Kind, body: ByteBuffer, customerLengthMax: Int) throws -> (Transition, customer: String?) {
        let object: JSONObject
        if body.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            object = JSONObject(fields: [:])
        } else {
            let value = try JSONValue.parse(body, what: "the request body")
            guard case .object = value else {
                throw APIError(.badRequest, "malformed_json", "the request body must be a JSON object (or empty), got \(value.typeName)")
            }
            object = try JSONObject(value, allowed: kind.fields)
        }
        let customer = try object.string("customer", lengthMax: customerLengthMax, required: false)
        let noteMax = Transition.noteLengthMax
        switch kind {
        case .confirm:
            return (.confirm(paymentReference: try object.string("payment_reference", lengthMax: noteMax, required: false)), customer)
        case .release:
            return (.release, customer)
        case .cancel:
            return (.cancel(reason: try object.string("reason", lengthMax: noteMax, required: false)), customer)
        }
    }

    /// The 409 for a transition refused from where the intent stands: its code says why.
    static func refusal(_ status: IntentStatus, pastExpiry: Bool) -> APIError {
        let refusal = TransitionRefusal(status, pastExpiry: pastExpiry)
        return APIError(.conflict, refusal.code, refusal.message)
    }

    /// `?while=`: the status a long-poll waits to leave (`pending` when absent).
    static func waitWhile(_ text: String?) throws(APIError) -> IntentStatusWord {
        guard let text else { return .pending }
        guard let word = IntentStatusWord(rawValue: text), waitableStatuses.contains(word) else {
            throw APIError(
                .badRequest, "invalid_while",
                "while must be one of \(waitableStatuses.map(\.rawValue).joined(separator: ", ")): the status to wait to leave")
        }
        return word
    }

    /// The statuses a long-poll may wait to leave: the ones that can still change.
    static let waitableStatuses: [IntentStatusWord] = [.pending, .held, .confirmed]
}
