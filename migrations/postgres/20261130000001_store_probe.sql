-- One row that `/readyz` rewrites after a failed commit, to prove the store can commit again.
-- A write that changes nothing (or a rolled-back one) never reaches the disk, so it cannot tell
-- a store whose files became unwritable from a healthy one.
CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY,
    probed_at BIGINT NOT NULL         -- epoch ms
);
