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

async fn search_ids(store: &Arc<dyn Store>, resource_type: &str, params: &[(&str, &str)]) -> (Vec<String>, usize) {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let query =
        carecircle_fhir::search::parse_search(Some(resource_type), &params, carecircle_fhir::search::Handling::Strict)
            .expect("query");
    let page = store.search(&query).await.expect("search");
    let mut ids: Vec<String> = page.entries.into_iter().map(|r| r.id).collect();
    ids.sort();
    (ids, page.total)
}

async fn count_rows(store: &PostgresStore, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(store.pool()).await.expect("count rows")
}

fn delete(id: &str, expected_version: Option<i64>) -> WriteOp {
    WriteOp::Delete { resource_type: "Patient".into(), id: id.into(), expected_version }
}

fn with_expected(mut write: WriteOp, expected: i64) -> WriteOp {
    if let WriteOp::Put { expected_version, .. } = &mut write {
        *expected_version = Some(expected);
    }
    write
}

#[tokio::test]
async fn mixed_batches_create_update_and_delete_at_once() {
    let store = fresh_store().await;
    store
        .apply(vec![
            put(patient("u1", "Before"), "Organization/gp-1"),
            put(patient("d1", "Doomed"), "Organization/gp-2"),
            put(patient("g1", "Gone"), "Organization/gp-1"),
        ])
        .await
        .expect("seed");
    store.apply(vec![delete("g1", None)]).await.expect("delete g1");

    let mut writes: Vec<WriteOp> =
        (0..50).map(|i| put(patient(&format!("n{i:02}"), "Fresh"), "Organization/gp-3")).collect();
    writes.insert(10, with_expected(put(patient("u1", "After"), "Organization/gp-3"), 1));
    writes.insert(20, delete("d1", Some(1)));
    writes.insert(30, delete("missing", None));
    writes.insert(40, with_expected(put(patient("g1", "Back"), "Organization/gp-3"), 0));
    let outcomes = store.apply(writes.clone()).await.expect("mixed batch");
    assert_eq!(outcomes.len(), writes.len());

    let summary: Vec<(String, WriteEffect, i64, bool)> =
        outcomes.iter().map(|o| (o.stored.id.clone(), o.effect.clone(), o.stored.version, o.stored.deleted)).collect();
    assert_eq!(summary[10], ("u1".into(), WriteEffect::Updated, 2, false));
    assert_eq!(summary[20], ("d1".into(), WriteEffect::Deleted, 2, true));
    assert_eq!(summary[30], ("missing".into(), WriteEffect::Unchanged, 0, true));
    assert_eq!(summary[40], ("g1".into(), WriteEffect::Created, 3, false));
    assert_eq!(outcomes[20].stored.custodian.as_deref(), Some("Organization/gp-2"));
    assert_eq!(outcomes[20].stored.body, None);
    for (write, outcome) in writes.iter().zip(&outcomes) {
        let WriteOp::Put { id, .. } = write else { continue };
        assert_eq!(&outcome.stored.id, id, "outcomes are in input order");
        let body = outcome.stored.json().expect("stored body");
        assert_eq!(body["meta"]["versionId"], json!(outcome.stored.version.to_string()));
        assert_eq!(body["id"], json!(id));
        assert!(body["meta"]["lastUpdated"].is_string());
        let read = store.read("Patient", id).await.expect("read").expect("stored");
        assert_eq!(read, outcome.stored, "the outcome is what was stored");
        if id.starts_with('n') {
            assert_eq!((outcome.effect.clone(), outcome.stored.version), (WriteEffect::Created, 1));
        }
    }

    // The replaced versions are history; the deletion is current.
    let old = store.read_version("Patient", "u1", 1).await.expect("read version").expect("archived");
    assert_eq!(old.json().expect("body")["name"][0]["family"], json!("Before"));
    let d1 = store.read("Patient", "d1").await.expect("read").expect("row");
    assert!(d1.deleted && d1.body.is_none() && d1.version == 2);
    assert!(store.read_version("Patient", "d1", 1).await.expect("read version").is_some());
    assert!(store.read("Patient", "missing").await.expect("read").is_none());
    let history = store
        .history(&carecircle_store::HistoryQuery {
            resource_type: Some("Patient".into()),
            id: Some("g1".into()),
            since: None,
            count: 10,
            offset: 0,
        })
        .await
        .expect("history");
    assert_eq!(history.entries.iter().map(|r| r.version).collect::<Vec<_>>(), [3, 2, 1]);

    // Search sees exactly the new state.
    let (ids, total) = search_ids(&store, "Patient", &[("family", "fresh"), ("_count", "100")]).await;
    assert_eq!((ids.len(), total), (50, 50));
    assert_eq!(search_ids(&store, "Patient", &[("family", "after")]).await, (vec!["u1".to_string()], 1));
    assert_eq!(search_ids(&store, "Patient", &[("family", "before")]).await.1, 0);
    assert_eq!(search_ids(&store, "Patient", &[("family", "doomed")]).await.1, 0);
    assert_eq!(search_ids(&store, "Patient", &[("family", "back")]).await, (vec!["g1".to_string()], 1));
    let (_, all) = search_ids(&store, "Patient", &[("_count", "0")]).await;
    assert_eq!(all, 52);
}

#[tokio::test]
async fn a_conflict_anywhere_in_a_large_batch_writes_nothing() {
    let schema = unique_schema();
    let store = connect(&schema).await;
    store.migrate().await.expect("migrate");
    store.apply(vec![put(patient("old", "Kept"), "Organization/gp-1")]).await.expect("seed");
    let tables = ["resources", "resource_versions", "idx_string", "idx_token", "idx_date"];
    let mut before = Vec::new();
    for table in tables {
        before.push(count_rows(&store, table).await);
    }

    let mut writes: Vec<WriteOp> =
        (0..1500).map(|i| put(patient(&format!("big{i}"), "Large"), "Organization/gp-1")).collect();
    writes.insert(700, put(patient("old", "Changed"), "Organization/gp-1"));
    writes.insert(1200, with_expected(put(patient("old2", "Stale"), "Organization/gp-1"), 3));
    match store.apply(writes).await {
        Err(StoreError::VersionConflict { id, expected: 3, current: 0, .. }) => assert_eq!(id, "old2"),
        other => panic!("expected a version conflict, got {other:?}"),
    }

    for (table, count) in tables.into_iter().zip(before) {
        assert_eq!(count_rows(&store, table).await, count, "{table} is unchanged");
    }
    let old = store.read("Patient", "old").await.expect("read").expect("kept");
    assert_eq!(old.version, 1);
    assert!(store.read("Patient", "big0").await.expect("read").is_none());
    let store: Arc<dyn Store> = Arc::new(store);
    assert_eq!(search_ids(&store, "Patient", &[("family", "large")]).await.1, 0);
    assert_eq!(search_ids(&store, "Patient", &[("family", "kept")]).await.1, 1);
}

#[tokio::test]
async fn a_batch_naming_one_resource_twice_applies_in_order() {
    let store = fresh_store().await;
    let outcomes = store
        .apply(vec![
            put(patient("twice", "First"), "Organization/gp-1"),
            put(patient("other", "Other"), "Organization/gp-1"),
            put(patient("twice", "Second"), "Organization/gp-1"),
            delete("other", Some(1)),
        ])
        .await
        .expect("batch");
    let effects: Vec<(WriteEffect, i64)> = outcomes.iter().map(|o| (o.effect.clone(), o.stored.version)).collect();
    assert_eq!(
        effects,
        [(WriteEffect::Created, 1), (WriteEffect::Created, 1), (WriteEffect::Updated, 2), (WriteEffect::Deleted, 2)]
    );
    assert_eq!(search_ids(&store, "Patient", &[("family", "second")]).await, (vec!["twice".to_string()], 1));
    assert_eq!(search_ids(&store, "Patient", &[("family", "first")]).await.1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_creating_the_same_ids_all_succeed() {
    let store = fresh_store().await;
    let n = 4;
    let tasks: Vec<_> = (0..n)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let writes: Vec<WriteOp> = (0..40)
                    .map(|i| put(patient(&format!("c{i:03}"), &format!("Task{t}")), "Organization/gp-1"))
                    .collect();
                store.apply(writes).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let outcomes = task.await.expect("task").expect("unconditional puts never fail");
        created += outcomes.iter().filter(|o| o.effect == WriteEffect::Created).count();
    }
    assert_eq!(created, 40, "each id is created once");
    for i in 0..40 {
        let stored = store.read("Patient", &format!("c{i:03}")).await.expect("read").expect("stored");
        assert_eq!(stored.version, n as i64);
    }
    let (_, total) = search_ids(&store, "Patient", &[("_count", "0")]).await;
    assert_eq!(total, 40);
    let mut family_total = 0;
    for t in 0..n {
        family_total += search_ids(&store, "Patient", &[("family", &format!("task{t}"))]).await.1;
    }
    assert_eq!(family_total, 40, "each resource is indexed by its current version only");
}
