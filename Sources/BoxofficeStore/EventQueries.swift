import BoxofficeCore
import Foundation
import PostgresNIO

/// An event as the API reports it: its shape and live counters.
public struct EventSummary: Sendable, Equatable {
    public let id: EventID
    public let name: String
    public let layout: EventLayout
    public let sold: Int
    /// Tickets in live holds: `sold + held + available = capacity`.
    public let held: Int
    public let available: Int
    /// Intents still in the queue for this event.
    public let pending: Int
    /// How long a granted intent is held for payment; 0: granted means sold.
    public let holdSeconds: Int

    public var capacity: Int { layout.capacity }
}

extension Store {
    /// Longest hold an event may give (`events.hold_seconds`, 0...this): an hour.
    public static let holdSecondsMax = 3_600

    /// Creates the event, its inventory row and, for a seat map, its sections and seat rows, in one
    /// transaction (a few statements, whatever the number of seats). `holdSeconds` > 0 settles each
    /// granted intent as `held` for that long (at most ``holdSecondsMax``); 0 sells it outright.
    public func createEvent(name: String, layout: EventLayout, holdSeconds: Int = 0) async throws -> EventSummary {
        precondition((0...Self.holdSecondsMax).contains(holdSeconds), "hold_seconds out of bounds")
        let kind = EventKind(layout).rawValue
        let capacity = layout.capacity
        let id = try await transaction { connection -> EventID in
            let rows = try await connection.query(
                """
                INSERT INTO events (name, kind, capacity, hold_seconds) VALUES (\(name), \(kind), \(capacity), \(holdSeconds)) RETURNING id
                """, logger: logger)
            guard let id = try await rows.decode(EventID.self).first(where: { _ in true }) else {
                throw StoreError.invariantBroken("INSERT INTO events returned no id")
            }
            try await connection.query(
                """
                INSERT INTO inventory (event_id, capacity, available) VALUES (\(id), \(capacity), \(capacity))
                """, logger: logger)
            let sections = layout.sections
            if !sections.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO sections (event_id, position, name, row_count, seats_per_row)
                    SELECT \(id), position - 1, name, row_count, seats_per_row
                    FROM unnest(\(sections.map(\.name))::text[], \(sections.map(\.rows))::int[], \(sections.map(\.seatsPerRow))::int[])
                         WITH ORDINALITY AS s(name, row_count, seats_per_row, position)
                    """, logger: logger)
                try await connection.query(
                    """
                    INSERT INTO seat_rows (event_id, section, row_number, free, taken)
                    SELECT s.event_id, s.position, r, s.seats_per_row, decode(repeat('00', (s.seats_per_row + 7) / 8), 'hex')
                    FROM sections s, generate_series(1, s.row_count) AS r
                    WHERE s.event_id = \(id)
                    """, logger: logger)
            }
            return id
        }
        remember(layout, of: id)
        return EventSummary(id: id, name: name, layout: layout, sold: 0, held: 0, available: capacity, pending: 0, holdSeconds: holdSeconds)
    }

    /// The event's shape, from this process's cache or the database; nil for an unknown event.
    public func layout(of eventID: EventID) async throws -> EventLayout? {
        if let cached = cachedLayout(of: eventID) { return cached }
        guard let (_, layout) = try await loadEvent(eventID, on: nil) else { return nil }
        remember(layout, of: eventID)
        return layout
    }

    /// The layout if this process has read it before: no I/O, no task, so the hot intake path pays
    /// nothing for it after the first request of an event.
    public func cachedLayout(of eventID: EventID) -> EventLayout? {
        layouts.withLock { $0[eventID] }
    }

    /// Layouts kept per process at most; past it the cache starts over (events are few and hot).
    static let layoutsCachedMax = 10_000

    func remember(_ layout: EventLayout, of eventID: EventID) {
        layouts.withLock { layouts in
            if layouts.count >= Self.layoutsCachedMax { layouts.removeAll(keepingCapacity: true) }
            layouts[eventID] = layout
        }
    }

    func loadEvent(_ eventID: EventID, on connection: PostgresConnection?) async throws -> (name: String, layout: EventLayout)? {
        let logger = self.logger
        guard let connection else {
            return try await loadEvent(eventID) { try await self.fetch($0) }
        }
        return try await runBounded(on: connection) {
            try await self.loadEvent(eventID) { try await connection.rows($0, logger: logger) }
        }
    }

    private func loadEvent(
        _ eventID: EventID, run: @Sendable (PostgresQuery) async throws -> [PostgresRow]
    ) async throws -> (name: String, layout: EventLayout)? {
        var event: (String, String, Int)?
        for row in try await run("SELECT name, kind, capacity FROM events WHERE id = \(eventID)") {
            event = try row.decode((String, String, Int).self)
        }
        guard let (name, kind, capacity) = event else { return nil }
        if kind == EventKind.generalAdmission.rawValue { return (name, .generalAdmission(capacity: capacity)) }
        var sections: [SectionLayout] = []
        let sectionsQuery: PostgresQuery = """
            SELECT name, row_count, seats_per_row FROM sections WHERE event_id = \(eventID) ORDER BY position
            """
        for row in try await run(sectionsQuery) {
            let (section, rows, seats) = try row.decode((String, Int, Int).self)
            sections.append(SectionLayout(name: section, rows: rows, seatsPerRow: seats))
        }
        return (name, .seatMap(sections))
    }

    /// The event with its counters; nil for an unknown event. `pending` follows the queue position's
    /// rule (``queuePositionCountMax``): counted exactly up to 1,000, past that the span of the event's
    /// queued ids, two index probes. That is an upper bound (ids are shared by all events), exact while
    /// one event is on sale. Counting up to 100,000, as this did, cost 28 ms per read of a busy event.
    public func eventSummary(_ eventID: EventID) async throws -> EventSummary? {
        guard let (name, layout) = try await loadEvent(eventID, on: nil) else { return nil }
        let rows = try await fetch(
            """
            SELECT inv.sold, inv.held, inv.available, \(unescaped: Self.queuedCountSQL(event: "inv.event_id", below: nil)),
                   (SELECT e.hold_seconds FROM events e WHERE e.id = inv.event_id)
            FROM inventory inv
            WHERE inv.event_id = \(eventID)
            """)
        for row in rows {
            let (sold, held, available, pending, holdSeconds) = try row.decode((Int, Int, Int, Int, Int).self)
            return EventSummary(
                id: eventID, name: name, layout: layout, sold: sold, held: held, available: available, pending: pending, holdSeconds: holdSeconds)
        }
        return nil
    }
}
