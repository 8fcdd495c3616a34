-- The audit log (SQLite). Entries are append-only: triggers refuse updates and deletes, and the
-- Merkle tree over `content` makes any change made around them detectable.
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY,          -- the leaf index, from 0
    recorded_ms INTEGER NOT NULL,     -- copies of hashed fields, for queries; verify checks them
    action INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    organisation TEXT,
    patient_id TEXT,
    break_glass INTEGER NOT NULL,
    in_care INTEGER,                  -- NULL: not known
    content BLOB NOT NULL,            -- the canonical encoding (carecircle_audit::record)
    leaf_hash BLOB NOT NULL           -- SHA-256(0x00 || content)
);
CREATE INDEX IF NOT EXISTS audit_entries_patient ON audit_entries (patient_id, seq) WHERE patient_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (recorded_ms);

-- Hashes of the complete subtrees at levels 8, 16, 24, ...: enough to build any proof from at
-- most a few hundred stored hashes.
CREATE TABLE IF NOT EXISTS audit_subtrees (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Signed checkpoints (C2SP tlog-checkpoint notes).
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    note TEXT NOT NULL
);

-- The writer's state: tree size, frontier, and the last checkpoint, updated with every batch.
CREATE TABLE IF NOT EXISTS audit_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size INTEGER NOT NULL,
    frontier BLOB NOT NULL,
    checkpoint_size INTEGER NOT NULL,
    checkpoint_ms INTEGER NOT NULL
);

CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

INSERT OR IGNORE INTO audit_state (id, tree_size, frontier, checkpoint_size, checkpoint_ms) VALUES (1, 0, x'', 0, 0);
