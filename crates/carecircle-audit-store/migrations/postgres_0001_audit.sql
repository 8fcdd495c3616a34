-- The audit log (PostgreSQL). Entries are append-only: a trigger refuses updates and deletes,
-- and the Merkle tree over `content` makes any change made around it detectable.
CREATE TABLE IF NOT EXISTS audit_entries (
    seq BIGINT PRIMARY KEY,
    recorded_ms BIGINT NOT NULL,
    action SMALLINT NOT NULL,
    user_id TEXT NOT NULL,
    organisation TEXT,
    patient_id TEXT,
    break_glass BOOLEAN NOT NULL,
    in_care BOOLEAN,
    content BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entries_patient ON audit_entries (patient_id, seq) WHERE patient_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (recorded_ms);

CREATE TABLE IF NOT EXISTS audit_subtrees (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    note TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size BIGINT NOT NULL,
    frontier BYTEA NOT NULL,
    checkpoint_size BIGINT NOT NULL,
    checkpoint_ms BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();

INSERT INTO audit_state (id, tree_size, frontier, checkpoint_size, checkpoint_ms) VALUES (1, 0, '\x', 0, 0)
    ON CONFLICT (id) DO NOTHING;
