//! The runtime on NATS JetStream (needs NATS with JetStream on 127.0.0.1:4222, as on every
//! machine here and in CI): an event taken by a process that died before acknowledging it is
//! handed to another process, which raises the alert once.

use std::sync::Arc;
use std::time::Duration;

use carecircle_audit_store::{load_or_create_signer, AuditLog, AuditLogConfig, AuditStore};
use carecircle_care::codes;
use carecircle_notify::{NatsEvents, Notifier};
use carecircle_record::{Caller, Guard, PublishingStore, Record};
use carecircle_store::Store;
use carecircle_store_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::{test_config, GrantAccess};

const NATS: &str = "nats://127.0.0.1:4222";

/// Deletes the stream when dropped, also when the test fails.
struct Stream(String);

impl Drop for Stream {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async { NatsEvents::connect(NATS, &name).await.ok()?.delete().await.ok() })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_abandoned_by_a_dead_process_is_handled_by_another() {
    let stream = Stream(format!("carecircle-it-{}", uuid_like()));
    let ack_wait = Duration::from_secs(1);
    let nats = NatsEvents::connect_with_ack_wait(NATS, &stream.0, ack_wait).await.expect("NATS on 127.0.0.1:4222");
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteStore::open_dir(dir.path()).unwrap();
    raw.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(PublishingStore::new(Arc::new(raw), Arc::new(nats.bus())));
    let audit_store = AuditStore::open_sqlite_dir(dir.path()).await.unwrap();
    let signer = load_or_create_signer(&dir.path().join("audit.key"), "carecircle.test/audit").unwrap();
    let audit = AuditLog::start(audit_store, signer, AuditLogConfig::default());
    let record =
        Record::with_guard(store.clone(), Guard { access: Arc::new(GrantAccess::default()), audit: Arc::new(audit) });

    // Joe's plan and an ED attendance, written before any notifier runs.
    let write = |custodian: &str, body: Value| {
        let (record, caller) = (record.clone(), Caller { custodian: custodian.to_string() });
        async move {
            let resource_type = body["resourceType"].as_str().unwrap().to_string();
            match body.get("id").and_then(Value::as_str).map(str::to_string) {
                Some(id) => drop(record.update(&caller, &resource_type, &id, body, None).await.expect("write")),
                None => drop(record.create(&caller, &resource_type, body, None).await.expect("write")),
            }
        }
    };
    for (id, sector) in [("org-hosp", "acute"), ("org-crisis", "mental-health")] {
        write(
            "Organization/partnership",
            json!({"resourceType": "Organization", "id": id, "name": id,
            "type": [{"coding": [{"system": codes::SECTOR_SYSTEM, "code": sector}]}]}),
        )
        .await;
    }
    write("Organization/org-mh", crate::alerts::plan(600)).await;
    write("Organization/org-hosp", crate::alerts::ed_encounter()).await;

    // A process takes every event and dies before acknowledging any.
    let ghost = NatsEvents::connect_with_ack_wait(NATS, &stream.0, ack_wait).await.unwrap();
    assert_eq!(ghost.take_and_abandon(100).await.unwrap(), 4, "two organisations, the plan, the encounter");
    drop(ghost);

    // Another process starts: once the wait has passed the events are handed to it.
    let notifier = Notifier::new(record.clone(), test_config()).unwrap();
    notifier.start_nats(nats.clone()).await.unwrap();
    let view = crate::alerts::wait_for_alert(&notifier, |_| true).await;
    assert_eq!(view.occurrences, 1, "raised once");
    for _ in 0..100 {
        if nats.outstanding_events().await == Ok(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the redelivered events were never acknowledged");
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}
