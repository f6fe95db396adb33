-- Processing state of stored events (the normalization pipeline).
ALTER TABLE ingest ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ingest ADD COLUMN next_attempt_at BIGINT;          -- epoch ms; failed events retry after it
ALTER TABLE ingest ADD COLUMN claimed_by TEXT;                 -- worker that holds the lease
ALTER TABLE ingest ADD COLUMN claimed_until BIGINT;            -- epoch ms; an expired lease may be taken over
ALTER TABLE ingest ADD COLUMN processed_at BIGINT;
ALTER TABLE ingest ADD COLUMN status_reason TEXT;
ALTER TABLE ingest ADD COLUMN contact_email TEXT;

-- Contacts: one row per (workspace, trimmed lower-case email).
CREATE TABLE contacts (
    workspace     TEXT NOT NULL,
    email         TEXT NOT NULL,
    first_name    TEXT,
    last_name     TEXT,
    subscribed    BOOLEAN,
    custom_fields TEXT NOT NULL DEFAULT '{}',  -- JSON object: <provider>_<name> -> scalar
    field_times   TEXT NOT NULL DEFAULT '{}',  -- JSON object: field -> provider time (ms) of the value
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace, email)
);

-- Identity index: a provider id (e.g. stripe_customer_id = cus_...) -> the contact's email.
CREATE TABLE contact_ids (
    workspace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    email      TEXT NOT NULL,
    seen_at    BIGINT NOT NULL,                -- provider time (ms) of the event that linked them
    PRIMARY KEY (workspace, key, value)
);

-- Events parked until an identity they carry becomes known.
CREATE TABLE unresolved_ids (
    ingest_id  TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (workspace, key, value, ingest_id)
);

-- One definition per custom field per workspace, made on first sight.
CREATE TABLE field_definitions (
    workspace     TEXT NOT NULL,
    key           TEXT NOT NULL,
    type          TEXT NOT NULL,               -- string | number | boolean
    provider      TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, key)
);

-- Trigger fires: what downstream automation consumes. `seq` is the stable cursor.
CREATE TABLE fires (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,      -- <connection_id>:<event_id>
    workspace       TEXT NOT NULL,
    trigger_id      TEXT NOT NULL,             -- <provider>.<event_type>
    provider        TEXT NOT NULL,
    ingest_id       TEXT,
    email           TEXT,
    payload         TEXT NOT NULL,             -- JSON object
    occurred_at     BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX fires_by_trigger ON fires (trigger_id, seq);
CREATE INDEX fires_by_ingest ON fires (ingest_id);

-- The trigger catalog: every trigger seen per workspace, with its payload schema.
CREATE TABLE triggers (
    workspace      TEXT NOT NULL,
    id             TEXT NOT NULL,
    provider       TEXT NOT NULL,
    payload_schema TEXT NOT NULL,              -- JSON {"fields":[{"key","type","required"}]}
    first_seen_at  BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace, id)
);

-- API keys: only a SHA-256 of the key is stored.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL,      -- the public prefix of the key
    key_hash   TEXT NOT NULL,
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,                  -- space-separated
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
