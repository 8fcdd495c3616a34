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
