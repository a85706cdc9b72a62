-- The sale lifecycle (issue 12): an event may hold what its buyers are granted for `hold_seconds`
-- while they pay; a hold is then confirmed, released by the buyer, or expired by a worker; a
-- confirmed order may be cancelled (refunded). Every seat that comes back is returned to the sale
-- exactly once, by the one place that decides who gets inventory: the worker holding the event's
-- allocation right (its inventory row, FOR NO KEY UPDATE), in its batch transaction, before it
-- allocates the intents it claimed.
--
-- Counters. `inventory.held` counts the tickets of live holds, so `sold + held + available =
-- capacity` holds for every event, always (the CHECK below, and `boxoffice verify`). Only the holder
-- of the allocation right writes `inventory` and `seat_rows`.
--
-- Transitions. Confirm, release and cancel are one conditional UPDATE of one outcome row each
-- (`WHERE status = 'held' AND expires_at > statement_timestamp()` for a confirm), made by the API;
-- an expiry is the same kind of UPDATE (`WHERE status = 'held' AND expires_at <= …`, rows a confirm
-- has locked skipped) made by the worker. The row lock and the re-check of the WHERE clause after
-- it make the database pick the one winner of a confirm racing an expiry, a release or a second
-- confirm; no process's clock decides. The API does not touch the counters (that would queue every
-- confirm behind the worker's batch on the inventory row): in the same transaction as its UPDATE it
-- appends what the counters owe to `inventory_journal`, which the worker holding the allocation right
-- consumes (DELETE … RETURNING, bounded) in its next batch: a confirm moves tickets held → sold, a
-- release held → available, a cancel sold → available, with the seats back into their rows. The
-- worker applies its own expiries directly. So at any moment, per event:
--   inventory.held = Σ held outcomes + Σ journal confirms + Σ journal releases   (not yet applied)
--   inventory.sold = Σ confirmed outcomes − Σ journal confirms + Σ journal cancels
-- and an outcome that gave its seats back (released, expired, cancelled) has `returned_at` set by the
-- worker that put them back, xor a journal row still waiting: returned exactly once (verify checks it).
--
-- Locks: the ALTERs take ACCESS EXCLUSIVE on events, inventory and outcomes; the new CHECKs scan
-- inventory (one row per event) and outcomes once. Stop `serve` and `work` before migrating, as for
-- 0003: an older worker would settle every grant as `confirmed` whatever the event's hold_seconds.

ALTER TABLE events ADD COLUMN hold_seconds integer NOT NULL DEFAULT 0 CHECK (hold_seconds BETWEEN 0 AND 3600);

ALTER TABLE inventory ADD COLUMN held integer NOT NULL DEFAULT 0;
ALTER TABLE inventory DROP CONSTRAINT inventory_check;
ALTER TABLE inventory ADD CONSTRAINT inventory_counts CHECK (
    sold >= 0 AND held >= 0 AND available >= 0 AND sold + held + available = capacity);

-- expires_at: when a hold ends (set for every hold, kept after it ends). changed_at: when the
-- outcome last changed status after its decision (a hold confirmed, released or expired; an order
-- cancelled). returned_at: when a worker put its seats back into the sale. The reason is a
-- rejection's alone; a payment reference a confirmed (or later cancelled) hold's; a cancel reason a
-- cancellation's.
ALTER TABLE outcomes ADD COLUMN expires_at timestamptz;
ALTER TABLE outcomes ADD COLUMN changed_at timestamptz;
ALTER TABLE outcomes ADD COLUMN returned_at timestamptz;
ALTER TABLE outcomes ADD COLUMN payment_reference text CHECK (char_length(payment_reference) BETWEEN 1 AND 200);
ALTER TABLE outcomes ADD COLUMN cancel_reason text CHECK (char_length(cancel_reason) BETWEEN 1 AND 200);
ALTER TABLE outcomes DROP CONSTRAINT outcomes_status_check;
ALTER TABLE outcomes DROP CONSTRAINT outcomes_check;
ALTER TABLE outcomes ADD CONSTRAINT outcomes_status_words CHECK (
    status IN ('confirmed', 'rejected', 'held', 'released', 'expired', 'cancelled')
    AND (status = 'rejected') = (reason IS NOT NULL)
    AND CASE status
        WHEN 'held' THEN expires_at IS NOT NULL AND changed_at IS NULL
        WHEN 'rejected' THEN expires_at IS NULL AND changed_at IS NULL
        WHEN 'confirmed' THEN (expires_at IS NULL) = (changed_at IS NULL)
        WHEN 'cancelled' THEN changed_at IS NOT NULL
        ELSE expires_at IS NOT NULL AND changed_at IS NOT NULL
    END
    AND (returned_at IS NULL OR status IN ('released', 'expired', 'cancelled'))
    AND (payment_reference IS NULL OR status IN ('confirmed', 'cancelled'))
    AND (cancel_reason IS NULL OR status = 'cancelled'));

-- What the worker's expiry sweep reads (`WHERE event_id = $1 AND status = 'held' AND expires_at <=
-- now() ORDER BY expires_at LIMIT n`), and the loose scan that finds events with live holds: one
-- range scan over live holds only.
CREATE INDEX outcomes_live_holds ON outcomes (event_id, expires_at) WHERE status = 'held';

-- What the counters owe for transitions the API made: appended by confirm, release and cancel in
-- their own transaction, consumed (deleted) by the worker holding the event's allocation right.
-- Short-lived rows: it stays small, and is vacuumed often.
CREATE TABLE inventory_journal (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES events (id),
    intent_id   bigint NOT NULL,
    change      text NOT NULL CHECK (change IN ('confirm', 'release', 'cancel')),
    quantity    integer NOT NULL CHECK (quantity > 0),
    seats       text[] NOT NULL,
    made_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
    UNIQUE (intent_id, change)
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
CREATE INDEX inventory_journal_event_id ON inventory_journal (event_id, id);
