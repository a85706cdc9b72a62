import BoxofficeCore
import PostgresNIO

extension Store {
    /// Events with queued intents read per scrape at most.
    public static let queueDepthEventsMax = 1_000

    /// Queued intents per event with work, for `boxoffice_queue_depth`: one statement. The distinct
    /// event ids of the queue come from a loose index scan of `intents_event_id_id` (one index probe per
    /// event with work, as the claim finds its event), and each event's count follows the queue position's
    /// rule (``queuePositionCountMax``): counted up to 1,000 index entries, past that estimated from the
    /// span of its queued ids (two probes; an upper bound, exact while one event is on sale). So a scrape
    /// costs at most about `events with work × 1,000` index entries, however long the queue is (at most
    /// ``queueDepthEventsMax`` events are read).
    public func queueDepths() async throws -> [(EventID, Int)] {
        let rows = try await fetch(
            """
            WITH RECURSIVE queued(event_id) AS (
                (SELECT event_id FROM intents ORDER BY event_id LIMIT 1)
                UNION ALL
                SELECT (SELECT i.event_id FROM intents i WHERE i.event_id > q.event_id ORDER BY i.event_id LIMIT 1)
                FROM queued q WHERE q.event_id IS NOT NULL
            )
            SELECT w.event_id, \(unescaped: Self.queuedCountSQL(event: "w.event_id", below: nil))
            FROM (SELECT event_id FROM queued WHERE event_id IS NOT NULL LIMIT \(Self.queueDepthEventsMax)) w
            """)
        return try rows.map { try $0.decode((EventID, Int).self) }
    }
}
