-- Boxoffice core schema: events, their inventory, the intent queue and the outcomes.
-- Applied by `boxoffice migrate`; each numbered file runs once, in one transaction.

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN ('general_admission', 'seat_map')),
    capacity    integer NOT NULL CHECK (capacity > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A seat map's blocks, in the order buyers prefer them (position 0 first).
CREATE TABLE sections (
    event_id       bigint NOT NULL REFERENCES events (id),
    position       integer NOT NULL CHECK (position >= 0),
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9_]{1,16}$'),
    row_count      integer NOT NULL CHECK (row_count > 0),
    seats_per_row  integer NOT NULL CHECK (seats_per_row > 0),
    PRIMARY KEY (event_id, position),
    UNIQUE (event_id, name)
);

-- The allocation right and the counters of one event. Workers lock this row
-- FOR NO KEY UPDATE SKIP LOCKED; it is its own table so that intake's foreign-key
-- check (FOR KEY SHARE on events) never waits for a worker.
CREATE TABLE inventory (
    event_id   bigint PRIMARY KEY REFERENCES events (id),
    capacity   integer NOT NULL,
    sold       integer NOT NULL DEFAULT 0,
    available  integer NOT NULL,
    -- Workers serve the least recently served event first, so busy events do not starve others.
    served_at  timestamptz NOT NULL DEFAULT '-infinity',
    CHECK (sold >= 0 AND available >= 0 AND sold + available = capacity)
);

-- One row of a seat map: bit i of `taken` (get_bit order) is seat i + 1.
-- Rows are what a batch loads and writes, so a batch never touches a sold-out row.
CREATE TABLE seat_rows (
    event_id    bigint  NOT NULL,
    section     integer NOT NULL,
    row_number  integer NOT NULL CHECK (row_number > 0),
    free        integer NOT NULL CHECK (free >= 0),
    taken       bytea   NOT NULL,
    PRIMARY KEY (event_id, section, row_number),
    FOREIGN KEY (event_id, section) REFERENCES sections (event_id, position)
);
CREATE INDEX seat_rows_with_free_seats ON seat_rows (event_id, section, row_number) WHERE free > 0;

-- The queue. Settled intents leave it (into outcomes), so it stays as small as the backlog.
CREATE TABLE intents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id   uuid NOT NULL UNIQUE,
    event_id    bigint NOT NULL REFERENCES events (id),
    customer    text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    section     text,
    seats       text[],
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);
-- The claim reads the oldest intents of one event: an index range scan, whatever the queue's length.
CREATE INDEX intents_event_id_id ON intents (event_id, id);

-- Decisions, kept forever. intent_id is the primary key: an intent can be settled only once.
CREATE TABLE outcomes (
    intent_id    bigint PRIMARY KEY,
    public_id    uuid NOT NULL UNIQUE,
    event_id     bigint NOT NULL REFERENCES events (id),
    customer     text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    section      text,
    -- True when the buyer named exact seats (all or nothing) rather than a quantity.
    exact_seats  boolean NOT NULL,
    status       text NOT NULL CHECK (status IN ('confirmed', 'rejected')),
    reason       text,
    seats        text[] NOT NULL DEFAULT '{}',
    accepted_at  timestamptz NOT NULL,
    decided_at   timestamptz NOT NULL,
    CHECK ((status = 'confirmed') = (reason IS NULL))
);
CREATE INDEX outcomes_event_id ON outcomes (event_id, decided_at, intent_id);

-- Idempotency-Key records outlive the queue row; a retry finds its intent here.
CREATE TABLE idempotency_keys (
    event_id     bigint NOT NULL REFERENCES events (id),
    key          text NOT NULL,
    public_id    uuid NOT NULL,
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, key)
);
