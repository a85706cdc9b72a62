import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging

struct EventBody: Encodable {
    struct Section: Encodable {
        let name: String
        let rows: Int
        let seatsPerRow: Int
        enum CodingKeys: String, CodingKey {
            case name, rows
            case seatsPerRow = "seats_per_row"
        }
    }

    let id: EventID
    let name: String
    let kind: String
    let capacity: Int
    let sold: Int
    let held: Int
    let available: Int
    let pending: Int
    let holdSeconds: Int
    let sections: [Section]?

    enum CodingKeys: String, CodingKey {
        case id, name, kind, capacity, sold, held, available, pending, sections
        case holdSeconds = "hold_seconds"
    }

    init(_ summary: EventSummary) {
        id = summary.id
        name = summary.name
        capacity = summary.capacity
        sold = summary.sold
        held = summary.held
        holdSeconds = summary.holdSeconds
        available = summary.available
        pending = summary.pending
        kind = EventKind(summary.layout).rawValue
        switch summary.layout {
        case .generalAdmission:
            sections = nil
        case .seatMap(let layout):
            sections = layout.map { Section(name: $0.name, rows: $0.rows, seatsPerRow: $0.seatsPerRow) }
        }
    }
}

/// The 202 body of an accepted intent.
struct AcceptedBody {
    let id: UUID

    func response(headers: HTTPFields) -> Response {
        JSONWriter.response(status: .accepted, headers: headers) { json in
            json.object { json in
                json.field("id", id)
                json.field("status", IntentStatusWord.pending.rawValue)
                json.field("status_url", prefix: "/intents/", id)
            }
        }
    }
}

/// One item of a bulk intake answer: the intent it became, or why it was refused (never both).
struct BulkItemResult {
    enum Outcome {
        case accepted(UUID, replayed: Bool)
        case refused(APIError)
    }

    let index: Int
    let outcome: Outcome

    /// Keys in sorted order, as for every body.
    func write(to json: inout JSONWriter) {
        json.object { json in
            switch outcome {
            case .accepted(let id, let replayed):
                json.field("id", id)
                json.field("index", index)
                json.field("replayed", replayed)
                json.field("status", IntentStatusWord.pending.rawValue)
                json.field("status_url", prefix: "/intents/", id)
            case .refused(let error):
                json.field("error", error.code)
                json.field("index", index)
                json.field("message", error.message)
            }
        }
    }
}

/// The answer to a bulk intake request: one result per item, in request order.
struct BulkBody {
    let results: [BulkItemResult]

    /// `written` holds one result per valid item, in order (what ``Store/enqueue(_:notify:sendBefore:)`` returns).
    init(items: [BulkItem], written: [IntakeResult]) {
        var written = written.makeIterator()
        results = items.enumerated().compactMap { index, item in
            switch item {
            case .refused(let error):
                return BulkItemResult(index: index, outcome: .refused(error))
            case .valid(let draft):
                switch written.next() {
                case .accepted(let publicID): return BulkItemResult(index: index, outcome: .accepted(publicID, replayed: false))
                case .replayed(let publicID): return BulkItemResult(index: index, outcome: .accepted(publicID, replayed: true))
                case .keyReused: return BulkItemResult(index: index, outcome: .refused(.keyReused(draft.idempotencyKey ?? "")))
                case nil: return nil
                }
            }
        }
    }

    func write(to json: inout JSONWriter) {
        let accepted = results.count { if case .accepted = $0.outcome { true } else { false } }
        json.object { json in
            json.field("accepted", accepted)
            json.field("rejected", results.count - accepted)
            json.key("results")
            json.array(results) { json, item in item.write(to: &json) }
        }
    }

    func response() -> Response { JSONWriter.response { json in write(to: &json) } }
}

/// An intent's status: pending (with its place in the queue), held (with seats and `expires_at`),
/// confirmed (with seats, and the payment reference of a confirmed hold), rejected (with its reason),
/// released, expired or cancelled (with the cancel reason, if any).
struct StatusBody {
    let status: IntentStatus

    init(_ status: IntentStatus) { self.status = status }

    /// `expires_at` as RFC 3339 in UTC with milliseconds (`2026-12-02T06:30:00.123Z`).
    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    func response(headers: HTTPFields = [:]) -> Response {
        // Seats are shown while the intent holds them (held, confirmed); a grant that gave them back
        // (released, expired, cancelled) shows none.
        let (seats, reason, queuePosition): ([String], String?, Int?) =
            switch status.state {
            case .pending(let ahead): ([], nil, ahead + 1)
            case .decided(.confirmed(_, let labels)): (status.word.isLive ? labels.map(\.description) : [], nil, nil)
            case .decided(.rejected(let why)): ([], why.rawValue, nil)
            }
        let state = status.word.rawValue
        return JSONWriter.response(headers: headers) { json in
            json.object { json in
                json.field("cancel_reason", status.cancelReason)
                json.field("event_id", Int(status.eventID))
                json.field("expires_at", status.expiresAt.map(Self.timestamp))
                json.field("id", status.publicID)
                json.field("payment_reference", status.paymentReference)
                json.field("quantity", status.quantity)
                json.field("queue_position", queuePosition)
                json.field("reason", reason)
                json.field("seats", strings: seats)
                json.field("status", state)
            }
        }
    }
}
