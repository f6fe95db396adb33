-- PostgreSQL only (page fill factor for heap-only updates); SQLite updates rows in place.
-- Kept so both directories hold the same migrations, version for version.
SELECT 1;
