import BoxofficeCore
import PostgresNIO

/// One event as the live dashboard shows it.
public struct DashboardEvent: Sendable, Equatable {
    public let id: EventID
    public let name: String
    public let capacity: Int
    public let sold: Int
    /// Tickets in live holds (`inventory.held`); `sold + held + available = capacity`.
    public let held: Int
    public let available: Int
    /// Queued intents, by the rule of the event's `pending` (``Store/queuePositionCountMax``).
    public let pending: Int
    /// Seconds since a worker last settled a batch of this event; nil when none ever did.
    public let servedSecondsAgo: Double?
    /// Decisions of the last ``Store/dashboardLatencyWindowSeconds``, counted up to
    /// ``Store/dashboardLatencySamplesMax`` (at the cap, a lower bound).
    public let recentDecisions: Int
    /// Decisions per second: ``recentDecisions`` over the window or, when the cap cut it short, over
    /// the time since the oldest decision read (so a fast sale's rate is measured, not capped).
    public let decisionsPerSecond: Double
    /// Percentiles of `decided_at - accepted_at` over those decisions; nil when there were none.
    public let latencyP50Seconds: Double?
    public let latencyP99Seconds: Double?
}

/// What the dashboard shows, read at one moment.
public struct DashboardSample: Sendable, Equatable {
    /// The database's clock when the sample was taken (seconds since 1970): rates are computed between
    /// two samples by this clock, never the browser's.
    public let takenAt: Double
    /// Worker processes connected to this database (distinct worker `application_name`s).
    public let workersAlive: Int
    public let events: [DashboardEvent]
}

extension Store {
    /// Events on the dashboard at most: those with queued intents (newest first), then the newest others.
    public static let dashboardEventsMax = 16
    /// The decision latency covers the decisions of this many last seconds…
    public static let dashboardLatencyWindowSeconds = 10
    /// …the newest this many of them at most per event.
    public static let dashboardLatencySamplesMax = 500

    /// The dashboard's sample: two statements, whose cost follows the number of events shown (at most
    /// ``dashboardEventsMax``), never the queue's length or the outcomes' number:
    /// - the events: a descending loose index scan of `intents_event_id_id` finds the events with work
    ///   (one probe each, at most ``dashboardEventsMax``), a backward scan of the events' primary key
    ///   the newest; per event shown, its inventory row, its pending count (≤ 1,000 index entries and
    ///   two probes, as `GET /events/{id}`), and its latest decisions from `outcomes_event_id` (a
    ///   backward range scan of ``dashboardLatencySamplesMax`` entries at most, each with its heap row
    ///   for `accepted_at`);
    /// - the workers: `pg_stat_activity`, the server's shared-memory array of backends (no table).
    ///
    /// Measured with `EXPLAIN (ANALYZE, BUFFERS)` on a million queued intents and a million outcomes
    /// (docs/dashboard.md): 860 buffers with 16 events shown and one of them deciding (the one-sale
    /// case), 8,400 when all 16 had 500 decisions in the window (the worst case); 8 for the workers.
    /// A `count(*)` of the queue by event read 11,700 buffers for the same queue, from disk.
    public func dashboardSample() async throws -> DashboardSample {
        let eventsMax = Self.dashboardEventsMax
        let rows = try await fetch(
            """
            WITH RECURSIVE queued(event_id) AS (
                (SELECT event_id FROM intents ORDER BY event_id DESC LIMIT 1)
                UNION ALL
                SELECT (SELECT i.event_id FROM intents i WHERE i.event_id < q.event_id ORDER BY i.event_id DESC LIMIT 1)
                FROM queued q WHERE q.event_id IS NOT NULL
            ), shown AS (
                SELECT event_id, min(rank) AS rank
                FROM ((SELECT event_id, 0 AS rank FROM queued WHERE event_id IS NOT NULL LIMIT \(eventsMax))
                      UNION ALL
                      (SELECT id, 1 FROM events ORDER BY id DESC LIMIT \(eventsMax))) candidates
                GROUP BY event_id
                ORDER BY min(rank), event_id DESC
                LIMIT \(eventsMax)
            )
            SELECT e.id, e.name, inv.capacity, inv.sold, inv.held, inv.available,
                   \(unescaped: Self.queuedCountSQL(event: "s.event_id", below: nil)),
                   CASE WHEN inv.served_at = '-infinity' THEN NULL
                        ELSE extract(epoch FROM clock_timestamp() - inv.served_at)::float8 END,
                   recent.decisions, recent.span, recent.p50, recent.p99
            FROM shown s
            JOIN events e ON e.id = s.event_id
            JOIN inventory inv ON inv.event_id = s.event_id
            CROSS JOIN LATERAL (
                SELECT count(*) AS decisions,
                       extract(epoch FROM statement_timestamp() - min(decided_at))::float8 AS span,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY waited) AS p50,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY waited) AS p99
                FROM (SELECT o.decided_at, extract(epoch FROM o.decided_at - o.accepted_at)::float8 AS waited
                      FROM outcomes o
                      WHERE o.event_id = s.event_id
                        AND o.decided_at > statement_timestamp() - make_interval(secs => \(Self.dashboardLatencyWindowSeconds))
                      ORDER BY o.decided_at DESC
                      LIMIT \(Self.dashboardLatencySamplesMax)) latest
            ) recent
            ORDER BY s.rank, s.event_id DESC
            """)
        var events: [DashboardEvent] = []
        for row in rows {
            let (id, name, capacity, sold, held, available, pending, served, decisions, span, p50, p99) = try row.decode(
                (EventID, String, Int, Int, Int, Int, Int, Double?, Int, Double?, Double?, Double?).self)
            let window = Double(Self.dashboardLatencyWindowSeconds)
            let seconds = decisions >= Self.dashboardLatencySamplesMax ? max(span ?? window, 0.001) : window
            events.append(
                DashboardEvent(
                    id: id, name: name, capacity: capacity, sold: sold, held: held, available: available, pending: pending,
                    servedSecondsAgo: served, recentDecisions: decisions,
                    decisionsPerSecond: Double(decisions) / seconds, latencyP50Seconds: p50, latencyP99Seconds: p99))
        }
        let workers = try await fetch(
            """
            SELECT extract(epoch FROM clock_timestamp())::float8,
                   (SELECT count(DISTINCT application_name) FROM pg_stat_activity
                    WHERE datname = current_database()
                      AND starts_with(application_name, \(DatabaseConfiguration.workerApplicationNamePrefix)))
            """)
        for row in workers {
            let (takenAt, alive) = try row.decode((Double, Int).self)
            return DashboardSample(takenAt: takenAt, workersAlive: alive, events: events)
        }
        throw StoreError.invariantBroken("the dashboard's clock query returned no row")
    }
}
