-- Governance leads' reviews of break-glass uses: one per break-glass entry (`entry_seq`, the
-- audit entry of action break-glass), never changed once recorded. The review itself is also an
-- audit entry (`review_seq`), so the log shows who reviewed what and when.
CREATE TABLE IF NOT EXISTS break_glass_reviews (
    entry_seq BIGINT PRIMARY KEY,
    outcome TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    organisation TEXT,
    reviewed_ms BIGINT NOT NULL,
    review_seq BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION break_glass_reviews_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a break-glass review cannot be changed';
END;
$$;
DROP TRIGGER IF EXISTS break_glass_reviews_fixed ON break_glass_reviews;
CREATE TRIGGER break_glass_reviews_fixed BEFORE UPDATE OR DELETE ON break_glass_reviews
    FOR EACH ROW EXECUTE FUNCTION break_glass_reviews_fixed();

-- The review queue lists break-glass entries by sequence number.
CREATE INDEX IF NOT EXISTS audit_entries_break_glass ON audit_entries (seq) WHERE action = 10;
