-- Headers and bodies move out of `ingest` into a table of their own, written once and never
-- updated. An ingest row is updated twice as it is processed (claimed, then finished); with the
-- body inline every update rewrote a page holding little more than that one row (a 2 KiB body
-- fills half a page), so processing wrote about as much as receiving. Without it a row is a few
-- hundred bytes and an update rewrites a page shared by a dozen rows.
CREATE TABLE ingest_payloads (
    id      TEXT PRIMARY KEY,                  -- ingest.id (rows are written in the same transaction)
    headers TEXT NOT NULL,                     -- JSON [[name, value], ...], secrets redacted
    body    BYTEA NOT NULL
);
INSERT INTO ingest_payloads (id, headers, body) SELECT id, headers, body FROM ingest;
ALTER TABLE ingest DROP COLUMN headers;
ALTER TABLE ingest DROP COLUMN body;
