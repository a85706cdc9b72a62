/// Identifies an event (a sale) in the database.
public typealias EventID = Int64

/// A seat's public name, `SECTION-ROW-SEAT` (rows and seats count from 1), e.g. `A-3-17`.
///
/// Section names are restricted to letters, digits and `_` so a label parses back unambiguously.
public struct SeatLabel: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let section: String
    public let row: Int
    public let seat: Int

    public init(section: String, row: Int, seat: Int) {
        self.section = section
        self.row = row
        self.seat = seat
    }

    /// Parses `A-3-17`; returns nil for anything else, so callers can answer 400 instead of guessing.
    public init?(parsing text: Substring) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3,
            SectionLayout.isValidName(parts[0]),
            let row = Self.number(parts[1]), let seat = Self.number(parts[2])
        else { return nil }
        self.init(section: String(parts[0]), row: row, seat: seat)
    }

    public init?(parsing text: String) { self.init(parsing: text[...]) }

    /// 1 to 6 plain digits, no sign and no leading zero: one spelling per seat, so labels compare as text.
    private static func number(_ text: Substring) -> Int? {
        guard (1...6).contains(text.count), text.first != "0", text.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return Int(text)
    }

    public var description: String { "\(section)-\(row)-\(seat)" }

    public static func < (lhs: SeatLabel, rhs: SeatLabel) -> Bool {
        (lhs.section, lhs.row, lhs.seat) < (rhs.section, rhs.row, rhs.seat)
    }
}

/// One block of a seat map: `rows` rows of `seatsPerRow` seats, row 1 nearest the stage.
public struct SectionLayout: Hashable, Sendable {
    /// Longest accepted section name; keeps labels and indexes small.
    public static let nameLengthMax = 16
    /// Bounds that keep one event's seat map (and so one inventory snapshot) small enough to load per batch.
    public static let rowsMax = 1_000
    public static let seatsPerRowMax = 1_000

    public let name: String
    public let rows: Int
    public let seatsPerRow: Int

    public init(name: String, rows: Int, seatsPerRow: Int) {
        self.name = name
        self.rows = rows
        self.seatsPerRow = seatsPerRow
    }

    public var capacity: Int { rows * seatsPerRow }

    /// Letters, digits and `_`, 1 to 16 characters: a name that cannot break a `SECTION-ROW-SEAT` label.
    public static func isValidName<S: StringProtocol>(_ name: S) -> Bool {
        !name.isEmpty && name.count <= nameLengthMax
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }

    /// True when `label` names a seat that exists in this section.
    public func contains(_ label: SeatLabel) -> Bool {
        label.section == name && label.row >= 1 && label.row <= rows && label.seat >= 1 && label.seat <= seatsPerRow
    }
}

/// What is on sale: a number of general-admission tickets, or a seat map.
public enum EventLayout: Hashable, Sendable {
    case generalAdmission(capacity: Int)
    case seatMap([SectionLayout])

    /// Upper bound on tickets for one event; a bound on every snapshot and settle statement.
    public static let capacityMax = 1_000_000

    public var capacity: Int {
        switch self {
        case .generalAdmission(let capacity): capacity
        case .seatMap(let sections): sections.reduce(0) { $0 + $1.capacity }
        }
    }

    public var sections: [SectionLayout] {
        if case .seatMap(let sections) = self { return sections }
        return []
    }

    /// Why `request` cannot be made of this event (a seat or section it does not have, a seat named
    /// twice, seats or a section at a general-admission event), or nil when it can.
    ///
    /// Intake refuses such requests; a worker asks again of each queued row, so a row written past
    /// intake is rejected as invalid instead of reaching the allocator, which trusts its input.
    public func problem(with request: PurchaseRequest) -> String? {
        switch (self, request) {
        case (_, .anywhere):
            return nil
        case (.generalAdmission, .inSection), (.generalAdmission, .seats):
            return "a general-admission event has no sections or seats to ask for"
        case (.seatMap(let sections), .inSection(let name, _)):
            return sections.contains { $0.name == name } ? nil : "section \(name) does not exist in this event"
        case (.seatMap(let sections), .seats(let labels)):
            if labels.isEmpty { return "no seats named" }
            if let unknown = labels.first(where: { label in !sections.contains { $0.contains(label) } }) {
                return "seat \(unknown) does not exist in this event"
            }
            if Set(labels).count != labels.count { return "a seat is named twice" }
            return nil
        }
    }
}

/// What a buyer asked for. Validated at intake against the event's layout; the allocator trusts it.
public enum PurchaseRequest: Hashable, Sendable {
    /// `quantity` tickets: general admission, or the best available seats anywhere in a seat map.
    case anywhere(quantity: Int)
    /// The best available `quantity` seats in one section, adjacent in one row when possible.
    case inSection(String, quantity: Int)
    /// Exactly these seats, all or nothing.
    case seats([SeatLabel])

    public var quantity: Int {
        switch self {
        case .anywhere(let quantity), .inSection(_, let quantity): quantity
        case .seats(let labels): labels.count
        }
    }
}

/// An intent claimed from the queue, in arrival order (`id` ascending).
public struct PendingIntent: Hashable, Sendable {
    public let id: Int64
    public let request: PurchaseRequest

    public init(id: Int64, request: PurchaseRequest) {
        self.id = id
        self.request = request
    }
}

/// Why an intent was refused; the raw value is what clients see.
public enum RejectionReason: String, Hashable, Sendable, CaseIterable {
    /// Nothing left in the scope asked for (the event, or the section).
    case soldOut = "sold_out"
    /// Some tickets are left, but fewer than the quantity asked for.
    case notEnoughAvailable = "not_enough_available"
    /// At least one of the exact seats asked for is already sold.
    case seatsUnavailable = "seats_unavailable"
    /// The queued row does not make a request (seat labels that do not parse, a quantity that
    /// disagrees with them, seats or a section the event does not have): a worker rejects it when it
    /// claims it, instead of failing its batch, and records why.
    case invalidRequest = "invalid_request"
    /// The intent's batch kept failing even when it was claimed alone, so a worker set it aside
    /// with the error, letting the event's other intents be decided.
    case quarantined = "quarantined"

    /// The reasons the ``Allocator`` gives. The others are given by the Store to intents it cannot
    /// hand to the allocator, and are the ones `boxoffice verify` counts as quarantined.
    public static let allocatorReasons: [RejectionReason] = [.soldOut, .notEnoughAvailable, .seatsUnavailable]

    /// True for the reasons of intents set aside instead of decided (``invalidRequest``, ``quarantined``).
    public var isQuarantine: Bool { !Self.allocatorReasons.contains(self) }
}

/// The decision for one intent: the only two ends an accepted intent can reach.
public enum Outcome: Hashable, Sendable {
    /// Granted. `seats` is empty for general admission.
    case confirmed(quantity: Int, seats: [SeatLabel])
    case rejected(RejectionReason)

    public var isConfirmed: Bool {
        if case .confirmed = self { return true }
        return false
    }
}
