//! The embedded SQLite backend of the record store: one file in the data directory, WAL mode,
//! one writer connection and a small pool of readers, all used off the async runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use carecircle_fhir::search::{Include, SearchQuery, Summary};
use carecircle_store::sql::{self, Dialect, SearchShape, SqlValue, Statement};
use carecircle_store::{now_millis, HistoryQuery, Page, Store, StoreError, StoredResource, WriteOp, WriteOutcome};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

mod write;

/// Numbered migrations, applied in order and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../migrations/0001_init.sql")), (2, include_str!("../migrations/0002_reference_lookup.sql"))];

/// Reader connections: enough for concurrent requests on a small machine.
const N_READERS: usize = 4;

/// The SQLite record store.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Only asks `PRAGMA data_version`, which changes whenever any other connection (this
    /// store's writer or another process) commits: the store's [`Store::write_generation`].
    watch: Mutex<Connection>,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    // Each connection is only ever used under its own Mutex (see `Inner`), so SQLite's
    // per-connection mutex is redundant; opening without it saves a lock per step.
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(backend)?;
    // WAL lets readers run beside the writer; FULL sync makes every acknowledged commit durable;
    // the busy timeout covers a second process (e.g. `import` while `serve` runs); memory-mapped
    // reads (up to SQLite's 2 GiB cap) spare a system call and a copy per page on large stores.
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
             PRAGMA mmap_size = 2147418112;",
        )
        .map_err(backend)?;
    connection.set_prepared_statement_cache_capacity(256);
    Ok(connection)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir/carecircle.db`. Call
    /// [`Store::migrate`] before use.
    pub fn open_dir(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| backend(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        SqliteStore::open(&data_dir.join("carecircle.db"))
    }

    /// Opens (creating if needed) the store in the database file `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let writer = open_connection(path)?;
        let readers = (0..N_READERS).map(|_| open_connection(path).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                watch: Mutex::new(open_connection(path)?),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let connection = lock(&inner.readers[n]);
            f(&connection)
        })
        .await
        .map_err(backend)?
    }

    /// A point read (one row by primary key, a few pages, usually cached or memory-mapped) runs
    /// on the caller's thread when a reader connection is free: handing it to the blocking pool
    /// and back costs more than the read itself (two thread wake-ups per request under load).
    /// When every reader is busy it goes to the pool like any other read.
    async fn with_reader_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        let readers = &self.inner.readers;
        for k in 0..readers.len() {
            if let Ok(connection) = readers[(start + k) % readers.len()].try_lock() {
                return f(&connection);
            }
        }
        self.with_reader(f).await
    }

    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = lock(&inner.writer);
            f(&mut connection)
        })
        .await
        .map_err(backend)?
    }
}

/// Locks a connection, recovering it if a previous holder panicked: a rusqlite connection stays
/// usable, and any transaction it held was rolled back when dropped.
fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn to_sql(value: &SqlValue) -> rusqlite::types::Value {
    match value {
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
        SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
        SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
    }
}

fn row_to_resource(row: &Row<'_>) -> rusqlite::Result<StoredResource> {
    Ok(StoredResource {
        resource_type: row.get(0)?,
        id: row.get(1)?,
        version: row.get(2)?,
        last_updated: row.get(3)?,
        deleted: row.get::<_, i64>(4)? != 0,
        custodian: row.get(5)?,
        body: row.get(6)?,
    })
}

fn query_resources(connection: &Connection, statement: &Statement) -> Result<Vec<StoredResource>, StoreError> {
    let mut prepared = connection.prepare_cached(&statement.sql).map_err(backend)?;
    let rows =
        prepared.query_map(params_from_iter(statement.values.iter().map(to_sql)), row_to_resource).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn query_count(connection: &Connection, statement: &Statement) -> Result<usize, StoreError> {
    let mut prepared = connection.prepare_cached(&statement.sql).map_err(backend)?;
    let n: i64 =
        prepared.query_row(params_from_iter(statement.values.iter().map(to_sql)), |row| row.get(0)).map_err(backend)?;
    Ok(n as usize)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn write_generation(&self) -> Option<u64> {
        // A read of the WAL index in shared memory (no disk access): cheap enough to call
        // inline, and it sees commits made by other processes (an `import` beside `serve`) too.
        let connection = lock(&self.inner.watch);
        let mut statement = connection.prepare_cached("PRAGMA data_version").ok()?;
        statement.query_row([], |row| row.get::<_, i64>(0)).ok().map(|v| v as u64)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.with_writer(|connection| {
            let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
            tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
                .map_err(backend)?;
            let applied: i64 =
                tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0)).map_err(backend)?;
            for (version, script) in MIGRATIONS {
                if *version > applied {
                    // Migrations that rebuild an index take a while on a large store: say so.
                    tracing::info!(version, "applying sqlite migration");
                    tx.execute_batch(script).map_err(|e| backend(format!("migration {version}: {e}")))?;
                    tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", params![version, now_millis()])
                        .map_err(backend)?;
                    tracing::info!(version, "applied sqlite migration");
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let (resource_type, id) = (resource_type.to_string(), id.to_string());
        self.with_reader_point(move |connection| {
            connection
                .prepare_cached(
                    "SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resources WHERE res_type = ?1 AND res_id = ?2",
                )
                .map_err(backend)?
                .query_row(params![resource_type, id], row_to_resource)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (resource_type, id) = (resource_type.to_string(), id.to_string());
        self.with_reader_point(move |connection| {
            connection
                .prepare_cached(
                    "SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resources WHERE res_type = ?1 AND res_id = ?2 AND version = ?3 \
                     UNION ALL SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resource_versions WHERE res_type = ?1 AND res_id = ?2 AND version = ?3",
                )
                .map_err(backend)?
                .query_row(params![resource_type, id, version], row_to_resource)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn apply(&self, writes: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.with_writer(move |connection| write::apply_writes(connection, writes)).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page, StoreError> {
        let query = query.clone();
        self.with_reader(move |connection| {
            // With several index filters, drive from the one with the fewest matches.
            let mut estimates = Vec::new();
            for (i, statement) in sql::driver_estimates(Dialect::Sqlite, &query) {
                estimates.push((i, query_count(connection, &statement)?));
            }
            let driver = sql::choose_driver(&estimates);
            let count_statement =
                sql::search_statement_with_driver(Dialect::Sqlite, &query, SearchShape::Count, driver);
            let page_statement = (query.summary != Some(Summary::Count) && query.count > 0)
                .then(|| sql::search_statement_with_driver(Dialect::Sqlite, &query, SearchShape::Page, driver));
            let offset = query.offset;
            let Some(statement) = page_statement else {
                return Ok(Page { entries: Vec::new(), total: query_count(connection, &count_statement)? });
            };
            let mut prepared = connection.prepare_cached(&statement.sql).map_err(backend)?;
            let rows = prepared
                .query_map(params_from_iter(statement.values.iter().map(to_sql)), |row| {
                    Ok((row_to_resource(row)?, row.get::<_, i64>(7)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let total = match rows.first() {
                Some((_, n)) => *n as usize,
                None if offset == 0 => 0,
                None => query_count(connection, &count_statement)?,
            };
            Ok(Page { entries: rows.into_iter().map(|(r, _)| r).collect(), total })
        })
        .await
    }

    async fn include(&self, sources: &[StoredResource], include: &Include) -> Result<Vec<StoredResource>, StoreError> {
        let sources = sql::include_sources(sources, include);
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sql::include_targets_statement(
            Dialect::Sqlite,
            &sources,
            &include.source_type,
            &include.param,
            include.target_type.as_deref(),
        );
        self.with_reader(move |connection| {
            let mut prepared = connection.prepare_cached(&statement.sql).map_err(backend)?;
            let targets = prepared
                .query_map(params_from_iter(statement.values.iter().map(to_sql)), |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(backend)?
                .collect::<Result<Vec<(String, String)>, _>>()
                .map_err(backend)?;
            if targets.is_empty() {
                return Ok(Vec::new());
            }
            query_resources(connection, &sql::read_many_statement(Dialect::Sqlite, &targets))
        })
        .await
    }

    async fn revinclude(
        &self,
        targets: &[StoredResource],
        include: &Include,
    ) -> Result<Vec<StoredResource>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let statement =
            sql::revinclude_statement(Dialect::Sqlite, &sql::keys_of(targets), &include.source_type, &include.param);
        self.with_reader(move |connection| query_resources(connection, &statement)).await
    }

    async fn patient_compartment(&self, patient_id: &str, count: usize, offset: usize) -> Result<Page, StoreError> {
        let (page, total) = sql::compartment_statements(Dialect::Sqlite, patient_id, count, offset);
        self.with_reader(move |connection| {
            Ok(Page { total: query_count(connection, &total)?, entries: query_resources(connection, &page)? })
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError> {
        let (page, total) = sql::history_statements(Dialect::Sqlite, query);
        self.with_reader(move |connection| {
            Ok(Page { total: query_count(connection, &total)?, entries: query_resources(connection, &page)? })
        })
        .await
    }
}
