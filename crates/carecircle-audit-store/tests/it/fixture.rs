//! A fresh audit store per test, with raw access to its rows for tampering.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use carecircle_audit_store::AuditStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

pub enum Raw {
    Sqlite(PathBuf),
    Postgres { pool: PgPool, schema: String },
}

pub struct Fixture {
    pub store: AuditStore,
    pub raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let store = AuditStore::open_sqlite(&path).await.expect("open sqlite audit");
    Fixture { store, raw: Raw::Sqlite(path), _dir: Some(dir) }
}

fn database_url() -> String {
    std::env::var("CARECIRCLE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn unique_schema() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("t_audit_{}_{n}_{nanos}", std::process::id())
}

pub async fn postgres() -> Fixture {
    let schema = unique_schema();
    let store = AuditStore::connect_postgres(&database_url(), Some(&schema)).await.expect("connect postgres audit");
    let set_path = format!("SET search_path TO \"{schema}\"");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .after_connect(move |connection, _| {
            let set_path = set_path.clone();
            Box::pin(async move {
                connection.execute(set_path.as_str()).await?;
                Ok(())
            })
        })
        .connect(&database_url())
        .await
        .expect("raw connection");
    Fixture { store, raw: Raw::Postgres { pool, schema }, _dir: None }
}

impl Fixture {
    /// Another handle on the same log, as a restarted server would open it.
    pub async fn reopen(&self) -> AuditStore {
        match &self.raw {
            Raw::Sqlite(path) => AuditStore::open_sqlite(path).await.expect("reopen"),
            Raw::Postgres { schema, .. } => {
                AuditStore::connect_postgres(&database_url(), Some(schema)).await.expect("reconnect")
            }
        }
    }

    /// Runs SQL written for both dialects, as an attacker with database access would.
    pub async fn exec(&self, sql: &str) -> Result<(), String> {
        match &self.raw {
            Raw::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                connection.execute_batch(sql).map_err(|e| e.to_string())
            }
            Raw::Postgres { pool, .. } => pool.execute(sql).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    /// Removes the append-only triggers, as an administrator could.
    pub async fn drop_append_only_guard(&self) {
        let sql = match &self.raw {
            Raw::Sqlite(_) => "DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete;",
            Raw::Postgres { .. } => "DROP TRIGGER audit_entries_append_only ON audit_entries",
        };
        self.exec(sql).await.expect("drop the guard");
    }

    pub async fn row(&self, seq: u64) -> (Vec<u8>, Vec<u8>) {
        match &self.raw {
            Raw::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).expect("open");
                connection
                    .query_row("SELECT content, leaf_hash FROM audit_entries WHERE seq = ?1", [seq as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .expect("row")
            }
            Raw::Postgres { pool, .. } => sqlx::query_as("SELECT content, leaf_hash FROM audit_entries WHERE seq = $1")
                .bind(seq as i64)
                .fetch_one(pool)
                .await
                .expect("row"),
        }
    }

    pub async fn write_row(&self, seq: u64, content: &[u8], leaf_hash: &[u8]) {
        match &self.raw {
            Raw::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).expect("open");
                connection
                    .execute(
                        "UPDATE audit_entries SET content = ?1, leaf_hash = ?2 WHERE seq = ?3",
                        rusqlite::params![content, leaf_hash, seq as i64],
                    )
                    .expect("update");
            }
            Raw::Postgres { pool, .. } => {
                sqlx::query("UPDATE audit_entries SET content = $1, leaf_hash = $2 WHERE seq = $3")
                    .bind(content)
                    .bind(leaf_hash)
                    .bind(seq as i64)
                    .execute(pool)
                    .await
                    .expect("update");
            }
        }
    }

    /// Drops the test schema (also done on drop, so a failing test cleans up too).
    pub async fn cleanup(mut self) {
        if let Raw::Postgres { pool, schema } = &self.raw {
            pool.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
                .await
                .expect("drop test schema");
            pool.close().await;
        }
        self.raw = Raw::Sqlite(PathBuf::new());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Raw::Postgres { schema, .. } = &self.raw {
            let schema = schema.clone();
            // A test that panicked did not reach `cleanup`: drop its schema on a thread of its
            // own, since this may run inside the test's runtime.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async {
                    if let Ok(pool) = PgPoolOptions::new().max_connections(1).connect(&database_url()).await {
                        let _ = pool.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await;
                    }
                });
            })
            .join();
        }
    }
}
