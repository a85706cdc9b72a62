-- Holds, the first step of the sale lifecycle (issue 12): an event may hold what its buyers are
-- granted for `hold_seconds` while they pay, instead of selling it outright.
--
-- Counters. `inventory.held` counts the tickets of live holds, so `sold + held + available =
-- capacity` holds for every event (the CHECK below, and `boxoffice verify`). The worker that holds
-- the event's allocation right (its inventory row, FOR NO KEY UPDATE) is the only writer of these
-- counters and of the seat rows: a batch settles each granted intent as `held` (with `expires_at`)
-- when the event has holds, as `confirmed` when it has none (hold_seconds = 0, the default: today's
-- behaviour, decided means sold), in the same statement as before.
--
-- The transitions that end a hold (confirm, release, expiry, cancel) come next, on this schema: each
-- is a conditional UPDATE of one outcome row (`WHERE status = 'held' AND expires_at > now()` for a
-- confirm), so the database picks the one winner of a confirm racing an expiry; seats that come back
-- are applied by the worker holding the event's inventory row, in its claim transaction, before it
-- allocates the claimed intents, so they return exactly once and in the one serialized path. The
-- partial index below is what that worker's expiry sweep reads (`WHERE event_id = $1 AND status =
-- 'held' AND expires_at <= now() ORDER BY expires_at LIMIT n`): one range scan, live holds only.
--
-- Locks: the ALTERs take ACCESS EXCLUSIVE on events, inventory and outcomes; the new CHECKs scan
-- inventory (one row per event) and outcomes once. Stop `serve` and `work` before migrating, as for
-- 0003: an older worker would settle every grant as `confirmed` whatever the event's hold_seconds.

ALTER TABLE events ADD COLUMN hold_seconds integer NOT NULL DEFAULT 0 CHECK (hold_seconds BETWEEN 0 AND 3600);

ALTER TABLE inventory ADD COLUMN held integer NOT NULL DEFAULT 0;
ALTER TABLE inventory DROP CONSTRAINT inventory_check;
ALTER TABLE inventory ADD CONSTRAINT inventory_counts CHECK (
    sold >= 0 AND held >= 0 AND available >= 0 AND sold + held + available = capacity);

-- A hold ends at expires_at; nothing else has one. The reason is a rejection's alone.
ALTER TABLE outcomes ADD COLUMN expires_at timestamptz;
ALTER TABLE outcomes DROP CONSTRAINT outcomes_status_check;
ALTER TABLE outcomes DROP CONSTRAINT outcomes_check;
ALTER TABLE outcomes ADD CONSTRAINT outcomes_status_words CHECK (
    status IN ('confirmed', 'rejected', 'held')
    AND (status = 'rejected') = (reason IS NOT NULL)
    AND (status = 'held') = (expires_at IS NOT NULL));

CREATE INDEX outcomes_live_holds ON outcomes (event_id, expires_at) WHERE status = 'held';
