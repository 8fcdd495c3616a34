//! The PostgreSQL audit backend: the audit tables in a given schema, a pooled connection, each
//! batch written with one `INSERT ... SELECT FROM UNNEST(...)` in a transaction that locks the
//! writer state row, so several server processes can append to one log. Verification reads two
//! halves of the log over two connections.

use std::str::FromStr;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use async_trait::async_trait;
use carecircle_audit::merkle::Hash;
use carecircle_audit::{AuditRecord, Tamper, Verifier, VerifyReport};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::batch::{now_ms, prepare, Sealer, State, StoredColumns};
use crate::verification::{combine, verify_ranges, Piece, RangeChecker};
use crate::{
    backend_error, AuditStoreError, Backend, BreakGlassCount, BreakGlassReview, Period, ReviewFilter, SignedCheckpoint,
    UnusualAccess,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres_0001_audit.sql")),
    (2, include_str!("../migrations/postgres_0002_break_glass_reviews.sql")),
];
const POOL_SIZE: u32 = 4;
/// The advisory lock class taken while migrating ("ccau"), with the schema's hash as the key.
const MIGRATION_LOCK_CLASS: i32 = 0x6363_6175;
/// Rows read per query during verification (keyset paging by `seq`).
const VERIFY_PAGE: i64 = 20_000;

pub(crate) struct PostgresAudit {
    pool: PgPool,
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A connection error with the URL's password (if any) blanked out.
fn connect_error(url: &str, error: impl std::fmt::Display) -> AuditStoreError {
    let mut message = format!("cannot connect to PostgreSQL: {error}");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    if let Some(password) = password {
        message = message.replace(password, "***");
    }
    AuditStoreError::Backend(message)
}

impl PostgresAudit {
    pub(crate) async fn connect(url: &str, schema: Option<&str>) -> Result<PostgresAudit, AuditStoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| connect_error(url, e))?;
        let mut pool_options = PgPoolOptions::new().max_connections(POOL_SIZE);
        if let Some(schema) = schema {
            let quoted = quote_ident(schema);
            let mut connection = PgConnection::connect_with(&options).await.map_err(|e| connect_error(url, e))?;
            match connection.execute(format!("CREATE SCHEMA IF NOT EXISTS {quoted}").as_str()).await {
                Ok(_) => {}
                // Two processes creating the schema at once: the loser sees a duplicate.
                Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P06" | "23505")) => {}
                Err(e) => return Err(backend_error(format!("cannot create schema {quoted}: {e}"))),
            }
            connection.close().await.map_err(backend_error)?;
            let set_path = format!("SET search_path TO {quoted}");
            pool_options = pool_options.after_connect(move |connection, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    connection.execute(set_path.as_str()).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(options).await.map_err(|e| connect_error(url, e))?;
        Ok(PostgresAudit { pool })
    }

    async fn append_once(
        &self,
        records: &[AuditRecord],
        sealer: &Sealer,
        force: bool,
    ) -> Result<(u64, Option<SignedCheckpoint>), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT tree_size, frontier, checkpoint_size, checkpoint_ms FROM audit_state WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await?;
        let frontier: Vec<u8> = row.try_get(1)?;
        let state = State::from_stored(
            row.try_get::<i64, _>(0)? as u64,
            &frontier,
            row.try_get::<i64, _>(2)? as u64,
            row.try_get(3)?,
        )
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let first = state.frontier.size();
        let prepared = prepare(state, records, sealer, force, now_ms());
        if prepared.is_empty() {
            tx.rollback().await?;
            return Ok((first, None));
        }
        if !prepared.rows.is_empty() {
            let rows = &prepared.rows;
            sqlx::query(
                "INSERT INTO audit_entries (seq, recorded_ms, action, user_id, organisation, patient_id, break_glass, \
                 in_care, content, leaf_hash) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], \
                 $4::text[], $5::text[], $6::text[], $7::bool[], $8::bool[], $9::bytea[], $10::bytea[])",
            )
            .bind(rows.iter().map(|r| r.seq as i64).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.recorded_ms).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| i16::from(r.action)).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.organisation).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.patient_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.break_glass).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.in_care).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.content.as_slice()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.leaf_hash.as_slice()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !prepared.subtrees.is_empty() {
            let subtrees = &prepared.subtrees;
            sqlx::query("INSERT INTO audit_subtrees (level, idx, hash) SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::bytea[])")
                .bind(subtrees.iter().map(|s| s.0 as i32).collect::<Vec<_>>())
                .bind(subtrees.iter().map(|s| s.1 as i64).collect::<Vec<_>>())
                .bind(subtrees.iter().map(|s| s.2.as_slice()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE audit_state SET tree_size = $1, frontier = $2, checkpoint_size = $3, checkpoint_ms = $4 WHERE id = 1",
        )
        .bind(prepared.state.frontier.size() as i64)
        .bind(prepared.state.frontier_bytes())
        .bind(prepared.state.checkpoint_size as i64)
        .bind(prepared.state.checkpoint_ms)
        .execute(&mut *tx)
        .await?;
        let checkpoint = match prepared.checkpoint {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO audit_checkpoints (tree_size, created_ms, note) VALUES ($1, $2, $3) \
                     ON CONFLICT (tree_size) DO UPDATE SET created_ms = excluded.created_ms, note = excluded.note",
                )
                .bind(c.tree_size as i64)
                .bind(c.created_ms)
                .bind(&c.note)
                .execute(&mut *tx)
                .await?;
                Some(SignedCheckpoint { tree_size: c.tree_size, created_ms: c.created_ms, note: c.note })
            }
            None => None,
        };
        tx.commit().await?;
        Ok((first, checkpoint))
    }
}

/// Checks the entries with `from <= seq < until` in order, a page at a time, and hands the
/// pieces on (the sender never blocks: it is unbounded). The upper bound is applied here, not in
/// SQL: with both bounds as parameters, PostgreSQL's generic plan may fetch the whole rest of the
/// range and sort it for every page.
async fn check_range(pool: PgPool, from: i64, until: i64, checkpoints: Vec<u64>, out: Sender<Vec<Piece>>) {
    let mut checker = RangeChecker::new(checkpoints);
    let mut next = from;
    let result = async {
        loop {
            let rows = sqlx::query(
                "SELECT seq, content, leaf_hash, recorded_ms, action, user_id, organisation, patient_id, break_glass, \
                 in_care FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(next)
            .bind(VERIFY_PAGE)
            .fetch_all(&pool)
            .await?;
            let Some(last) = rows.last() else { return Ok::<(), sqlx::Error>(()) };
            let last: i64 = last.try_get(0)?;
            for row in &rows {
                let seq: i64 = row.try_get(0)?;
                if seq >= until {
                    return Ok(());
                }
                let content: &[u8] = row.try_get(1)?;
                let leaf: &[u8] = row.try_get(2)?;
                let organisation: Option<&str> = row.try_get(6)?;
                let patient_id: Option<&str> = row.try_get(7)?;
                let columns = StoredColumns {
                    recorded_ms: row.try_get(3)?,
                    action: i64::from(row.try_get::<i16, _>(4)?),
                    user_id: row.try_get::<&str, _>(5)?.as_bytes(),
                    organisation: organisation.map(str::as_bytes),
                    patient_id: patient_id.map(str::as_bytes),
                    break_glass: i64::from(row.try_get::<bool, _>(8)?),
                    in_care: row.try_get::<Option<bool>, _>(9)?.map(i64::from),
                };
                if !checker.row(seq as u64, content, leaf, &columns) {
                    return Ok(());
                }
            }
            if out.send(checker.take_pieces()).is_err() || last == i64::MAX {
                return Ok(());
            }
            next = last + 1;
        }
    }
    .await;
    if let Err(error) = result {
        checker.fail(backend_error(error));
    }
    let _ = out.send(checker.finish());
}

#[async_trait]
impl Backend for PostgresAudit {
    async fn migrate(&self) -> Result<(), AuditStoreError> {
        let run = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
                .bind(MIGRATION_LOCK_CLASS)
                .execute(&mut *tx)
                .await?;
            (&mut *tx)
                .execute(
                    "CREATE TABLE IF NOT EXISTS audit_schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
                )
                .await?;
            let applied: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM audit_schema_migrations")
                    .fetch_one(&mut *tx)
                    .await?;
            for (version, script) in MIGRATIONS {
                if *version > applied {
                    // Without bound values this runs as a simple query: a whole script.
                    (&mut *tx).execute(*script).await?;
                    sqlx::query("INSERT INTO audit_schema_migrations (version, applied_ms) VALUES ($1, $2)")
                        .bind(version)
                        .bind(now_ms())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await
        };
        run.await.map_err(|e| backend_error(format!("audit migration: {e}")))
    }

    async fn append(
        &self,
        records: Arc<Vec<AuditRecord>>,
        sealer: Arc<Sealer>,
        force_checkpoint: bool,
    ) -> Result<(u64, Option<SignedCheckpoint>), AuditStoreError> {
        self.append_once(&records, &sealer, force_checkpoint).await.map_err(backend_error)
    }

    async fn tree_size(&self) -> Result<u64, AuditStoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT tree_size FROM audit_state WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(size.unwrap_or(0) as u64)
    }

    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, AuditStoreError> {
        let row =
            sqlx::query("SELECT tree_size, created_ms, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
        row.map(|r| {
            Ok(SignedCheckpoint {
                tree_size: r.try_get::<i64, _>(0)? as u64,
                created_ms: r.try_get(1)?,
                note: r.try_get(2)?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| backend_error(e))
    }

    async fn checkpoint_notes(&self) -> Result<Vec<String>, AuditStoreError> {
        sqlx::query_scalar("SELECT note FROM audit_checkpoints ORDER BY tree_size")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)
    }

    async fn hashes(&self, level: u32, first: u64, count: u64) -> Result<Vec<Hash>, AuditStoreError> {
        let (first, end) = (first as i64, (first + count) as i64);
        let hashes: Vec<Vec<u8>> = if level == 0 {
            sqlx::query_scalar("SELECT leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq")
                .bind(first)
                .bind(end)
                .fetch_all(&self.pool)
                .await
        } else {
            sqlx::query_scalar(
                "SELECT hash FROM audit_subtrees WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            )
            .bind(level as i32)
            .bind(first)
            .bind(end)
            .fetch_all(&self.pool)
            .await
        }
        .map_err(backend_error)?;
        hashes
            .into_iter()
            .map(|h| h.try_into().map_err(|_| AuditStoreError::CorruptState("a stored hash is not 32 bytes".into())))
            .collect()
    }

    async fn entry_content(&self, seq: u64) -> Result<Option<Vec<u8>>, AuditStoreError> {
        sqlx::query_scalar("SELECT content FROM audit_entries WHERE seq = $1")
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)
    }

    async fn verify(&self, verifier: Verifier) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
        let max_seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_entries")
            .fetch_one(&self.pool)
            .await
            .map_err(backend_error)?;
        let checkpoints: Vec<u64> = verifier.checkpoint_sizes().collect();
        let mut receivers = Vec::new();
        let mut readers = Vec::new();
        for (from, until) in verify_ranges(max_seq) {
            let (sender, receiver) = channel();
            readers.push(tokio::spawn(check_range(self.pool.clone(), from, until, checkpoints.clone(), sender)));
            receivers.push(receiver);
        }
        let result = tokio::task::spawn_blocking(move || combine(verifier, receivers)).await.map_err(backend_error)?;
        for reader in readers {
            reader.await.map_err(backend_error)?;
        }
        result
    }

    async fn patient_log(
        &self,
        patient_id: &str,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, AuditStoreError> {
        sqlx::query_scalar(
            "SELECT content FROM audit_entries WHERE patient_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(patient_id)
        .bind(before_seq.map_or(i64::MAX, |s| s as i64))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)
    }

    async fn unusual_access(&self, period: Period, min_persons: u64) -> Result<Vec<UnusualAccess>, AuditStoreError> {
        let rows = sqlx::query(
            "SELECT user_id, organisation, COUNT(DISTINCT patient_id) AS n FROM audit_entries \
             WHERE recorded_ms >= $1 AND recorded_ms < $2 AND in_care = false AND patient_id IS NOT NULL \
             GROUP BY user_id, organisation HAVING COUNT(DISTINCT patient_id) >= $3 \
             ORDER BY n DESC, user_id, organisation",
        )
        .bind(period.from_ms)
        .bind(period.until_ms)
        .bind(min_persons as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                Ok(UnusualAccess {
                    user_id: r.try_get(0)?,
                    organisation: r.try_get(1)?,
                    persons_outside_care: r.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend_error)
    }

    async fn break_glass(&self, period: Period) -> Result<Vec<BreakGlassCount>, AuditStoreError> {
        let rows = sqlx::query(
            "SELECT user_id, organisation, COUNT(*) FILTER (WHERE break_glass) AS bg, COUNT(*) FROM audit_entries \
             WHERE recorded_ms >= $1 AND recorded_ms < $2 AND patient_id IS NOT NULL \
             GROUP BY user_id, organisation HAVING COUNT(*) FILTER (WHERE break_glass) > 0 \
             ORDER BY bg DESC, user_id, organisation",
        )
        .bind(period.from_ms)
        .bind(period.until_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                Ok(BreakGlassCount {
                    user_id: r.try_get(0)?,
                    organisation: r.try_get(1)?,
                    break_glass_entries: r.try_get::<i64, _>(2)? as u64,
                    person_entries: r.try_get::<i64, _>(3)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend_error)
    }

    async fn break_glass_uses(
        &self,
        filter: ReviewFilter,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError> {
        let condition = match filter {
            ReviewFilter::Pending => "AND NOT EXISTS (SELECT 1 FROM break_glass_reviews r WHERE r.entry_seq = e.seq)",
            ReviewFilter::Reviewed => "AND EXISTS (SELECT 1 FROM break_glass_reviews r WHERE r.entry_seq = e.seq)",
            ReviewFilter::All => "",
        };
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT e.seq, e.content FROM audit_entries e WHERE e.action = 10 AND e.seq < $1 {condition} \
             ORDER BY e.seq DESC LIMIT $2"
        ))
        .bind(before_seq.map_or(i64::MAX, |s| s as i64))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(rows.into_iter().map(|(seq, content)| (seq as u64, content)).collect())
    }

    async fn reviews(&self, entry_seqs: &[u64]) -> Result<Vec<BreakGlassReview>, AuditStoreError> {
        let seqs: Vec<i64> = entry_seqs.iter().map(|s| *s as i64).collect();
        let rows = sqlx::query(
            "SELECT entry_seq, outcome, note, reviewer, organisation, reviewed_ms, review_seq \
             FROM break_glass_reviews WHERE entry_seq = ANY($1)",
        )
        .bind(&seqs)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get(1).map_err(backend_error)?;
                Ok(BreakGlassReview {
                    entry_seq: r.try_get::<i64, _>(0).map_err(backend_error)? as u64,
                    outcome: outcome.parse().map_err(AuditStoreError::CorruptState)?,
                    note: r.try_get(2).map_err(backend_error)?,
                    reviewer: r.try_get(3).map_err(backend_error)?,
                    organisation: r.try_get(4).map_err(backend_error)?,
                    reviewed_ms: r.try_get(5).map_err(backend_error)?,
                    review_seq: r.try_get::<i64, _>(6).map_err(backend_error)? as u64,
                })
            })
            .collect()
    }

    async fn insert_review(&self, review: &BreakGlassReview) -> Result<bool, AuditStoreError> {
        let result = sqlx::query(
            "INSERT INTO break_glass_reviews (entry_seq, outcome, note, reviewer, organisation, reviewed_ms, review_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (entry_seq) DO NOTHING",
        )
        .bind(review.entry_seq as i64)
        .bind(review.outcome.code())
        .bind(&review.note)
        .bind(&review.reviewer)
        .bind(&review.organisation)
        .bind(review.reviewed_ms)
        .bind(review.review_seq as i64)
        .execute(&self.pool)
        .await
        .map_err(backend_error)?;
        Ok(result.rows_affected() == 1)
    }
}
