import BoxofficeCore
import Foundation
import NIOCore

// The words and encodings the database stores, in one place: the text of `events.kind` and
// `outcomes.status`, how a request is spread over the `section` and `seats` columns, how seat labels
// are kept as text, and the seat bitmaps of `seat_rows.taken`. Swift code that writes or compares
// these values goes through this file; the migrations' CHECK constraints list the same words.
// Rejection reasons (`outcomes.reason`, `quarantine.reason`) are ``RejectionReason``'s raw values.

/// `events.kind`: what an event sells.
public enum EventKind: String, Sendable, CaseIterable {
    case generalAdmission = "general_admission"
    case seatMap = "seat_map"

    public init(_ layout: EventLayout) {
        switch layout {
        case .generalAdmission: self = .generalAdmission
        case .seatMap: self = .seatMap
        }
    }
}

/// Where an intent stands, as `outcomes.status` stores it and as the status read and the API report
/// it: `pending` is an intent still queued, never stored.
///
/// The allocator's ``Outcome/confirmed(quantity:seats:)`` is a grant; the Store settles it as `held`
/// (with an `expires_at`) when the event has holds (`events.hold_seconds > 0`), else as `confirmed`.
/// A hold then becomes `confirmed` (paid), `released` (the buyer gave up) or `expired` (a worker
/// found it past `expires_at`); a confirmed order may become `cancelled` (refunded). Released, expired
/// and cancelled grants gave their seats back to the sale.
public enum IntentStatusWord: String, Sendable, CaseIterable {
    case pending
    case confirmed
    case rejected
    case held
    case released
    case expired
    case cancelled

    /// The statuses whose seats are taken: a seat is in at most one outcome with one of these.
    static let live: [IntentStatusWord] = [.confirmed, .held]
    /// The statuses of grants that gave their seats back to the sale.
    static let returned: [IntentStatusWord] = [.released, .expired, .cancelled]

    /// Whether the intent holds its seats (or tickets) now.
    public var isLive: Bool { Self.live.contains(self) }

    /// SQL: `column` is one of `words` (`status IN ('confirmed', 'held')`).
    static func inSQL(_ column: String, _ words: [IntentStatusWord]) -> String {
        "\(column) IN (\(words.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
    }

    /// SQL: `column` is a live status (`status IN ('confirmed', 'held')`).
    static func liveSQL(_ column: String) -> String { inSQL(column, live) }
}

/// `inventory_journal.change`: what a transition the API made owes the event's counters, paid by the
/// worker holding the allocation right. A confirm moves tickets held → sold; a release held → available
/// (seats back into their rows); a cancel sold → available (seats back).
enum JournalChange: String, Sendable {
    case confirm
    case release
    case cancel
}

/// Seat labels as the database keeps them: one text element each (`outcomes.seats`, `intents.seats`),
/// or joined by commas (labels cannot contain one) into one text element per intent of a batch.
///
/// A label that does not parse fails the same way on every path: ``StoreError/invariantBroken(_:)``,
/// because only a writer that bypassed the Store can have put it there. What follows depends on what
/// the row is: a queued intent is rejected as `invalid_request` at claim time (it is still undecided,
/// so the worker may decide it), while an outcome, already decided and perhaps told to the buyer, is
/// never rewritten or shown with seats missing: every read of it (the status read, the long-poll
/// lookup) throws, the API logs the error with the intent and the label, and answers a JSON 503,
/// as for any failing Store call, and `boxoffice verify` reports the row.
enum SeatColumn {
    static func joined(_ labels: [SeatLabel]) -> String {
        labels.map(\.description).joined(separator: ",")
    }

    /// The labels of a `text[]` column; `owner` names the row in the error.
    static func labels(_ column: [String], of owner: @autoclosure () -> String) throws -> [SeatLabel] {
        try column.map { text in
            guard let label = SeatLabel(parsing: text) else {
                throw StoreError.invariantBroken("\(owner()) holds an unparsable seat label \(text.debugDescription) among \(column)")
            }
            return label
        }
    }
}

extension PurchaseRequest {
    /// `intents.section`: the section asked for; nil unless the request names one.
    var sectionColumn: String? {
        if case .inSection(let section, _) = self { return section }
        return nil
    }

    /// `intents.seats`, joined by commas for one text element per intent; nil unless the request names seats.
    var seatsColumn: String? {
        if case .seats(let labels) = self { return SeatColumn.joined(labels) }
        return nil
    }

    /// The request a queued row holds (seats: exactly these; a section: best in it; neither: anywhere);
    /// throws ``StoreError/invariantBroken(_:)`` for a row intake would never have written.
    init(quantity: Int, section: String?, seats: [String]?) throws {
        if let seats {
            guard section == nil else {
                throw StoreError.invariantBroken("queued intent names both section \(section ?? "") and seats")
            }
            let labels = try SeatColumn.labels(seats, of: "queued intent")
            guard labels.count == quantity else {
                throw StoreError.invariantBroken("queued intent holds \(labels.count) seats \(seats) for a quantity of \(quantity)")
            }
            self = .seats(labels)
        } else if let section {
            self = .inSection(section, quantity: quantity)
        } else {
            self = .anywhere(quantity: quantity)
        }
    }
}

extension Outcome {
    /// The outcome an `outcomes` row holds (a grant for every status but `rejected`, whatever became of
    /// it since: the status word says that); throws ``StoreError/invariantBroken(_:)`` for a status or
    /// reason outside the schema's words, or a seat label that does not parse (see ``SeatColumn``).
    init(status: String, quantity: Int, reason: String?, seats: [String], of publicID: UUID) throws {
        switch IntentStatusWord(rawValue: status) {
        case .confirmed, .held, .released, .expired, .cancelled:
            self = .confirmed(quantity: quantity, seats: try SeatColumn.labels(seats, of: "outcome of \(publicID)"))
        case .rejected:
            guard let reason = reason.flatMap(RejectionReason.init(rawValue:)) else {
                throw StoreError.invariantBroken("outcome of \(publicID) has unknown reason \(reason ?? "null")")
            }
            self = .rejected(reason)
        case .pending, nil:
            throw StoreError.invariantBroken("outcome of \(publicID) has unknown status \(status)")
        }
    }

    /// `status`, `reason` (empty for none) and `seats` (comma-joined) of the settle statement's arrays.
    var columns: (status: String, reason: String, seats: String) {
        switch self {
        case .confirmed(_, let labels): (IntentStatusWord.confirmed.rawValue, "", SeatColumn.joined(labels))
        case .rejected(let reason): (IntentStatusWord.rejected.rawValue, reason.rawValue, "")
        }
    }
}

/// `seat_rows.taken`: one bit per seat of the row, seat 1 in the lowest bit of the first byte.
enum SeatBitmap {
    static func bytes(seats: Int) -> Int { (seats + 7) / 8 }

    static func buffer(_ taken: [Bool]) -> ByteBuffer {
        var bytes = [UInt8](repeating: 0, count: Self.bytes(seats: taken.count))
        for (index, isTaken) in taken.enumerated() where isTaken { bytes[index >> 3] |= 1 << UInt8(index & 7) }
        return ByteBuffer(bytes: bytes)
    }

    /// The `seats` bits of a stored bitmap; throws ``StoreError/invariantBroken(_:)`` when it is too short.
    static func taken(_ buffer: ByteBuffer, seats: Int, of row: @autoclosure () -> String) throws -> [Bool] {
        let bytes = Array(buffer.readableBytesView)
        guard bytes.count >= Self.bytes(seats: seats) else {
            throw StoreError.invariantBroken("\(row()) has a bitmap of \(bytes.count) bytes for \(seats) seats")
        }
        return (0..<seats).map { bytes[$0 >> 3] & (1 << UInt8($0 & 7)) != 0 }
    }
}
