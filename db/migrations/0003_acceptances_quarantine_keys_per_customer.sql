-- What the audit needs to prove that no accepted intent was lost, that quarantined intents are
-- accounted for, and that each buyer got what they asked for; Idempotency-Keys scoped per buyer.

-- The acceptance record: one row per intent, written by the intake statement that queues it (same
-- statement, same transaction), never updated or deleted. `boxoffice verify` checks per event that
-- accepted = queued + settled, and names the intents missing from both.
--
-- Insert-only and without an index: a row costs intake one heap tuple (~70 bytes of WAL) and no
-- index insert, and no row is shared between intake groups (a counter row would serialize intake
-- on its lock). The audit reads the table whole, once, in a hash join: no index would help it.
CREATE TABLE acceptances (
    intent_id    bigint NOT NULL,
    public_id    uuid NOT NULL,
    event_id     bigint NOT NULL,
    accepted_at  timestamptz NOT NULL
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);

-- Upgraded databases: everything already queued or settled was accepted. Outcomes of the benchmark's
-- reference designs (negative intent ids) were accepted and decided at once, so they count too.
INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at)
SELECT id, public_id, event_id, created_at FROM intents
UNION ALL
SELECT intent_id, public_id, event_id, accepted_at FROM outcomes;

-- Intents a worker could not decide: a queued row that does not make a request (reason
-- invalid_request, found at claim time), or one whose batch kept failing down to a batch of one
-- (reason quarantined). Each also has a rejected outcome; this keeps the error that condemned it.
CREATE TABLE quarantine (
    intent_id       bigint PRIMARY KEY,
    public_id       uuid NOT NULL,
    event_id        bigint NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('invalid_request', 'quarantined')),
    error           text NOT NULL,
    quarantined_at  timestamptz NOT NULL
);

-- Idempotency-Keys are scoped per event and buyer: one buyer's key never meets another buyer's.
-- The customer of existing keys is their intent's; failing that, the fingerprint's first field.
ALTER TABLE idempotency_keys ADD COLUMN customer text;
UPDATE idempotency_keys k
SET customer = coalesce((SELECT i.customer FROM intents i WHERE i.public_id = k.public_id),
                        (SELECT o.customer FROM outcomes o WHERE o.public_id = k.public_id),
                        split_part(k.fingerprint, chr(31), 1));
ALTER TABLE idempotency_keys ALTER COLUMN customer SET NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (event_id, customer, key);

-- Last, so the ACCESS EXCLUSIVE lock it takes on outcomes (status reads and settles wait on it) is
-- held only from here to the commit, not through the backfills above.
-- What an exact-seat intent asked for (its `seats`, which the queue row held): verify checks the
-- confirmed seats against it. NULL for quantity requests and for outcomes settled before 0003.
ALTER TABLE outcomes ADD COLUMN requested_seats text[];
