//! The SQLite audit backend: its own database file, WAL with synchronous FULL so a commit is
//! durable when it returns, one writer connection, a few readers and a checkpointer thread that
//! copies the WAL into the database beside the writer (not inside its commits), all used off the
//! async runtime. Verification reads two halves of the log on two threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use carecircle_audit::merkle::Hash;
use carecircle_audit::{AuditRecord, Tamper, Verifier, VerifyReport};

use crate::time_blocks::{TimeBlocks, TimeRange, TIME_BLOCK};
use crate::verification::{combine, verify_ranges, Piece, RangeChecker};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::batch::{now_ms, prepare, Sealer, State, StoredColumns};
use crate::{
    backend_error, AuditStoreError, Backend, BreakGlassCount, BreakGlassReview, Period, ReviewFilter, SignedCheckpoint,
    UnusualAccess,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite_0001_audit.sql")),
    (2, include_str!("../migrations/sqlite_0002_break_glass_reviews.sql")),
    (3, include_str!("../migrations/sqlite_0003_time_blocks.sql")),
];
const N_READERS: usize = 2;
/// The checkpointer copies the WAL into the database at most this often while entries are
/// written: each copy writes a page once however often batches touched it in the meantime.
const WAL_CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);
/// If the checkpointer falls behind, the writer checkpoints itself once the WAL holds this many
/// pages (SQLite's own automatic checkpoint, as a backstop).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

pub(crate) struct SqliteAudit {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Wakes the checkpointer after a commit; dropping it stops the checkpointer.
    wal_written: Mutex<SyncSender<()>>,
}

/// The writer's page cache, in KiB. The writer only appends (the right edge of each B-tree plus
/// the index pages its rows land on), so a small cache holds what it touches; and SQLite scans
/// the whole page-cache hash table at the end of every write transaction, so a large cache
/// (the readers' 64 MB) cost 7.5% of the server's CPU under a read load with auditing on.
const WRITER_CACHE_KIB: i64 = 4096;

fn open_connection(path: &Path) -> Result<Connection, AuditStoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(backend_error)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; \
             PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
        )
        .map_err(backend_error)?;
    Ok(connection)
}

fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection leaves no half-done transaction behind (it rolls back
    // on drop), so a poisoned lock is safe to take over.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteAudit {
    pub(crate) fn open(path: &Path) -> Result<SqliteAudit, AuditStoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(backend_error)?;
        }
        let writer = open_connection(path)?;
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}; PRAGMA journal_size_limit = 67108864; \
                 PRAGMA cache_size = -{WRITER_CACHE_KIB};"
            ))
            .map_err(backend_error)?;
        let readers = (0..N_READERS).map(|_| open_connection(path).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        let checkpointer = open_connection(path)?;
        let (wal_written, wakeups) = sync_channel(1);
        std::thread::Builder::new()
            .name("audit-wal-checkpoint".into())
            .spawn(move || checkpoint_wal(&checkpointer, &wakeups))
            .map_err(backend_error)?;
        Ok(SqliteAudit {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                wal_written: Mutex::new(wal_written),
            }),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, AuditStoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let connection = lock(&inner.readers[n]);
            work(&connection).map_err(backend_error)
        })
        .await
        .map_err(backend_error)?
    }
}

/// The checkpointer thread: after commits, at most every [`WAL_CHECKPOINT_PERIOD`], copies the
/// WAL into the database without blocking the writer (a passive checkpoint); ends when the store
/// is dropped.
fn checkpoint_wal(connection: &Connection, wakeups: &Receiver<()>) {
    let mut last = std::time::Instant::now();
    while wakeups.recv().is_ok() {
        let since = last.elapsed();
        if since < WAL_CHECKPOINT_PERIOD {
            std::thread::sleep(WAL_CHECKPOINT_PERIOD - since);
        }
        // Commits made while sleeping are covered by this checkpoint.
        while wakeups.try_recv().is_ok() {}
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "audit WAL checkpoint failed; the writer's automatic checkpoint remains");
        }
        last = std::time::Instant::now();
    }
}

fn read_state(connection: &Connection) -> Result<State, AuditStoreError> {
    let row = connection
        .query_row(
            "SELECT tree_size, frontier, checkpoint_size, checkpoint_ms FROM audit_state WHERE id = 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?)),
        )
        .optional()
        .map_err(backend_error)?;
    match row {
        None => Ok(State::empty()),
        Some((size, frontier, checkpoint_size, checkpoint_ms)) => {
            State::from_stored(size as u64, &frontier, checkpoint_size as u64, checkpoint_ms)
        }
    }
}

fn append_blocking(
    inner: &Inner,
    records: &[AuditRecord],
    sealer: &Sealer,
    force: bool,
) -> Result<(u64, Option<SignedCheckpoint>), AuditStoreError> {
    let mut connection = lock(&inner.writer);
    // IMMEDIATE takes the write lock first, so the state read below is the one this
    // transaction extends even if another process writes the same file.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend_error)?;
    let state = read_state(&tx)?;
    let first = state.frontier.size();
    let prepared = prepare(state, records, sealer, force, now_ms());
    if prepared.is_empty() {
        return Ok((first, None));
    }
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO audit_entries (seq, recorded_ms, action, user_id, organisation, patient_id, break_glass, \
                 in_care, content, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(backend_error)?;
        for row in &prepared.rows {
            insert
                .execute(params![
                    row.seq as i64,
                    row.recorded_ms,
                    row.action,
                    row.user_id,
                    row.organisation,
                    row.patient_id,
                    row.break_glass,
                    row.in_care,
                    row.content,
                    row.leaf_hash.as_slice(),
                ])
                .map_err(backend_error)?;
        }
        let mut subtree = tx
            .prepare_cached("INSERT INTO audit_subtrees (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(backend_error)?;
        for (level, index, hash) in &prepared.subtrees {
            subtree.execute(params![level, *index as i64, hash.as_slice()]).map_err(backend_error)?;
        }
        let mut time_block = tx
            .prepare_cached(
                "INSERT INTO audit_time_blocks (block, min_ms, max_ms) VALUES (?1, ?2, ?3) ON CONFLICT (block) \
                 DO UPDATE SET min_ms = MIN(min_ms, excluded.min_ms), max_ms = MAX(max_ms, excluded.max_ms)",
            )
            .map_err(backend_error)?;
        let blocks = crate::time_blocks::of_batch(prepared.rows.iter().map(|row| (row.seq, row.recorded_ms)));
        for (block, range) in blocks {
            time_block.execute(params![block, range.min_ms, range.max_ms]).map_err(backend_error)?;
        }
    }
    tx.execute(
        "INSERT INTO audit_state (id, tree_size, frontier, checkpoint_size, checkpoint_ms) VALUES (1, ?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, frontier = excluded.frontier, \
         checkpoint_size = excluded.checkpoint_size, checkpoint_ms = excluded.checkpoint_ms",
        params![
            prepared.state.frontier.size() as i64,
            prepared.state.frontier_bytes(),
            prepared.state.checkpoint_size as i64,
            prepared.state.checkpoint_ms
        ],
    )
    .map_err(backend_error)?;
    let checkpoint = match prepared.checkpoint {
        Some(c) => {
            tx.execute(
                "INSERT OR REPLACE INTO audit_checkpoints (tree_size, created_ms, note) VALUES (?1, ?2, ?3)",
                params![c.tree_size as i64, c.created_ms, c.note],
            )
            .map_err(backend_error)?;
            Some(SignedCheckpoint { tree_size: c.tree_size, created_ms: c.created_ms, note: c.note })
        }
        None => None,
    };
    tx.commit().map_err(backend_error)?;
    drop(connection);
    // A full channel means a wake-up is already pending, which covers this commit too.
    let _ = inner.wal_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).try_send(());
    Ok((first, checkpoint))
}

/// The memory map verification readers ask for (SQLite caps it at its compile-time maximum,
/// 2 GB by default).
const VERIFY_MMAP_PRAGMA: &str = "PRAGMA mmap_size = 4294967296;";

/// Rows a verification reader checks between two hand-overs to the combining thread.
const VERIFY_HANDOVER_ROWS: usize = 8192;

/// The raw value of a column, for the verification readers.
fn raw<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<rusqlite::types::ValueRef<'r>, AuditStoreError> {
    row.get_ref(index).map_err(backend_error)
}

fn integer(value: rusqlite::types::ValueRef<'_>) -> Result<i64, AuditStoreError> {
    value.as_i64().map_err(backend_error)
}

fn bytes(value: rusqlite::types::ValueRef<'_>) -> Result<Option<&[u8]>, AuditStoreError> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Ok(Some(bytes)),
        other => Err(backend_error(format!("a text or blob column holds {:?}", other.data_type()))),
    }
}

/// Checks the entries with `from <= seq < until` in order and hands the pieces on.
/// Returns the time ranges of the blocks it read.
fn check_range(path: &Path, from: i64, until: i64, checkpoints: Vec<u64>, out: Sender<Vec<Piece>>) -> TimeBlocks {
    let mut checker = RangeChecker::new(checkpoints);
    let mut time_blocks = TimeBlocks::default();
    let result = (|| -> Result<(), AuditStoreError> {
        let connection = open_connection(path)?;
        // Reading through a memory map saves a system call and a copy per page.
        connection.execute_batch(VERIFY_MMAP_PRAGMA).map_err(backend_error)?;
        let mut statement = connection
            .prepare(
                "SELECT seq, content, leaf_hash, recorded_ms, action, user_id, organisation, patient_id, break_glass, \
                 in_care FROM audit_entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .map_err(backend_error)?;
        let mut rows = statement.query(params![from, until]).map_err(backend_error)?;
        let mut since_handover = 0;
        while let Some(row) = rows.next().map_err(backend_error)? {
            let seq = integer(raw(row, 0)?)? as u64;
            let content = bytes(raw(row, 1)?)?.unwrap_or_default();
            let leaf = bytes(raw(row, 2)?)?.unwrap_or_default();
            let columns = StoredColumns {
                recorded_ms: integer(raw(row, 3)?)?,
                action: integer(raw(row, 4)?)?,
                user_id: bytes(raw(row, 5)?)?.unwrap_or_default(),
                organisation: bytes(raw(row, 6)?)?,
                patient_id: bytes(raw(row, 7)?)?,
                break_glass: integer(raw(row, 8)?)?,
                in_care: raw(row, 9)?.as_i64_or_null().map_err(backend_error)?,
            };
            if !checker.row(seq, content, leaf, &columns) {
                break;
            }
            time_blocks.add(seq as i64, columns.recorded_ms);
            since_handover += 1;
            if since_handover == VERIFY_HANDOVER_ROWS {
                since_handover = 0;
                if out.send(checker.take_pieces()).is_err() {
                    // The combining side stopped at a finding; nothing more is needed.
                    return Ok(());
                }
            }
        }
        Ok(())
    })();
    if let Err(error) = result {
        checker.fail(error);
    }
    let _ = out.send(checker.finish());
    time_blocks
}

/// The entries of the blocks whose time range meets `?1 <= recorded_ms < ?2`. CROSS JOIN keeps
/// the blocks as the outer loop, so each matching block is one range of `seq`; the unary `+`
/// keeps the planner off the entries' other columns: without statistics it otherwise builds an
/// automatic index over the whole log for every query (measured: 98 s instead of 0.04 s on 10
/// million entries).
fn entries_in_period(conditions: &str) -> String {
    format!(
        "FROM audit_time_blocks b CROSS JOIN audit_entries e \
         ON e.seq >= b.block * {TIME_BLOCK} AND e.seq < (b.block + 1) * {TIME_BLOCK} \
         WHERE b.max_ms >= ?1 AND b.min_ms < ?2 AND +e.recorded_ms >= ?1 AND +e.recorded_ms < ?2 {conditions}"
    )
}

/// `unusual_access`: `?1`, `?2` the period, `?3` the least number of persons.
fn unusual_access_sql() -> String {
    format!(
        "SELECT e.user_id, e.organisation, COUNT(DISTINCT e.patient_id) AS n {} \
         GROUP BY e.user_id, e.organisation HAVING COUNT(DISTINCT e.patient_id) >= ?3 \
         ORDER BY n DESC, e.user_id, e.organisation",
        entries_in_period("AND +e.in_care = 0 AND +e.patient_id IS NOT NULL")
    )
}

/// `break_glass`: `?1`, `?2` the period.
fn break_glass_sql() -> String {
    format!(
        "SELECT e.user_id, e.organisation, SUM(e.break_glass) AS bg, COUNT(*) {} \
         GROUP BY e.user_id, e.organisation HAVING SUM(e.break_glass) > 0 \
         ORDER BY bg DESC, e.user_id, e.organisation",
        entries_in_period("AND +e.patient_id IS NOT NULL")
    )
}

/// The stored time block rows.
fn stored_time_blocks(path: &Path) -> Result<std::collections::BTreeMap<i64, TimeRange>, AuditStoreError> {
    let connection = open_connection(path)?;
    let mut statement = connection
        .prepare("SELECT block, min_ms, max_ms FROM audit_time_blocks ORDER BY block")
        .map_err(backend_error)?;
    let rows = statement
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, TimeRange { min_ms: r.get(1)?, max_ms: r.get(2)? })))
        .map_err(backend_error)?
        .collect::<Result<_, _>>()
        .map_err(backend_error)?;
    Ok(rows)
}

#[async_trait]
impl Backend for SqliteAudit {
    async fn migrate(&self) -> Result<(), AuditStoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = lock(&inner.writer);
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend_error)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS audit_schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .map_err(backend_error)?;
            let applied: i64 = tx
                .query_row("SELECT COALESCE(MAX(version), 0) FROM audit_schema_migrations", [], |r| r.get(0))
                .map_err(backend_error)?;
            for (version, script) in MIGRATIONS {
                if *version > applied {
                    tx.execute_batch(script).map_err(backend_error)?;
                    tx.execute(
                        "INSERT INTO audit_schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                        params![version, now_ms()],
                    )
                    .map_err(backend_error)?;
                }
            }
            tx.commit().map_err(backend_error)
        })
        .await
        .map_err(backend_error)?
    }

    async fn append(
        &self,
        records: Arc<Vec<AuditRecord>>,
        sealer: Arc<Sealer>,
        force_checkpoint: bool,
    ) -> Result<(u64, Option<SignedCheckpoint>), AuditStoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || append_blocking(&inner, &records, &sealer, force_checkpoint))
            .await
            .map_err(backend_error)?
    }

    async fn tree_size(&self) -> Result<u64, AuditStoreError> {
        self.read(|c| {
            c.query_row("SELECT tree_size FROM audit_state WHERE id = 1", [], |r| r.get::<_, i64>(0))
                .optional()
                .map(|size| size.unwrap_or(0) as u64)
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, AuditStoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT tree_size, created_ms, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
                [],
                |r| {
                    Ok(SignedCheckpoint {
                        tree_size: r.get::<_, i64>(0)? as u64,
                        created_ms: r.get(1)?,
                        note: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn checkpoint_notes(&self) -> Result<Vec<String>, AuditStoreError> {
        self.read(|c| {
            let mut statement = c.prepare("SELECT note FROM audit_checkpoints ORDER BY tree_size")?;
            let notes = statement.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(notes)
        })
        .await
    }

    async fn hashes(&self, level: u32, first: u64, count: u64) -> Result<Vec<Hash>, AuditStoreError> {
        let hashes: Vec<Vec<u8>> = self
            .read(move |c| {
                let (first, end) = (first as i64, (first + count) as i64);
                if level == 0 {
                    let mut statement = c.prepare_cached(
                        "SELECT leaf_hash FROM audit_entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
                    )?;
                    let rows = statement.query_map(params![first, end], |r| r.get::<_, Vec<u8>>(0))?.collect();
                    rows
                } else {
                    let mut statement = c.prepare_cached(
                        "SELECT hash FROM audit_subtrees WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
                    )?;
                    let rows = statement.query_map(params![level, first, end], |r| r.get::<_, Vec<u8>>(0))?.collect();
                    rows
                }
            })
            .await?;
        hashes
            .into_iter()
            .map(|h: Vec<u8>| {
                h.try_into().map_err(|_| AuditStoreError::CorruptState("a stored hash is not 32 bytes".into()))
            })
            .collect()
    }

    async fn entry_content(&self, seq: u64) -> Result<Option<Vec<u8>>, AuditStoreError> {
        self.read(move |c| {
            c.query_row("SELECT content FROM audit_entries WHERE seq = ?1", [seq as i64], |r| r.get(0)).optional()
        })
        .await
    }

    async fn verify(&self, verifier: Verifier) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
        let path = self.inner.path.clone();
        let max_seq: Option<i64> =
            self.read(|c| c.query_row("SELECT MAX(seq) FROM audit_entries", [], |r| r.get(0))).await?;
        tokio::task::spawn_blocking(move || {
            let ranges = verify_ranges(max_seq);
            let checkpoints: Vec<u64> = verifier.checkpoint_sizes().collect();
            let mut receivers = Vec::new();
            let mut readers = Vec::new();
            for (from, until) in ranges {
                // Unbounded: the second range is read while the first is combined; what waits is
                // one hash per 256 entries (plus the leaves of blocks holding a checkpoint).
                let (sender, receiver) = channel();
                let (path, checkpoints) = (path.clone(), checkpoints.clone());
                readers.push(std::thread::spawn(move || check_range(&path, from, until, checkpoints, sender)));
                receivers.push(receiver);
            }
            let result = combine(verifier, receivers);
            let mut time_blocks = TimeBlocks::default();
            for reader in readers {
                let seen =
                    reader.join().map_err(|_| AuditStoreError::Backend("a verification reader panicked".into()))?;
                time_blocks.merge(seen);
            }
            // The entries are sound; now the time summaries the reports rely on.
            let report = match result? {
                Ok(report) => report,
                Err(tamper) => return Ok(Err(tamper)),
            };
            let stored = stored_time_blocks(&path)?;
            Ok(crate::time_blocks::check_stored(report.count, &time_blocks.into_blocks(), &stored).map(|()| report))
        })
        .await
        .map_err(backend_error)?
    }

    async fn patient_log(
        &self,
        patient_id: &str,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, AuditStoreError> {
        let patient_id = patient_id.to_string();
        let before = before_seq.map_or(i64::MAX, |s| s as i64);
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT content FROM audit_entries WHERE patient_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = statement.query_map(params![patient_id, before, limit], |r| r.get(0))?.collect();
            rows
        })
        .await
    }

    async fn unusual_access(&self, period: Period, min_persons: u64) -> Result<Vec<UnusualAccess>, AuditStoreError> {
        self.read(move |c| {
            let mut statement = c.prepare_cached(&unusual_access_sql())?;
            let rows = statement
                .query_map(params![period.from_ms, period.until_ms, min_persons as i64], |r| {
                    Ok(UnusualAccess {
                        user_id: r.get(0)?,
                        organisation: r.get(1)?,
                        persons_outside_care: r.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect();
            rows
        })
        .await
    }

    async fn break_glass(&self, period: Period) -> Result<Vec<BreakGlassCount>, AuditStoreError> {
        self.read(move |c| {
            let mut statement = c.prepare_cached(&break_glass_sql())?;
            let rows = statement
                .query_map(params![period.from_ms, period.until_ms], |r| {
                    Ok(BreakGlassCount {
                        user_id: r.get(0)?,
                        organisation: r.get(1)?,
                        break_glass_entries: r.get::<_, i64>(2)? as u64,
                        person_entries: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect();
            rows
        })
        .await
    }

    async fn break_glass_uses(
        &self,
        filter: ReviewFilter,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError> {
        let before = before_seq.map_or(i64::MAX, |s| s as i64);
        let condition = review_condition(filter);
        self.read(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT e.seq, e.content FROM audit_entries e WHERE e.action = 10 AND e.seq < ?1 {condition} \
                 ORDER BY e.seq DESC LIMIT ?2"
            ))?;
            let rows =
                statement.query_map(params![before, limit], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?.collect();
            rows
        })
        .await
    }

    async fn reviews(&self, entry_seqs: &[u64]) -> Result<Vec<BreakGlassReview>, AuditStoreError> {
        let seqs: Vec<i64> = entry_seqs.iter().map(|s| *s as i64).collect();
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT entry_seq, outcome, note, reviewer, organisation, reviewed_ms, review_seq \
                 FROM break_glass_reviews WHERE entry_seq = ?1",
            )?;
            let mut out = Vec::new();
            for seq in seqs {
                if let Some(review) = statement.query_row(params![seq], review_from_row).optional()? {
                    out.push(review);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn insert_review(&self, review: &BreakGlassReview) -> Result<bool, AuditStoreError> {
        let inner = self.inner.clone();
        let review = review.clone();
        tokio::task::spawn_blocking(move || {
            let connection = lock(&inner.writer);
            connection
                .execute(
                    "INSERT INTO break_glass_reviews \
                     (entry_seq, outcome, note, reviewer, organisation, reviewed_ms, review_seq) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (entry_seq) DO NOTHING",
                    params![
                        review.entry_seq as i64,
                        review.outcome.code(),
                        review.note,
                        review.reviewer,
                        review.organisation,
                        review.reviewed_ms,
                        review.review_seq as i64
                    ],
                )
                .map(|n| n == 1)
                .map_err(backend_error)
        })
        .await
        .map_err(backend_error)?
    }
}

/// The SQL condition (on `e`) selecting pending or reviewed break-glass entries.
fn review_condition(filter: ReviewFilter) -> &'static str {
    match filter {
        ReviewFilter::Pending => "AND NOT EXISTS (SELECT 1 FROM break_glass_reviews r WHERE r.entry_seq = e.seq)",
        ReviewFilter::Reviewed => "AND EXISTS (SELECT 1 FROM break_glass_reviews r WHERE r.entry_seq = e.seq)",
        ReviewFilter::All => "",
    }
}

fn review_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BreakGlassReview> {
    let outcome: String = r.get(1)?;
    Ok(BreakGlassReview {
        entry_seq: r.get::<_, i64>(0)? as u64,
        outcome: outcome
            .parse()
            .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into()))?,
        note: r.get(2)?,
        reviewer: r.get(3)?,
        organisation: r.get(4)?,
        reviewed_ms: r.get(5)?,
        review_seq: r.get::<_, i64>(6)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The period reports must read the entries by `seq` range per block, never scan the log or
    /// build an index over it.
    #[tokio::test]
    async fn period_reports_read_entries_by_block_ranges() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteAudit::open(&dir.path().join("audit.db")).expect("open");
        store.migrate().await.expect("migrate");
        let connection = open_connection(&dir.path().join("audit.db")).expect("connect");
        for sql in [unusual_access_sql(), break_glass_sql()] {
            let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
            let plan: Vec<String> = statement
                .query_map(
                    rusqlite::params_from_iter([0_i64, 1, 1].into_iter().take(statement.parameter_count())),
                    |r| r.get(3),
                )
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            let plan = plan.join("; ");
            assert!(plan.contains("SCAN b"), "{plan}");
            assert!(plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), "{plan}");
            assert!(!plan.contains("AUTOMATIC") && !plan.contains("SCAN e"), "{plan}");
        }
    }
}
