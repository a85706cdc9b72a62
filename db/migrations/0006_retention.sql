-- Retention: Idempotency-Keys expire (intake treats an expired key as absent, workers delete them in
-- bounded batches), and `boxoffice prune` deletes settled outcomes older than a given age, with their
-- acceptance records, in bounded batches. Nothing here rewrites a table: two index builds and one
-- new, empty table.

-- The workers' sweep reads the oldest keys first, a LIMIT's worth: an index range scan whatever the
-- table's size. Costs keyed intake one more index entry per key (unkeyed intake writes no key).
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- prune deletes the acceptance records of the outcomes it deletes, so verify's accepted = queued +
-- settled still holds (0003 said they are never deleted; prune is now the one exception, and only
-- together with their outcomes, in one transaction). acceptances has no B-tree so that intake pays
-- no index insert for it. A BRIN index on intent_id keeps that: intent ids grow with time and the
-- table is append-only, so one summary tuple per 128 pages finds a batch's rows; intake's rows land
-- in the last, not yet summarized range, which costs an insert nothing; autovacuum summarizes each
-- range once it is full (autosummarize).
CREATE INDEX acceptances_intent_id_brin ON acceptances USING brin (intent_id) WITH (autosummarize = on);

-- What prune removed, per event. verify's counters close with it: inventory.sold = tickets in
-- confirmed outcomes + tickets pruned. One row per event, written by prune only.
CREATE TABLE pruned_outcomes (
    event_id         bigint PRIMARY KEY,
    outcomes         bigint NOT NULL CHECK (outcomes >= 0),
    confirmed        bigint NOT NULL CHECK (confirmed >= 0),
    tickets          bigint NOT NULL CHECK (tickets >= 0),
    -- The latest decision pruned: outcomes of this event decided before it are gone.
    decided_through  timestamptz NOT NULL,
    pruned_at        timestamptz NOT NULL
);
