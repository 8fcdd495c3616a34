//! The websocket channel below the HTTP layer: binding tokens for the subscriber only, single
//! use, bound connections getting the handshake, heartbeats and notifications their subscriber
//! may read, and a connection that reads too slowly being told to close.

use std::sync::Arc;
use std::time::Duration;

use carecircle_care::Topic;
use carecircle_notify::{BindError, NotifyConfig, WsConnection, WsTokenError};
use carecircle_store::Store;
use carecircle_store_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::{test_config, GrantAccess, TestRuntime};

const CONTENT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const HEARTBEAT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";

fn websocket_subscription(content: &str) -> Value {
    json!({
        "resourceType": "Subscription", "status": "requested", "reason": "test",
        "criteria": Topic::CarePlanChanged.url(),
        "channel": {"type": "websocket", "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": CONTENT, "valueCode": content}]}}
    })
}

fn care_plan(patient: &str) -> Value {
    json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
           "subject": {"reference": format!("Patient/{patient}")}})
}

async fn runtime_with(config: NotifyConfig) -> TestRuntime {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_dir(dir.path()).expect("open store");
    store.migrate().await.expect("migrate");
    let runtime = TestRuntime::on(Arc::new(store), dir.path(), Arc::new(GrantAccess::default()), config).await;
    TestRuntime { _dir: Some(dir), ..runtime }
}

async fn subscribe(runtime: &TestRuntime, owner: &str, body: Value) -> String {
    let stored = runtime.write_as(owner, body).await;
    let id = stored["id"].as_str().expect("id").to_string();
    for _ in 0..500 {
        if runtime.notifier.status(&id).is_some_and(|s| s.status == "active") {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("Subscription/{id} never became active");
}

async fn next(connection: &mut WsConnection) -> Value {
    let text = tokio::time::timeout(Duration::from_secs(10), connection.next())
        .await
        .expect("a message within 10 s")
        .expect("the connection stays open");
    serde_json::from_str(&text).expect("JSON")
}

fn notification_type(bundle: &Value) -> String {
    let parameters = bundle["entry"][0]["resource"]["parameter"].as_array().cloned().unwrap_or_default();
    parameters.iter().find(|p| p["name"] == "type").and_then(|p| p["valueCode"].as_str()).unwrap_or_default().into()
}

#[tokio::test]
async fn tokens_go_only_to_the_subscriber_and_bind_once() {
    let runtime = TestRuntime::new().await;
    let id = subscribe(&runtime, "Organization/org-a", websocket_subscription("id-only")).await;
    assert_eq!(
        runtime.notifier.issue_ws_token("Organization/org-b", std::slice::from_ref(&id)),
        Err(WsTokenError::NotSubscriber(id.clone()))
    );
    assert_eq!(
        runtime.notifier.issue_ws_token("Organization/org-a", &["nothing-here".to_string()]),
        Err(WsTokenError::NotActive("nothing-here".into()))
    );
    let issued = runtime.notifier.issue_ws_token("Organization/org-a", std::slice::from_ref(&id)).expect("a token");
    assert_eq!(issued.subscriptions, vec![id.clone()]);

    let mut connection = runtime.notifier.ws_connection();
    assert_eq!(connection.bind("made-up"), Err(BindError::UnknownToken));
    assert_eq!(connection.bind(&issued.token), Ok(vec![id.clone()]));
    assert_eq!(notification_type(&next(&mut connection).await), "handshake");
    let mut again = runtime.notifier.ws_connection();
    assert_eq!(again.bind(&issued.token), Err(BindError::UnknownToken), "single use");
    assert_eq!(runtime.notifier.ws_connections(&id), 1);
    drop(connection);
    assert_eq!(runtime.notifier.ws_connections(&id), 0, "dropping the connection unbinds it");
}

#[tokio::test]
async fn a_bound_connection_gets_what_its_subscriber_may_read() {
    let runtime = TestRuntime::new().await;
    runtime.access.grant("Organization/org-b", "p-shared");
    let id = subscribe(&runtime, "Organization/org-b", websocket_subscription("full-resource")).await;
    let issued = runtime.notifier.issue_ws_token("Organization/org-b", std::slice::from_ref(&id)).unwrap();
    let mut connection = runtime.notifier.ws_connection();
    connection.bind(&issued.token).unwrap();
    assert_eq!(notification_type(&next(&mut connection).await), "handshake");

    runtime.write_as("Organization/org-a", care_plan("p-private")).await;
    let shared = runtime.write_as("Organization/org-a", care_plan("p-shared")).await;
    let notification = next(&mut connection).await;
    assert_eq!(notification_type(&notification), "event-notification");
    assert_eq!(notification["entry"][1]["resource"]["id"], shared["id"], "only the plan org-b may read");
    assert_eq!(runtime.notifier.status(&id).unwrap().events_since_start, 1);
    assert!(tokio::time::timeout(Duration::from_millis(300), connection.next()).await.is_err(), "nothing else");
}

#[tokio::test]
async fn heartbeats_reach_bound_connections() {
    let runtime = TestRuntime::new().await;
    let mut body = websocket_subscription("empty");
    body["channel"]["extension"] = json!([{"url": HEARTBEAT, "valueUnsignedInt": 1}]);
    let id = subscribe(&runtime, "Organization/org-a", body).await;
    let issued = runtime.notifier.issue_ws_token("Organization/org-a", std::slice::from_ref(&id)).unwrap();
    let mut connection = runtime.notifier.ws_connection();
    connection.bind(&issued.token).unwrap();
    assert_eq!(notification_type(&next(&mut connection).await), "handshake");
    assert_eq!(notification_type(&next(&mut connection).await), "heartbeat");
}

#[tokio::test]
async fn a_connection_that_reads_too_slowly_is_told_to_close() {
    let mut config = test_config();
    config.websocket_queue = 2;
    let runtime = runtime_with(config).await;
    let id = subscribe(&runtime, "Organization/org-a", websocket_subscription("id-only")).await;
    let issued = runtime.notifier.issue_ws_token("Organization/org-a", std::slice::from_ref(&id)).unwrap();
    let mut connection = runtime.notifier.ws_connection();
    connection.bind(&issued.token).unwrap();
    for _ in 0..4 {
        runtime.write_as("Organization/org-a", care_plan("p1")).await;
    }
    // Wait until every event was numbered, so the queue has overflowed.
    for _ in 0..500 {
        if runtime.notifier.status(&id).unwrap().events_since_start == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.next()).await.expect("an answer");
    assert!(closed.is_err_and(|reason| reason.contains("too slowly")));
    assert_eq!(runtime.notifier.ws_connections(&id), 0, "dropped from the subscription");
}
