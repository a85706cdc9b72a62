import BoxofficeCore
import Foundation
import PostgresNIO

/// How long records are kept, and the bounds of the statements that remove them.
public enum Retention {
    /// How long an Idempotency-Key replays its intent; `serve` and `work` both default to it
    /// (`--idempotency-key-lifetime-seconds`), so intake and the sweep agree on what has expired.
    public static let idempotencyKeyLifetimeDefault: Duration = .seconds(24 * 3_600)
    /// Keys deleted by one sweep statement at most: one short transaction, whatever the backlog.
    public static let keySweepBatchSizeDefault = 1_000
    /// Outcomes deleted by one `prune` statement at most (with their acceptance and quarantine rows).
    public static let pruneBatchSizeDefault = 5_000
}

/// Deletes up to `limit` Idempotency-Keys created before `cutoff` (when given) or else older than
/// `olderThanSeconds`, oldest first, found through the `created_at` index (migration 0006): the cost
/// follows the batch, never the table. Rows another sweeper (or an intake taking an expired key over)
/// holds locked are skipped, so concurrent sweepers never wait for each other; a row an intake
/// refreshed meanwhile fails the re-checked age and stays. The rows are locked by the statement that
/// deletes them, so their `ctid`s cannot move in between.
struct SweepKeysStatement: StoreStatement {
    typealias Row = Int
    static let sample = SweepKeysStatement(cutoff: nil, olderThanSeconds: 0, limit: 1)
    let cutoff: Date?
    let olderThanSeconds: Double
    let limit: Int

    var query: PostgresQuery {
        """
        WITH swept AS (
            DELETE FROM idempotency_keys
            WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM idempotency_keys
                WHERE created_at < coalesce(\(cutoff)::timestamptz, now() - make_interval(secs => \(olderThanSeconds)::float8))
                ORDER BY created_at
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED))
              AND created_at < coalesce(\(cutoff)::timestamptz, now() - make_interval(secs => \(olderThanSeconds)::float8))
            RETURNING 1
        )
        SELECT count(*)::int FROM swept
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension Store {
    /// Deletes one bounded batch of expired Idempotency-Keys (older than ``idempotencyKeyLifetime``);
    /// returns how many. Callers repeat while a batch comes back full.
    public func sweepExpiredKeys(limit: Int = Retention.keySweepBatchSizeDefault) async throws -> Int {
        try await rows(SweepKeysStatement(cutoff: nil, olderThanSeconds: idempotencyKeyLifetime.secondsDouble, limit: limit)).first ?? 0
    }
}
