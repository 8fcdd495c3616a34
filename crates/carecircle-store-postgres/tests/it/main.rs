//! The shared storage test suite on the PostgreSQL backend, each test in its own schema of the
//! database named by `CARECIRCLE_TEST_DATABASE_URL` (default: a local server with trust auth).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use carecircle_store::{Store, StoreError, WriteEffect, WriteOp};
use carecircle_store_postgres::PostgresStore;
use carecircle_store_tests::put;
use serde_json::json;

fn database_url() -> String {
    std::env::var("CARECIRCLE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema name no other test (in this or a concurrent run) uses.
fn unique_schema() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("t_{}_{n}_{nanos}", std::process::id())
}

async fn connect(schema: &str) -> PostgresStore {
    PostgresStore::connect_with_schema(&database_url(), schema).await.expect("connect to the test database")
}

async fn fresh_store() -> Arc<dyn Store> {
    let store = connect(&unique_schema()).await;
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrations are idempotent");
    Arc::new(store)
}

carecircle_store_tests::store_test_suite!(fresh_store);

fn patient(id: &str, family: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}], "gender": "female"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_a_fresh_schema_both_succeed() {
    let schema = unique_schema();
    let (a, b) = tokio::join!(connect(&schema), connect(&schema));
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first migration");
    rb.expect("second migration");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(a.pool())
        .await
        .expect("count migrations");
    assert_eq!(applied, 1);
    a.apply(vec![put(patient("m1", "Migrated"), "Organization/gp-1")]).await.expect("the migrated schema is usable");
    assert!(b.read("Patient", "m1").await.expect("read").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_id_are_versions_or_conflicts() {
    let store = fresh_store().await;
    let n = 8;

    // Unconditional puts: every one succeeds, one creates and the rest update in turn.
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.apply(vec![put(patient("same", &format!("F{i}")), "Organization/gp-1")]).await },
            )
        })
        .collect();
    let mut versions = Vec::new();
    let mut created = 0;
    for task in tasks {
        let outcome = task.await.expect("task").expect("an unconditional put never fails");
        if outcome[0].effect == WriteEffect::Created {
            created += 1;
        }
        versions.push(outcome[0].stored.version);
    }
    versions.sort();
    assert_eq!(versions, (1..=n as i64).collect::<Vec<_>>());
    assert_eq!(created, 1);

    // Create-only puts: one wins, the others see a version conflict, never a backend error.
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut write = put(patient("once", &format!("F{i}")), "Organization/gp-1");
                if let WriteOp::Put { expected_version, .. } = &mut write {
                    *expected_version = Some(0);
                }
                store.apply(vec![write]).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(outcome) => {
                assert_eq!((outcome[0].effect.clone(), outcome[0].stored.version), (WriteEffect::Created, 1));
                wins += 1;
            }
            Err(StoreError::VersionConflict { expected: 0, current: 1, .. }) => {}
            Err(other) => panic!("expected a version conflict, got {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read("Patient", "once").await.expect("read").expect("stored").version, 1);
}

#[tokio::test]
async fn bulk_batches_index_every_resource() {
    let store = fresh_store().await;
    let writes: Vec<WriteOp> =
        (0..300).map(|i| put(patient(&format!("b{i}"), &format!("Bulk{}", i % 3)), "Organization/gp-1")).collect();
    store.apply(writes).await.expect("bulk batch");
    let params = vec![("family".to_string(), "bulk1".to_string()), ("_count".to_string(), "5".to_string())];
    let query =
        carecircle_fhir::search::parse_search(Some("Patient"), &params, carecircle_fhir::search::Handling::Strict)
            .expect("query");
    let page = store.search(&query).await.expect("search");
    assert_eq!((page.total, page.entries.len()), (100, 5));
    assert_eq!(store.backend_name(), "postgres");
}
