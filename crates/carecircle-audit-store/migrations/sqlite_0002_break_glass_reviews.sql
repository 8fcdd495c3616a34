-- Governance leads' reviews of break-glass uses: one per break-glass entry (`entry_seq`, the
-- audit entry of action break-glass), never changed once recorded. The review itself is also an
-- audit entry (`review_seq`), so the log shows who reviewed what and when.
CREATE TABLE IF NOT EXISTS break_glass_reviews (
    entry_seq INTEGER PRIMARY KEY,
    outcome TEXT NOT NULL,            -- justified, not-justified, referred
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,           -- the governance lead's user id
    organisation TEXT,
    reviewed_ms INTEGER NOT NULL,
    review_seq INTEGER NOT NULL
);

CREATE TRIGGER IF NOT EXISTS break_glass_reviews_no_update BEFORE UPDATE ON break_glass_reviews
BEGIN SELECT RAISE(ABORT, 'a break-glass review cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS break_glass_reviews_no_delete BEFORE DELETE ON break_glass_reviews
BEGIN SELECT RAISE(ABORT, 'a break-glass review cannot be changed'); END;

-- The review queue lists break-glass entries by time.
CREATE INDEX IF NOT EXISTS audit_entries_break_glass ON audit_entries (seq) WHERE action = 10;
