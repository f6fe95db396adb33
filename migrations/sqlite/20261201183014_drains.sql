-- Drains (issue 14): `[[drains]]` stream what the gateway records (ingest rows, delivery
-- attempts, processing outcomes) to an observability sink.
--
-- `drains` mirrors the config file's drains (rewritten at start) and keeps each drain's persisted
-- progress. `drain_outbox` is the feed: one narrow row per record per drain that wants that kind,
-- written by the triggers below in the same transaction as the thing it records, whatever code
-- path wrote it. A drain reads its own rows in `seq` order and deletes them after its sink
-- answered 2xx, so a row that commits late (PostgreSQL sequences can commit out of order) is
-- simply read later: nothing is skipped. With no drain configured the triggers insert nothing.

CREATE TABLE drains (
    id              TEXT PRIMARY KEY NOT NULL,   -- [A-Za-z0-9_-]{1,64}
    kind            TEXT NOT NULL,               -- otlp_http | http
    url             TEXT NOT NULL,
    rec_ingest      BOOLEAN NOT NULL,
    rec_delivery    BOOLEAN NOT NULL,
    rec_processing  BOOLEAN NOT NULL,
    position        BIGINT NOT NULL DEFAULT 0,   -- the highest outbox seq sent (2xx)
    sent            BIGINT NOT NULL DEFAULT 0,   -- records sent (2xx), all time
    last_success_at BIGINT,                      -- epoch ms
    claimed_by      TEXT,                        -- the process sending for this drain
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE drain_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    drain_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,                  -- ingest | delivery | processing
    ingest_id    TEXT,                           -- ingest and processing records
    delivery_seq BIGINT,                         -- delivery records: the attempt's key
    attempt      BIGINT,
    status       TEXT,                           -- the ingest row's status at the time
    reason       TEXT,                           -- processing: the status reason at the time
    at           BIGINT NOT NULL                 -- epoch ms of the record
);
CREATE INDEX drain_outbox_by_drain ON drain_outbox (drain_id, seq);

CREATE TRIGGER drain_ingest AFTER INSERT ON ingest
BEGIN
    INSERT INTO drain_outbox (drain_id, kind, ingest_id, status, at)
    SELECT d.id, 'ingest', NEW.id, NEW.status, NEW.received_at FROM drains d WHERE d.rec_ingest;
END;

-- Every processing outcome sets `processed_at` (the pipeline's one status write).
CREATE TRIGGER drain_processing AFTER UPDATE OF processed_at ON ingest
BEGIN
    INSERT INTO drain_outbox (drain_id, kind, ingest_id, status, reason, at)
    SELECT d.id, 'processing', NEW.id, NEW.status, NEW.status_reason, COALESCE(NEW.processed_at, 0)
    FROM drains d WHERE d.rec_processing;
END;

CREATE TRIGGER drain_delivery AFTER INSERT ON delivery_attempts
BEGIN
    INSERT INTO drain_outbox (drain_id, kind, delivery_seq, attempt, at)
    SELECT d.id, 'delivery', NEW.delivery_seq, NEW.attempt, NEW.started_at + NEW.duration_ms
    FROM drains d WHERE d.rec_delivery;
END;
