-- Indexes for the ingest log's filters (`GET /admin/ingest?provider=…&outcome=…&event_type=…`).
-- Without them a filter that matches few rows (or none) walks the whole table newest first;
-- with them every filter reads only matching rows, in id order, at any table size.
CREATE INDEX ingest_by_provider ON ingest (provider, id);
CREATE INDEX ingest_by_outcome ON ingest (outcome, id);
CREATE INDEX ingest_by_event_type ON ingest (event_type, id);
