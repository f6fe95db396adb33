-- Outbound delivery: endpoints, one delivery per (endpoint, event), and the attempt log.
-- An event's message id is derived, not stored: `msg_` + the ULID made of the fire's
-- `created_at` and its `seq` (see src/delivery/mod.rs), so fires need no new column.

CREATE TABLE endpoints (
    id                 TEXT PRIMARY KEY NOT NULL,     -- [A-Za-z0-9_-]{1,64}
    url                TEXT NOT NULL,
    workspace          TEXT NOT NULL,
    event_types        TEXT NOT NULL,                 -- JSON array of globs, as written
    secrets            TEXT NOT NULL,                 -- JSON [{"secret","expires_at"}], encrypted with the secret key when set
    transform          TEXT,                          -- jq program
    max_in_flight      BIGINT NOT  NULL,
    rate_limit_per_sec BIGINT, 
    ordered            BOOLEAN NOT NULL,
    enabled            BOOLEAN NOT NULL,
    disabled_reason    TEXT,
    failing_since      BIGINT,                        -- epoch ms of the first failure since the last success
    source             TEXT NOT NULL,                 -- config | api | cli
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- One row per glob of an endpoint's `event_types` (the outbox trigger matches against these).
CREATE TABLE endpoint_event_types (
    endpoint_id TEXT NOT NULL,
    pattern     TEXT NOT NULL,                        -- `*` is the only wildcard
    PRIMARY KEY (endpoint_id, pattern)
);

CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,   -- shown as the id `dlv_<seq>`
    endpoint_id      TEXT NOT NULL,
    fire_seq         BIGINT NOT NULL,
    fire_created_at  BIGINT NOT NULL,
    workspace        TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,                       -- pending|retrying|succeeded|dead|skipped|paused
    attempts         BIGINT NOT  NULL DEFAULT 0,
    next_attempt_at  BIGINT,                              -- epoch ms
    first_attempt_at BIGINT,                              -- start of the give-up window
    last_status_code BIGINT, 
    last_error       TEXT,
    body             BLOB,                                -- the exact bytes sent, fixed at the first attempt
    claimed_by       TEXT,
    claimed_until    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (endpoint_id, fire_seq)
);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, status, next_attempt_at);
CREATE INDEX deliveries_by_status ON deliveries (status, seq);

CREATE TABLE delivery_attempts (
    delivery_seq  BIGINT NOT NULL,
    attempt       BIGINT NOT  NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT NOT  NULL,                   -- 0: no answer
    error         TEXT,
    response_body TEXT,                               -- the first 4 KiB
    PRIMARY KEY (delivery_seq, attempt)
);

-- The transactional outbox: every fire inserted, by any code path, gets a delivery for each
-- enabled endpoint of its workspace with a matching glob, in the same transaction.
CREATE TRIGGER fires_outbox AFTER INSERT ON fires
BEGIN
    INSERT INTO deliveries (endpoint_id, fire_seq, fire_created_at, workspace, event_type, status,
                            next_attempt_at, created_at, updated_at)
    SELECT e.id, NEW.seq, NEW.created_at, NEW.workspace, NEW.trigger_id, 'pending',
           NEW.created_at, NEW.created_at, NEW.created_at
    FROM endpoints e
    WHERE e.enabled AND e.workspace = NEW.workspace
      AND EXISTS (SELECT 1 FROM endpoint_event_types t
                  WHERE t.endpoint_id = e.id AND NEW.trigger_id GLOB t.pattern);
END;
