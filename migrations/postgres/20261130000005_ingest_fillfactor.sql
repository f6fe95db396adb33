-- Leave room in each ingest page so the claim's update (lease columns only, none indexed) can be
-- a heap-only tuple update: without room every update writes a new entry into each of the
-- table's indexes, and an event is updated twice on its way through the pipeline.
ALTER TABLE ingest SET (fillfactor = 70);
