//! The SQLite audit backend: its own database file, WAL with synchronous FULL so a commit is
//! durable when it returns, one writer connection and a few readers, all used off the async
//! runtime. Verification reads rows on one thread and hashes on another.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use carecircle_audit::merkle::Hash;
use carecircle_audit::{AuditRecord, Tamper, Verifier, VerifyReport};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::batch::{check_columns, now_ms, prepare, Sealer, State, StoredColumns};
use crate::{backend_error, AuditStoreError, Backend, BreakGlassCount, Period, SignedCheckpoint, UnusualAccess};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite_0001_audit.sql"))];
const N_READERS: usize = 2;
/// Rows per chunk handed from the reading thread to the hashing thread during verification.
const VERIFY_CHUNK: usize = 8192;

pub(crate) struct SqliteAudit {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

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
        let readers = (0..N_READERS).map(|_| open_connection(path).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteAudit {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
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
    Ok((first, checkpoint))
}

/// Rows read for verification, handed to the hashing thread.
struct Chunk {
    seqs: Vec<u64>,
    leaves: Vec<Hash>,
    content: Vec<u8>,
    ends: Vec<usize>,
    /// A problem with the index columns of the last row of the chunk.
    column_tamper: Option<Tamper>,
    /// A storage failure, after the rows of the chunk.
    failure: Option<AuditStoreError>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            seqs: Vec::with_capacity(VERIFY_CHUNK),
            leaves: Vec::with_capacity(VERIFY_CHUNK),
            content: Vec::with_capacity(VERIFY_CHUNK * 160),
            ends: Vec::with_capacity(VERIFY_CHUNK),
            column_tamper: None,
            failure: None,
        }
    }
}

/// Reads every entry in sequence order, checks its index columns, and sends it on in chunks.
fn read_entries(path: &Path, chunks: SyncSender<Chunk>) {
    let mut chunk = Chunk::new();
    let result = (|| -> Result<(), AuditStoreError> {
        let connection = open_connection(path)?;
        let mut statement = connection
            .prepare(
                "SELECT seq, content, leaf_hash, recorded_ms, action, user_id, organisation, patient_id, break_glass, \
                 in_care FROM audit_entries ORDER BY seq",
            )
            .map_err(backend_error)?;
        let mut rows = statement.query([]).map_err(backend_error)?;
        while let Some(row) = rows.next().map_err(backend_error)? {
            let seq = row.get::<_, i64>(0).map_err(backend_error)? as u64;
            let content = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(backend_error)?;
            let leaf = row.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(backend_error)?;
            let columns = StoredColumns {
                recorded_ms: row.get(3).map_err(backend_error)?,
                action: row.get(4).map_err(backend_error)?,
                user_id: row.get_ref(5).and_then(|v| Ok(v.as_str()?)).map_err(backend_error)?,
                organisation: row.get_ref(6).and_then(|v| Ok(v.as_str_or_null()?)).map_err(backend_error)?,
                patient_id: row.get_ref(7).and_then(|v| Ok(v.as_str_or_null()?)).map_err(backend_error)?,
                break_glass: row.get(8).map_err(backend_error)?,
                in_care: row.get(9).map_err(backend_error)?,
            };
            chunk.seqs.push(seq);
            // A stored leaf hash of the wrong length can never match: keep it as all zeros.
            chunk.leaves.push(leaf.try_into().unwrap_or([0; 32]));
            chunk.content.extend_from_slice(content);
            chunk.ends.push(chunk.content.len());
            if let Err(tamper) = check_columns(seq, content, &columns) {
                chunk.column_tamper = Some(tamper);
                break;
            }
            if chunk.seqs.len() == VERIFY_CHUNK {
                let full = std::mem::replace(&mut chunk, Chunk::new());
                if chunks.send(full).is_err() {
                    // The hashing side stopped at a finding; nothing more is needed.
                    return Ok(());
                }
            }
        }
        Ok(())
    })();
    if let Err(error) = result {
        chunk.failure = Some(error);
    }
    let _ = chunks.send(chunk);
}

fn hash_entries(
    mut verifier: Verifier,
    chunks: Receiver<Chunk>,
) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
    for chunk in chunks {
        let mut start = 0;
        for i in 0..chunk.seqs.len() {
            let end = chunk.ends[i];
            if let Err(tamper) = verifier.push(chunk.seqs[i], &chunk.content[start..end], &chunk.leaves[i]) {
                return Ok(Err(tamper));
            }
            start = end;
        }
        if let Some(tamper) = chunk.column_tamper {
            return Ok(Err(tamper));
        }
        if let Some(failure) = chunk.failure {
            return Err(failure);
        }
    }
    Ok(verifier.finish())
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
        tokio::task::spawn_blocking(move || {
            let (sender, receiver) = sync_channel(4);
            let reader = std::thread::spawn(move || read_entries(&path, sender));
            let result = hash_entries(verifier, receiver);
            reader.join().map_err(|_| AuditStoreError::Backend("the verification reader panicked".into()))?;
            result
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
            let mut statement = c.prepare_cached(
                "SELECT user_id, organisation, COUNT(DISTINCT patient_id) AS n FROM audit_entries \
                 WHERE recorded_ms >= ?1 AND recorded_ms < ?2 AND in_care = 0 AND patient_id IS NOT NULL \
                 GROUP BY user_id, organisation HAVING COUNT(DISTINCT patient_id) >= ?3 \
                 ORDER BY n DESC, user_id, organisation",
            )?;
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
            let mut statement = c.prepare_cached(
                "SELECT user_id, organisation, SUM(break_glass) AS bg, COUNT(*) FROM audit_entries \
                 WHERE recorded_ms >= ?1 AND recorded_ms < ?2 AND patient_id IS NOT NULL \
                 GROUP BY user_id, organisation HAVING SUM(break_glass) > 0 \
                 ORDER BY bg DESC, user_id, organisation",
            )?;
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
}
