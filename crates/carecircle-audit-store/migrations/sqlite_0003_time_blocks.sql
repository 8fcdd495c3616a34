-- The time index becomes one row per 4,096 entries: the least and greatest `recorded_ms` of the
-- entries numbered block * 4096 .. block * 4096 + 4095. A batch updates the row(s) of the
-- block(s) it writes to (one page), where the per-entry index dirtied a page per caller and per
-- commit. Reports scan the entries of the blocks whose range meets their period; `audit verify`
-- checks every row against the entries.
CREATE TABLE IF NOT EXISTS audit_time_blocks (
    block INTEGER PRIMARY KEY,
    min_ms INTEGER NOT NULL,
    max_ms INTEGER NOT NULL
);
INSERT OR REPLACE INTO audit_time_blocks (block, min_ms, max_ms)
    SELECT seq >> 12, MIN(recorded_ms), MAX(recorded_ms) FROM audit_entries GROUP BY seq >> 12;
DROP INDEX IF EXISTS audit_entries_time;
