-- Connections: the database is the source of truth; config-file connections are upserted at start.
CREATE TABLE connections (
    id                 TEXT PRIMARY KEY NOT NULL,
    provider           TEXT NOT NULL,
    workspace          TEXT NOT NULL DEFAULT 'default',
    secrets            TEXT NOT NULL,               -- JSON array of strings; never returned by any API
    tolerance_secs     BIGINT,
    allow_ips          TEXT NOT NULL DEFAULT '[]',  -- JSON array of CIDRs and @names
    auth               TEXT,
    email_path         TEXT,
    rate_limit_per_sec BIGINT,
    rate_limit_burst   BIGINT,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    source             TEXT NOT NULL,               -- config | api | cli
    created_at         BIGINT NOT NULL,             -- epoch ms
    updated_at         BIGINT NOT NULL
);

-- The ingest log: one row per request that reached a known provider's receive URL.
CREATE TABLE ingest (
    id             TEXT PRIMARY KEY NOT NULL,       -- ULID: time-sortable, the cursor
    received_at    BIGINT NOT NULL,                 -- epoch ms
    connection_id  TEXT NOT NULL,
    provider       TEXT NOT NULL,
    workspace      TEXT,
    outcome        TEXT NOT NULL,                   -- accepted | duplicate | ignored | rejected
    status         TEXT,                            -- processing: pending | processed | unresolved | failed | ignored
    http_status    INTEGER NOT NULL,
    event_id       TEXT,
    event_type     TEXT,
    duplicate_of   TEXT,
    reason         TEXT,
    client_addr    TEXT,
    path           TEXT NOT NULL,                   -- with secret query values redacted
    headers        TEXT NOT NULL,                   -- JSON [[name, value], ...], secrets redacted
    body           BLOB NOT NULL,
    body_size      BIGINT NOT NULL,
    body_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    read_us        BIGINT,
    verify_us      BIGINT
);

-- Exactly one stored event per (connection, provider event id); duplicates and rejects are
-- logged rows outside this index.
CREATE UNIQUE INDEX ingest_dedupe ON ingest (connection_id, event_id)
    WHERE outcome IN ('accepted', 'ignored');
CREATE INDEX ingest_by_connection ON ingest (connection_id, id);
CREATE INDEX ingest_by_status ON ingest (status, id) WHERE status IS NOT NULL;
