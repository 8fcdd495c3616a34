//! The shared storage test suite on the SQLite backend, each test in its own database file.

use std::sync::Arc;

use carecircle_store::Store;
use carecircle_store_sqlite::SqliteStore;

async fn fresh_store() -> Arc<dyn Store> {
    // The directory is leaked on purpose so the file outlives the store; it is in the OS temp dir.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open_dir(&dir).expect("open sqlite store");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrations are idempotent");
    Arc::new(store)
}

carecircle_store_tests::store_test_suite!(fresh_store);

/// A store created before migration 2 keeps its data, and its reference rows are found through
/// the new lookup index after the upgrade.
#[tokio::test]
async fn a_version_1_store_upgrades_and_keeps_its_references() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("carecircle.db");
    {
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection.execute_batch(include_str!("../../migrations/0001_init.sql")).expect("version 1 schema");
        connection
            .execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);
                 INSERT INTO resources (pk, res_type, res_id, version, last_updated, deleted, custodian, body)
                 VALUES (1, 'Encounter', 'e1', 1, 0, 0, 'Organization/a',
                         '{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"finished\",\"subject\":{\"reference\":\"Patient/p1\"}}');",
            )
            .expect("version 1 data");
        let key = carecircle_store::sql::param_key("Encounter", "subject");
        connection
            .execute(
                "INSERT INTO idx_reference (resource_pk, param_key, target_type, target_id, url) VALUES (1, ?1, 'Patient', 'p1', 'Patient/p1')",
                [key],
            )
            .expect("version 1 index row");
    }
    let store = SqliteStore::open(&path).expect("open store");
    store.migrate().await.expect("upgrade");
    let params = vec![("subject".to_string(), "Patient/p1".to_string())];
    let query =
        carecircle_fhir::search::parse_search(Some("Encounter"), &params, carecircle_fhir::search::Handling::Strict)
            .expect("query");
    let page = store.search(&query).await.expect("search");
    assert_eq!(page.entries.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["e1"]);
    let connection = rusqlite::Connection::open(&path).expect("reopen");
    let indexes: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'idx_reference' AND sql IS NOT NULL ORDER BY name")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .expect("index list");
    assert_eq!(indexes, ["idx_reference_lookup"]);
}

/// The write generation changes after every commit, also one made by another store object on the
/// same file (as another process, such as `carecircle import` beside `serve`, would), and stays
/// put while nothing is written.
#[tokio::test]
async fn the_write_generation_sees_every_commit_including_other_processes() {
    use carecircle_store::WriteOp;
    let dir = tempfile::tempdir().expect("temp dir");
    let serving = SqliteStore::open_dir(dir.path()).expect("open");
    serving.migrate().await.expect("migrate");
    let other = SqliteStore::open_dir(dir.path()).expect("open a second time");
    let put = |id: &str| WriteOp::Put {
        resource_type: "Patient".into(),
        id: id.into(),
        resource: serde_json::json!({"resourceType": "Patient", "id": id}),
        index: Vec::new(),
        custodian: Some("Organization/a".into()),
        expected_version: None,
    };
    let before = serving.write_generation().expect("the embedded store reports a generation");
    assert_eq!(serving.write_generation(), Some(before), "no write, no change");
    serving.read("Patient", "none").await.expect("read");
    assert_eq!(serving.write_generation(), Some(before), "reads change nothing");
    serving.apply(vec![put("a")]).await.expect("write");
    let after_own = serving.write_generation().expect("generation");
    assert_ne!(after_own, before);
    other.apply(vec![put("b")]).await.expect("write from elsewhere");
    assert_ne!(serving.write_generation().expect("generation"), after_own);
}
