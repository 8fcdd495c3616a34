//! The PostgreSQL backend of the record store: a pooled connection to a shared server, the same
//! tables and semantics as the SQLite backend, and the search SQL both backends share.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use carecircle_fhir::search::{Include, SearchQuery, Summary};
use carecircle_fhir::IndexEntry;
use carecircle_store::sql::{self, Dialect, SearchShape, SqlValue, Statement};
use carecircle_store::{
    check_expected_version, now_millis, stamp_resource, HistoryQuery, Page, Store, StoreError, StoredResource,
    WriteEffect, WriteOp, WriteOutcome,
};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, Executor, Postgres, Row, Transaction};

/// Numbered migrations, applied in order and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

/// Pooled connections: enough for concurrent requests without crowding a shared server.
const POOL_SIZE: u32 = 8;

/// The first key of the advisory lock taken while migrating (the second is the schema's hash),
/// so that two processes migrating the same schema at once run one after the other.
const MIGRATION_LOCK_CLASS: i32 = 0x6363_7067; // "ccpg"

/// How many times a transaction that lost a deadlock or a creation race is run again.
const MAX_ATTEMPTS: usize = 5;

/// The smallest batch applied set-based (a fixed number of round trips for the whole batch)
/// rather than one write at a time; a single write takes as many round trips either way, so it
/// keeps the per-write path.
const SET_PATH_MIN: usize = 2;

/// How many index rows go into one `INSERT ... SELECT FROM UNNEST(...)`.
const INDEX_CHUNK: usize = 50_000;

/// The columns read for a resource, in the order [`row_to_resource`] expects.
const COLUMNS: &str = "res_type, res_id, version, last_updated, deleted, custodian, body";

/// The PostgreSQL record store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A connection-time error, with the URL's password (if any) blanked out of the message.
fn connect_error(url: &str, error: impl std::fmt::Display) -> StoreError {
    let mut message = format!("cannot connect to PostgreSQL: {error}");
    if let Some(password) = url_password(url) {
        message = message.replace(password, "***");
    }
    StoreError::Backend(message)
}

/// The password part of `scheme://user:password@host/...`, if present.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), using the server's
    /// default `search_path`. Call [`Store::migrate`] before use.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| connect_error(url, e))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        Ok(PostgresStore { pool })
    }

    /// Connects to the database at `url` with every connection working in `schema` (created if
    /// missing), so that several stores can share one database. Call [`Store::migrate`] before
    /// use.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| connect_error(url, e))?;
        let quoted = quote_ident(schema);
        let mut connection = PgConnection::connect_with(&options).await.map_err(|e| connect_error(url, e))?;
        let created =
            Executor::execute(&mut connection, format!("CREATE SCHEMA IF NOT EXISTS {quoted}").as_str()).await;
        match created {
            Ok(_) => {}
            // Two processes creating the schema at once: the loser sees a duplicate, which is
            // exactly what it wanted.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P06" | "23505")) => {}
            Err(e) => return Err(backend(format!("cannot create schema {quoted}: {e}"))),
        }
        connection.close().await.map_err(backend)?;

        let set_path = format!("SET search_path TO {quoted}");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .after_connect(move |connection, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    Executor::execute(connection, set_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool, for administration and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A failure inside a write transaction: either final, or a database error that may call for
/// running the transaction again.
enum TxError {
    Store(StoreError),
    Sql(sqlx::Error),
    /// Another transaction created the same resource first; running again sees it.
    LostRace,
}

impl From<sqlx::Error> for TxError {
    fn from(error: sqlx::Error) -> Self {
        TxError::Sql(error)
    }
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        TxError::Store(error)
    }
}

/// Deadlocks, serialization failures and unique violations are transient under concurrent writes.
fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            matches!(e.code().as_deref(), Some("40P01" | "40001" | "23505"))
        }
        _ => false,
    }
}

fn bind_values<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    values: &'q [SqlValue],
) -> Query<'q, Postgres, PgArguments> {
    for value in values {
        query = match value {
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Real(f) => query.bind(*f),
        };
    }
    query
}

fn row_to_resource(row: &PgRow) -> Result<StoredResource, sqlx::Error> {
    Ok(StoredResource {
        resource_type: row.try_get(0)?,
        id: row.try_get(1)?,
        version: row.try_get(2)?,
        last_updated: row.try_get(3)?,
        deleted: row.try_get::<i16, _>(4)? != 0,
        custodian: row.try_get(5)?,
        body: row.try_get(6)?,
    })
}

async fn query_resources(
    connection: &mut PgConnection,
    statement: &Statement,
) -> Result<Vec<StoredResource>, StoreError> {
    let rows = bind_values(sqlx::query(&statement.sql), &statement.values)
        .fetch_all(&mut *connection)
        .await
        .map_err(backend)?;
    rows.iter().map(row_to_resource).collect::<Result<Vec<_>, _>>().map_err(backend)
}

async fn query_count(connection: &mut PgConnection, statement: &Statement) -> Result<usize, StoreError> {
    let row = bind_values(sqlx::query(&statement.sql), &statement.values)
        .fetch_one(&mut *connection)
        .await
        .map_err(backend)?;
    let n: i64 = row.try_get(0).map_err(backend)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// One column of index values, bound as a PostgreSQL array.
enum Column {
    Text(Vec<String>),
    Int(Vec<i64>),
    Real(Vec<f64>),
}

impl Column {
    fn for_value(value: &SqlValue) -> Column {
        match value {
            SqlValue::Text(_) => Column::Text(Vec::new()),
            SqlValue::Int(_) => Column::Int(Vec::new()),
            SqlValue::Real(_) => Column::Real(Vec::new()),
        }
    }

    fn push(&mut self, value: SqlValue) -> Result<(), StoreError> {
        match (self, value) {
            (Column::Text(v), SqlValue::Text(s)) => v.push(s),
            (Column::Int(v), SqlValue::Int(i)) => v.push(i),
            (Column::Real(v), SqlValue::Real(f)) => v.push(f),
            _ => return Err(backend("index values of one column have different types")),
        }
        Ok(())
    }

    fn cast(&self) -> &'static str {
        match self {
            Column::Text(_) => "text[]",
            Column::Int(_) => "bigint[]",
            Column::Real(_) => "double precision[]",
        }
    }
}

/// Rows bound for one index table, in column-major form for `UNNEST`: the owning resources'
/// keys, the parameter keys and the value columns, all of the same length.
struct IndexBatch {
    table: &'static str,
    pks: Vec<i64>,
    params: Vec<i64>,
    columns: Vec<Column>,
}

/// Adds the index entries of the resource stored at `pk` to `batches`, one batch per table.
fn add_index_rows(
    batches: &mut Vec<IndexBatch>,
    pk: i64,
    resource_type: &str,
    index: &[IndexEntry],
) -> Result<(), StoreError> {
    for entry in index {
        let (table, values) = sql::index_row(entry);
        let position = match batches.iter().position(|b| b.table == table) {
            Some(position) => position,
            None => {
                batches.push(IndexBatch {
                    table,
                    pks: Vec::new(),
                    params: Vec::new(),
                    columns: values.iter().map(Column::for_value).collect(),
                });
                batches.len() - 1
            }
        };
        let batch = &mut batches[position];
        if batch.columns.len() != values.len() {
            return Err(backend(format!("index rows of {table} have different widths")));
        }
        batch.pks.push(pk);
        batch.params.push(sql::param_key(resource_type, &entry.param));
        for (column, value) in batch.columns.iter_mut().zip(values) {
            column.push(value)?;
        }
    }
    Ok(())
}

/// Inserts index rows with one `INSERT ... SELECT FROM UNNEST(...)` per table and chunk of
/// [`INDEX_CHUNK`] rows (each array is a single bind parameter, so chunking only bounds the size
/// of one message).
async fn insert_index_batches(tx: &mut PgConnection, batches: &[IndexBatch]) -> Result<(), TxError> {
    for batch in batches {
        let columns = sql::index_columns(batch.table);
        let mut arrays = String::from("$1::bigint[], $2::bigint[]");
        for (i, column) in batch.columns.iter().enumerate() {
            arrays.push_str(&format!(", ${}::{}", i + 3, column.cast()));
        }
        let statement = format!(
            "INSERT INTO {table} (resource_pk, param_key, {columns}) SELECT * FROM UNNEST({arrays}) \
             ON CONFLICT DO NOTHING",
            table = batch.table
        );
        let rows = batch.params.len();
        let mut start = 0;
        while start < rows {
            let end = (start + INDEX_CHUNK).min(rows);
            let mut query = sqlx::query(&statement).bind(&batch.pks[start..end]).bind(&batch.params[start..end]);
            for column in &batch.columns {
                query = match column {
                    Column::Text(v) => query.bind(&v[start..end]),
                    Column::Int(v) => query.bind(&v[start..end]),
                    Column::Real(v) => query.bind(&v[start..end]),
                };
            }
            query.execute(&mut *tx).await?;
            start = end;
        }
    }
    Ok(())
}

/// Inserts the index rows of one resource.
async fn insert_index(
    tx: &mut PgConnection,
    pk: i64,
    resource_type: &str,
    index: &[IndexEntry],
) -> Result<(), TxError> {
    let mut batches = Vec::new();
    add_index_rows(&mut batches, pk, resource_type, index)?;
    insert_index_batches(tx, &batches).await
}

/// Deletes every index row of the resources `pks`, in one round trip.
async fn delete_index(tx: &mut PgConnection, pks: &[i64]) -> Result<(), TxError> {
    let mut statement = String::from("WITH ");
    for (i, table) in sql::INDEX_TABLES.iter().enumerate() {
        if i > 0 {
            statement.push_str(", ");
        }
        statement.push_str(&format!("d{i} AS (DELETE FROM {table} WHERE resource_pk = ANY($1))"));
    }
    statement.push_str(" SELECT 1");
    sqlx::query(&statement).bind(pks).execute(&mut *tx).await?;
    Ok(())
}

/// Copies the current rows of the resources `pks` into `resource_versions`, in one round trip.
async fn archive_current(tx: &mut PgConnection, pks: &[i64]) -> Result<(), TxError> {
    sqlx::query(
        "INSERT INTO resource_versions (res_type, res_id, version, last_updated, deleted, custodian, body) \
         SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resources WHERE pk = ANY($1)",
    )
    .bind(pks)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies a batch in one transaction: set-based when it has [`SET_PATH_MIN`] writes or more on
/// distinct resources, one write at a time otherwise (a batch naming one resource twice must
/// see its own earlier writes).
async fn apply_writes(pool: &PgPool, writes: &[WriteOp]) -> Result<Vec<WriteOutcome>, TxError> {
    let mut tx: Transaction<'_, Postgres> = pool.begin().await?;
    let now = now_millis();
    let outcomes = if writes.len() >= SET_PATH_MIN && keys_are_distinct(writes) {
        apply_set(&mut tx, writes, now).await?
    } else {
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            outcomes.push(apply_one_retrying(&mut tx, write, now).await?);
        }
        outcomes
    };
    tx.commit().await?;
    Ok(outcomes)
}

/// The resource type, id and expected version of a write.
fn write_key(write: &WriteOp) -> (&str, &str, Option<i64>) {
    match write {
        WriteOp::Put { resource_type, id, expected_version, .. }
        | WriteOp::Delete { resource_type, id, expected_version } => (resource_type, id, *expected_version),
    }
}

/// Whether no two writes name the same resource.
fn keys_are_distinct(writes: &[WriteOp]) -> bool {
    let mut seen = HashSet::with_capacity(writes.len());
    writes.iter().all(|write| {
        let (resource_type, id, _) = write_key(write);
        seen.insert((resource_type, id))
    })
}

/// The locked current row of a resource named in a batch.
struct Current {
    pk: i64,
    version: i64,
    deleted: bool,
    custodian: Option<String>,
}

/// How the set-based path stores one write of a batch.
enum Step {
    /// A new row, inserted with the batch's other new rows.
    Insert,
    /// A new version of the existing row `pk` (an update, a re-creation or a deletion).
    Replace(i64),
    /// Nothing to store.
    Unchanged,
}

/// Locks and reads the current rows of every resource the writes name, in one round trip,
/// locking in primary-key order so that concurrent batches cannot deadlock on each other.
async fn lock_current(
    tx: &mut PgConnection,
    writes: &[WriteOp],
) -> Result<HashMap<(String, String), Current>, TxError> {
    let (types, ids): (Vec<&str>, Vec<&str>) = writes
        .iter()
        .map(|write| {
            let (resource_type, id, _) = write_key(write);
            (resource_type, id)
        })
        .unzip();
    let rows = sqlx::query(
        "SELECT r.res_type, r.res_id, r.pk, r.version, r.deleted, r.custodian \
         FROM resources r JOIN UNNEST($1::text[], $2::text[]) AS k(res_type, res_id) \
         ON r.res_type = k.res_type AND r.res_id = k.res_id ORDER BY r.pk FOR UPDATE OF r",
    )
    .bind(&types)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut current = HashMap::with_capacity(rows.len());
    for row in rows {
        current.insert(
            (row.try_get(0)?, row.try_get(1)?),
            Current {
                pk: row.try_get(2)?,
                version: row.try_get(3)?,
                deleted: row.try_get::<i16, _>(4)? != 0,
                custodian: row.try_get(5)?,
            },
        );
    }
    Ok(current)
}

/// Applies a batch of writes on distinct resources with a fixed number of round trips: lock and
/// read every current row, check every expected version before writing anything, archive the
/// replaced rows, drop their index rows, update them and insert the new ones in one statement
/// each, then insert the whole batch's index rows, one statement per index table. A new resource
/// that a concurrent transaction created first is applied afterwards by [`apply_one_retrying`],
/// which sees it and updates it (or reports the conflict it now is).
async fn apply_set(tx: &mut PgConnection, writes: &[WriteOp], now: i64) -> Result<Vec<WriteOutcome>, TxError> {
    let current = lock_current(tx, writes).await?;

    // Plan every write, stamping the stored bodies; nothing is written until all versions check.
    let mut steps = Vec::with_capacity(writes.len());
    let mut outcomes: Vec<WriteOutcome> = Vec::with_capacity(writes.len());
    for write in writes {
        let (resource_type, id, expected) = write_key(write);
        let existing = current.get(&(resource_type.to_string(), id.to_string()));
        let (current_version, current_deleted) = existing.map_or((0, false), |c| (c.version, c.deleted));
        check_expected_version(resource_type, id, expected, current_version, current_deleted)?;
        let (step, outcome) = match (write, existing) {
            (WriteOp::Put { resource, custodian, .. }, _) => {
                let version = current_version + 1;
                let mut resource = resource.clone();
                stamp_resource(&mut resource, id, version, now);
                let body = serde_json::to_string(&resource).map_err(backend)?;
                let (step, effect) = match existing {
                    Some(c) if !c.deleted => (Step::Replace(c.pk), WriteEffect::Updated),
                    Some(c) => (Step::Replace(c.pk), WriteEffect::Created),
                    None => (Step::Insert, WriteEffect::Created),
                };
                let stored = StoredResource {
                    resource_type: resource_type.to_string(),
                    id: id.to_string(),
                    version,
                    last_updated: now,
                    deleted: false,
                    custodian: custodian.clone(),
                    body: Some(body),
                };
                (step, WriteOutcome { effect, stored })
            }
            (WriteOp::Delete { .. }, Some(c)) if !c.deleted => {
                let stored = StoredResource {
                    resource_type: resource_type.to_string(),
                    id: id.to_string(),
                    version: c.version + 1,
                    last_updated: now,
                    deleted: true,
                    custodian: c.custodian.clone(),
                    body: None,
                };
                (Step::Replace(c.pk), WriteOutcome { effect: WriteEffect::Deleted, stored })
            }
            (WriteOp::Delete { .. }, _) => {
                let stored = StoredResource {
                    resource_type: resource_type.to_string(),
                    id: id.to_string(),
                    version: current_version,
                    last_updated: now,
                    deleted: true,
                    custodian: None,
                    body: None,
                };
                (Step::Unchanged, WriteOutcome { effect: WriteEffect::Unchanged, stored })
            }
        };
        steps.push(step);
        outcomes.push(outcome);
    }

    // New versions of existing rows: archive the current ones, drop their index rows, update.
    let mut replaced = Vec::new();
    let (mut versions, mut deleted, mut custodians, mut bodies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (step, outcome) in steps.iter().zip(&outcomes) {
        if let Step::Replace(pk) = step {
            replaced.push(*pk);
            versions.push(outcome.stored.version);
            deleted.push(i16::from(outcome.stored.deleted));
            custodians.push(outcome.stored.custodian.as_deref());
            bodies.push(outcome.stored.body.as_deref());
        }
    }
    if !replaced.is_empty() {
        archive_current(tx, &replaced).await?;
        delete_index(tx, &replaced).await?;
        sqlx::query(
            "UPDATE resources SET version = u.version, last_updated = $1, deleted = u.deleted, \
             custodian = u.custodian, body = u.body \
             FROM UNNEST($2::bigint[], $3::bigint[], $4::smallint[], $5::text[], $6::text[]) \
             AS u(pk, version, deleted, custodian, body) WHERE resources.pk = u.pk",
        )
        .bind(now)
        .bind(&replaced)
        .bind(&versions)
        .bind(&deleted)
        .bind(&custodians)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
    }

    // New rows, inserted in key order (so that concurrent batches creating the same ids wait for
    // each other instead of deadlocking) and matched back to their writes by key.
    let mut new: Vec<usize> = (0..writes.len()).filter(|&i| matches!(steps[i], Step::Insert)).collect();
    new.sort_by(|&a, &b| {
        let (ta, ia, _) = write_key(&writes[a]);
        let (tb, ib, _) = write_key(&writes[b]);
        (ta, ia).cmp(&(tb, ib))
    });
    let mut inserted: HashMap<(String, String), i64> = HashMap::with_capacity(new.len());
    if !new.is_empty() {
        let (mut types, mut ids, mut custodians, mut bodies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &i in &new {
            let stored = &outcomes[i].stored;
            types.push(stored.resource_type.as_str());
            ids.push(stored.id.as_str());
            custodians.push(stored.custodian.as_deref());
            bodies.push(stored.body.as_deref());
        }
        let rows = sqlx::query(
            "INSERT INTO resources (res_type, res_id, version, last_updated, deleted, custodian, body) \
             SELECT u.res_type, u.res_id, 1, $1, 0, u.custodian, u.body \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) AS u(res_type, res_id, custodian, body) \
             ON CONFLICT (res_type, res_id) DO NOTHING RETURNING pk, res_type, res_id",
        )
        .bind(now)
        .bind(&types)
        .bind(&ids)
        .bind(&custodians)
        .bind(&bodies)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            inserted.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
        }
    }

    // Index rows of every stored resource; new resources another transaction created first are
    // left to the per-write path.
    let mut batches = Vec::new();
    let mut lost = Vec::new();
    for (i, (write, step)) in writes.iter().zip(&steps).enumerate() {
        let WriteOp::Put { resource_type, id, index, .. } = write else { continue };
        let pk = match step {
            Step::Replace(pk) => *pk,
            Step::Insert => match inserted.get(&(resource_type.clone(), id.clone())) {
                Some(pk) => *pk,
                None => {
                    lost.push(i);
                    continue;
                }
            },
            Step::Unchanged => continue,
        };
        add_index_rows(&mut batches, pk, resource_type, index)?;
    }
    insert_index_batches(tx, &batches).await?;
    for i in lost {
        outcomes[i] = apply_one_retrying(tx, &writes[i], now).await?;
    }
    Ok(outcomes)
}

/// Applies one write; when a concurrent transaction created the same resource between our
/// lookup and our insert, looks again (READ COMMITTED lets the next statement see it) and
/// applies the write as an update, or reports the conflict it now is.
async fn apply_one_retrying(tx: &mut PgConnection, write: &WriteOp, now: i64) -> Result<WriteOutcome, TxError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match apply_one(tx, write, now).await {
            Err(TxError::LostRace) if attempt < MAX_ATTEMPTS => continue,
            other => return other,
        }
    }
}

async fn apply_one(tx: &mut PgConnection, write: &WriteOp, now: i64) -> Result<WriteOutcome, TxError> {
    let (resource_type, id, expected) = match write {
        WriteOp::Put { resource_type, id, expected_version, .. }
        | WriteOp::Delete { resource_type, id, expected_version } => {
            (resource_type.clone(), id.clone(), *expected_version)
        }
    };
    let existing: Option<(i64, i64, bool)> =
        sqlx::query("SELECT pk, version, deleted FROM resources WHERE res_type = $1 AND res_id = $2 FOR UPDATE")
            .bind(&resource_type)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| -> Result<_, sqlx::Error> {
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get::<i16, _>(2)? != 0))
            })
            .transpose()?;
    let (current_version, current_deleted) = existing.map_or((0, false), |(_, v, d)| (v, d));
    check_expected_version(&resource_type, &id, expected, current_version, current_deleted)?;

    match write {
        WriteOp::Put { resource, index, custodian, .. } => {
            let version = current_version + 1;
            let mut resource = resource.clone();
            stamp_resource(&mut resource, &id, version, now);
            let body = serde_json::to_string(&resource).map_err(backend)?;
            let pk = match existing {
                Some((pk, _, _)) => {
                    archive_current(tx, &[pk]).await?;
                    sqlx::query("UPDATE resources SET version = $1, last_updated = $2, deleted = 0, custodian = $3, body = $4 WHERE pk = $5")
                        .bind(version)
                        .bind(now)
                        .bind(custodian.as_deref())
                        .bind(&body)
                        .bind(pk)
                        .execute(&mut *tx)
                        .await?;
                    delete_index(tx, &[pk]).await?;
                    pk
                }
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO resources (res_type, res_id, version, last_updated, deleted, custodian, body) \
                         VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (res_type, res_id) DO NOTHING RETURNING pk",
                    )
                    .bind(&resource_type)
                    .bind(&id)
                    .bind(version)
                    .bind(now)
                    .bind(custodian.as_deref())
                    .bind(&body)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match inserted {
                        Some(row) => row.try_get::<i64, _>(0)?,
                        None => return Err(TxError::LostRace),
                    }
                }
            };
            insert_index(tx, pk, &resource_type, index).await?;
            let effect =
                if existing.is_none() || current_deleted { WriteEffect::Created } else { WriteEffect::Updated };
            Ok(WriteOutcome {
                effect,
                stored: StoredResource {
                    resource_type,
                    id,
                    version,
                    last_updated: now,
                    deleted: false,
                    custodian: custodian.clone(),
                    body: Some(body),
                },
            })
        }
        WriteOp::Delete { .. } => match existing {
            Some((pk, version, false)) => {
                archive_current(tx, &[pk]).await?;
                let row = sqlx::query("UPDATE resources SET version = $1, last_updated = $2, deleted = 1, body = NULL WHERE pk = $3 RETURNING custodian")
                    .bind(version + 1)
                    .bind(now)
                    .bind(pk)
                    .fetch_one(&mut *tx)
                    .await?;
                let custodian: Option<String> = row.try_get(0)?;
                delete_index(tx, &[pk]).await?;
                Ok(WriteOutcome::deleted(resource_type, id, version + 1, now, custodian))
            }
            _ => Ok(WriteOutcome::unchanged(resource_type, id, current_version, now)),
        },
    }
}

async fn migrate_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(MIGRATION_LOCK_CLASS)
        .execute(&mut *tx)
        .await?;
    // Statements without bound values go through the simple query protocol, which runs a whole
    // script of several statements.
    Executor::execute(
        &mut *tx,
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await?;
    for (version, script) in MIGRATIONS {
        if *version > applied {
            Executor::execute(&mut *tx, *script).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "applied postgres migration");
        }
    }
    tx.commit().await
}

#[async_trait]
impl Store for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    /// Other servers and processes write the same database and PostgreSQL has no cheap counter
    /// of commits, so nothing derived from stored data may be kept between requests.
    fn write_generation(&self) -> Option<u64> {
        None
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrate_schema(&self.pool).await.map_err(|e| backend(format!("migration: {e}")))
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM resources WHERE res_type = $1 AND res_id = $2"))
            .bind(resource_type)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(row_to_resource).transpose().map_err(backend)
    }

    async fn read_version(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM resources WHERE res_type = $1 AND res_id = $2 AND version = $3 \
             UNION ALL SELECT {COLUMNS} FROM resource_versions WHERE res_type = $1 AND res_id = $2 AND version = $3"
        ))
        .bind(resource_type)
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(row_to_resource).transpose().map_err(backend)
    }

    async fn apply(&self, writes: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply_writes(&self.pool, &writes).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Sql(e)) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(attempt, error = %e, "retrying postgres write transaction");
                }
                Err(TxError::Sql(e)) => return Err(backend(e)),
                Err(TxError::LostRace) if attempt < MAX_ATTEMPTS => {}
                Err(TxError::LostRace) => return Err(backend("a concurrent write kept recreating the same resource")),
            }
        }
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        // With several index filters, drive from the one with the fewest matches.
        let mut estimates = Vec::new();
        for (i, statement) in sql::driver_estimates(Dialect::Postgres, query) {
            estimates.push((i, query_count(&mut connection, &statement).await?));
        }
        let driver = sql::choose_driver(&estimates);
        let count_statement = sql::search_statement_with_driver(Dialect::Postgres, query, SearchShape::Count, driver);
        let page_statement = (query.summary != Some(Summary::Count) && query.count > 0)
            .then(|| sql::search_statement_with_driver(Dialect::Postgres, query, SearchShape::Page, driver));
        let Some(statement) = page_statement else {
            return Ok(Page { entries: Vec::new(), total: query_count(&mut connection, &count_statement).await? });
        };
        // The page carries the number of all matches in its last column.
        let rows = bind_values(sqlx::query(&statement.sql), &statement.values)
            .fetch_all(&mut *connection)
            .await
            .map_err(backend)?;
        let total = match rows.first() {
            Some(row) => row.try_get::<i64, _>(7).map_err(backend)? as usize,
            None if query.offset == 0 => 0,
            None => query_count(&mut connection, &count_statement).await?,
        };
        let entries = rows.iter().map(row_to_resource).collect::<Result<Vec<_>, _>>().map_err(backend)?;
        Ok(Page { entries, total })
    }

    async fn include(&self, sources: &[StoredResource], include: &Include) -> Result<Vec<StoredResource>, StoreError> {
        let sources = sql::include_sources(sources, include);
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sql::include_targets_statement(
            Dialect::Postgres,
            &sources,
            &include.source_type,
            &include.param,
            include.target_type.as_deref(),
        );
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        let rows = bind_values(sqlx::query(&statement.sql), &statement.values)
            .fetch_all(&mut *connection)
            .await
            .map_err(backend)?;
        let targets = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
            .map_err(backend)?;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        query_resources(&mut connection, &sql::read_many_statement(Dialect::Postgres, &targets)).await
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
            sql::revinclude_statement(Dialect::Postgres, &sql::keys_of(targets), &include.source_type, &include.param);
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        query_resources(&mut connection, &statement).await
    }

    async fn patient_compartment(&self, patient_id: &str, count: usize, offset: usize) -> Result<Page, StoreError> {
        let (page, total) = sql::compartment_statements(Dialect::Postgres, patient_id, count, offset);
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        Ok(Page {
            total: query_count(&mut connection, &total).await?,
            entries: query_resources(&mut connection, &page).await?,
        })
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError> {
        let (page, total) = sql::history_statements(Dialect::Postgres, query);
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        Ok(Page {
            total: query_count(&mut connection, &total).await?,
            entries: query_resources(&mut connection, &page).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_urls() {
        assert_eq!(url_password("postgres://user:s3cret@db:5432/x"), Some("s3cret"));
        assert_eq!(url_password("postgres://user@db/x"), None);
        assert_eq!(url_password("postgres://db/x?user=a"), None);
        let StoreError::Backend(message) = connect_error("postgres://u:s3cret@h/d", "bad s3cret") else {
            panic!("backend error")
        };
        assert!(!message.contains("s3cret"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("t_1"), "\"t_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
