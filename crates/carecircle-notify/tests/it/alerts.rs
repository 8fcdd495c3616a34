//! Care-plan trigger alerts: raised when an emergency-department Encounter is stored, merged
//! when repeated, escalated when not acknowledged in time, stopped by acknowledgement, kept in
//! the store so another process carries on.

use std::sync::Arc;

use carecircle_care::{codes, AlertStatus};
use carecircle_notify::{AlertView, Notifier};
use carecircle_record::RequestMeta;
use serde_json::{json, Value};

use crate::{system, test_config, GrantAccess, TestRuntime};

const HOSPITAL: &str = "Organization/org-hosp";
const CRISIS: &str = "Organization/org-crisis";
const MH_TRUST: &str = "Organization/org-mh";

fn organisation(id: &str, sector: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "name": id,
           "type": [{"coding": [{"system": codes::SECTOR_SYSTEM, "code": sector}]}]})
}

/// Joe's plan: when he attends the emergency department, the crisis team is told, first its duty
/// worker, then its manager, each with `ack_seconds` to acknowledge.
pub(crate) fn plan(ack_seconds: u32) -> Value {
    json!({
        "resourceType": "CarePlan", "id": "plan-joe", "status": "active", "intent": "plan",
        "subject": {"reference": "Patient/joe"},
        "activity": [{
            "id": "ed",
            "extension": [{"url": codes::TRIGGER_EXTENSION, "extension": [
                {"url": "kind", "valueCode": "event"},
                {"url": "event", "valueCoding": {"system": codes::TRIGGER_EVENT_SYSTEM, "code": "ed-attendance"}},
                {"url": "response", "extension": [
                    {"url": "agency", "valueReference": {"reference": CRISIS}},
                    {"url": "text", "valueString": "Crisis team to see Joe in the emergency department."},
                    {"url": "contact", "valueReference": {"reference": "PractitionerRole/duty-worker"}},
                    {"url": "contact", "valueReference": {"reference": "PractitionerRole/team-manager"}},
                    {"url": "acknowledge-within", "valueDuration": {"value": ack_seconds, "code": "s"}}
                ]}
            ]}],
            "detail": {"status": "scheduled", "description": "If Joe attends the emergency department",
                       "performer": [{"reference": CRISIS}]}
        }]
    })
}

pub(crate) fn ed_encounter() -> Value {
    json!({"resourceType": "Encounter", "status": "in-progress",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
           "subject": {"reference": "Patient/joe"}})
}

async fn setup(runtime: &TestRuntime, ack_seconds: u32) {
    runtime.write_as("Organization/partnership", organisation("org-hosp", "acute")).await;
    runtime.write_as("Organization/partnership", organisation("org-crisis", "mental-health")).await;
    runtime.write_as(MH_TRUST, plan(ack_seconds)).await;
}

async fn the_alert(notifier: &Notifier) -> Option<AlertView> {
    let key = format!("CarePlan/plan-joe|ed|{}|event", CRISIS.trim_start_matches("Organization/"));
    let key = format!("Patient/joe|{key}");
    notifier.alert(&carecircle_notify_alert_id(&key)).await.expect("read alert")
}

/// The alert id as the runtime names it (FNV-1a of the dedup key).
fn carecircle_notify_alert_id(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("alert-{hash:016x}")
}

pub(crate) async fn wait_for_alert(notifier: &Notifier, done: impl Fn(&AlertView) -> bool) -> AlertView {
    for _ in 0..300 {
        if let Some(view) = the_alert(notifier).await {
            if done(&view) {
                return view;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the alert never reached the expected state: {:?}", the_alert(notifier).await);
}

#[tokio::test]
async fn an_ed_attendance_alerts_the_agency_with_the_plan_attached() {
    let runtime = TestRuntime::new().await;
    setup(&runtime, 600).await;
    runtime.write_as(HOSPITAL, ed_encounter()).await;
    let view = wait_for_alert(&runtime.notifier, |_| true).await;
    assert_eq!((view.status, view.contact_level, view.occurrences), (AlertStatus::Raised, 0, 1));
    let stored = runtime.store.read("Communication", &view.id).await.unwrap().unwrap();
    assert_eq!(stored.custodian.as_deref(), Some(CRISIS), "the alerted agency holds its alert");
    let stored = stored.json().unwrap();
    assert_eq!(stored["status"], "in-progress");
    assert_eq!(stored["recipient"][0]["reference"], CRISIS);
    assert_eq!(stored["recipient"][1]["reference"], "PractitionerRole/duty-worker");
    assert_eq!(stored["about"][0]["reference"], "CarePlan/plan-joe");
    assert_eq!(stored["payload"][0]["contentString"], "Crisis team to see Joe in the emergency department.");
    use base64::Engine as _;
    let excerpt = base64::engine::general_purpose::STANDARD
        .decode(stored["payload"][1]["contentAttachment"]["data"].as_str().unwrap())
        .unwrap();
    let excerpt: Value = serde_json::from_slice(&excerpt).unwrap();
    assert_eq!(excerpt["id"], "ed", "the plan's activity is attached");
}

#[tokio::test]
async fn repeats_within_the_window_are_merged_not_resent() {
    let runtime = TestRuntime::new().await;
    setup(&runtime, 600).await;
    runtime.write_as(HOSPITAL, ed_encounter()).await;
    wait_for_alert(&runtime.notifier, |_| true).await;
    runtime.write_as(HOSPITAL, ed_encounter()).await;
    runtime.write_as(HOSPITAL, ed_encounter()).await;
    let view = wait_for_alert(&runtime.notifier, |v| v.occurrences == 3).await;
    assert_eq!(view.contact_level, 0, "a merged repeat is not re-sent");
    let history = runtime
        .store
        .history(&carecircle_store::HistoryQuery {
            resource_type: Some("Communication".into()),
            id: Some(view.id.clone()),
            since: None,
            count: 100,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(history.entries.len(), 3, "one alert, updated twice");
}

#[tokio::test]
async fn an_unacknowledged_alert_escalates_and_acknowledgement_stops_it() {
    let runtime = TestRuntime::new().await;
    setup(&runtime, 1).await;
    runtime.write_as(HOSPITAL, ed_encounter()).await;
    let escalated = wait_for_alert(&runtime.notifier, |v| v.contact_level == 1).await;
    assert_eq!(escalated.status, AlertStatus::Raised);
    let stored = runtime.store.read("Communication", &escalated.id).await.unwrap().unwrap().json().unwrap();
    assert_eq!(stored["recipient"][1]["reference"], "PractitionerRole/team-manager");

    // Someone at another agency may not acknowledge it.
    let stranger = runtime.notifier.acknowledge(&system(HOSPITAL), &escalated.id, RequestMeta::default()).await;
    assert!(stranger.is_err());
    runtime.access.grant(CRISIS, "joe");
    let acknowledged =
        runtime.notifier.acknowledge(&system(CRISIS), &escalated.id, RequestMeta::default()).await.expect("ack");
    assert_eq!(acknowledged.status, AlertStatus::Acknowledged);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let later = the_alert(&runtime.notifier).await.unwrap();
    assert_eq!((later.status, later.contact_level), (AlertStatus::Acknowledged, 1), "no escalation after ack");
}

#[tokio::test]
async fn alert_state_survives_into_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn carecircle_store::Store> = {
        let store = carecircle_store_sqlite::SqliteStore::open_dir(dir.path()).unwrap();
        carecircle_store::Store::migrate(&store).await.unwrap();
        Arc::new(store)
    };
    let mut quiet = test_config();
    quiet.tick_every = std::time::Duration::from_secs(3600);
    let first = TestRuntime::on(raw.clone(), dir.path(), Arc::new(GrantAccess::default()), quiet).await;
    setup(&first, 1).await;
    first.write_as(HOSPITAL, ed_encounter()).await;
    wait_for_alert(&first.notifier, |_| true).await;

    // A second server on the same store escalates what the first raised once it is overdue.
    let second_dir = tempfile::tempdir().unwrap();
    let second = TestRuntime::on(raw, second_dir.path(), Arc::new(GrantAccess::default()), test_config()).await;
    let view = wait_for_alert(&second.notifier, |v| v.contact_level == 1).await;
    assert_eq!(view.occurrences, 1);
}

#[tokio::test]
async fn two_runtimes_ticking_on_one_store_escalate_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn carecircle_store::Store> = {
        let store = carecircle_store_sqlite::SqliteStore::open_dir(dir.path()).unwrap();
        carecircle_store::Store::migrate(&store).await.unwrap();
        Arc::new(store)
    };
    // Two server processes on one database, both looking for overdue alerts every 10 ms.
    let mut eager = test_config();
    eager.tick_every = std::time::Duration::from_millis(10);
    let first = TestRuntime::on(raw.clone(), dir.path(), Arc::new(GrantAccess::default()), eager.clone()).await;
    let second_dir = tempfile::tempdir().unwrap();
    let second = TestRuntime::on(raw, second_dir.path(), Arc::new(GrantAccess::default()), eager).await;
    setup(&first, 1).await;
    first.write_as(HOSPITAL, ed_encounter()).await;
    let view = wait_for_alert(&second.notifier, |v| v.status == AlertStatus::Unanswered).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Raised, escalated to the manager, given up: three versions, however the ticks raced.
    let history = first
        .store
        .history(&carecircle_store::HistoryQuery {
            resource_type: Some("Communication".into()),
            id: Some(view.id.clone()),
            since: None,
            count: 100,
            offset: 0,
        })
        .await
        .unwrap();
    let levels: Vec<(i64, Value, Value)> = history
        .entries
        .iter()
        .map(|e| {
            let body = e.json().unwrap();
            (e.version, body["status"].clone(), body["recipient"][1]["reference"].clone())
        })
        .collect();
    assert_eq!(history.entries.len(), 3, "one raise, one escalation, one give-up: {levels:?}");
    let last = the_alert(&first.notifier).await.unwrap();
    assert_eq!((last.status, last.contact_level, last.occurrences), (AlertStatus::Unanswered, 1, 1));
}
