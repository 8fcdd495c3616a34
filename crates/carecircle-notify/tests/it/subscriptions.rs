//! Rest-hook subscriptions: handshake, delivery, filters, the subscriber's access decision,
//! retries with backoff, the delivery log, giving up, heartbeats.

use carecircle_care::{DeliveryOutcome, Topic};
use serde_json::{json, Value};

use crate::{wait_until, Receiver, TestRuntime};

const FILTER: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
const CONTENT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const HEARTBEAT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";

fn subscription(topic: Topic, filter: Option<&str>, endpoint: &str, content: &str) -> Value {
    let mut body = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": topic.url(),
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "header": ["Authorization: Bearer secret-of-the-subscriber"],
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": CONTENT, "valueCode": content}]}
        }
    });
    if let Some(filter) = filter {
        body["_criteria"] = json!({"extension": [{"url": FILTER, "valueString": filter}]});
    }
    body
}

fn care_plan(patient: &str) -> Value {
    json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
           "subject": {"reference": format!("Patient/{patient}")}})
}

fn parameter<'a>(bundle: &'a Value, name: &str) -> Option<&'a Value> {
    bundle.pointer("/entry/0/resource/parameter")?.as_array()?.iter().find(|p| p["name"] == name)
}

fn notification_type(bundle: &Value) -> String {
    parameter(bundle, "type").and_then(|p| p["valueCode"].as_str()).unwrap_or_default().to_string()
}

async fn stored_status(runtime: &TestRuntime, id: &str) -> String {
    let stored = runtime.store.read("Subscription", id).await.expect("read").expect("exists");
    stored.json().expect("body")["status"].as_str().unwrap_or_default().to_string()
}

async fn active_subscription(runtime: &TestRuntime, receiver: &Receiver, owner: &str, body: Value) -> String {
    let before = receiver.bundles().len();
    let stored = runtime.write_as(owner, body).await;
    let id = stored["id"].as_str().expect("id").to_string();
    let bundles = receiver.wait_for(before + 1).await;
    assert_eq!(notification_type(&bundles[before]), "handshake");
    let mut active = false;
    for _ in 0..200 {
        if stored_status(runtime, &id).await == "active" {
            active = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(active, "the handshake makes the subscription active");
    id
}

#[tokio::test]
async fn a_rest_hook_subscription_is_handshaken_then_notified_of_matching_changes() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    let id = active_subscription(
        &runtime,
        &receiver,
        "Organization/org-a",
        subscription(Topic::CarePlanChanged, Some("CarePlan?patient=Patient/p1"), &receiver.url, "full-resource"),
    )
    .await;

    runtime.write_as("Organization/org-a", care_plan("p2")).await;
    let plan = runtime.write_as("Organization/org-a", care_plan("p1")).await;
    let bundles = receiver.wait_for(2).await;
    let notification = &bundles[1];
    assert_eq!(notification["type"], "history");
    assert_eq!(notification_type(notification), "event-notification");
    assert_eq!(parameter(notification, "events-since-subscription-start").unwrap()["valueString"], "1");
    assert_eq!(
        parameter(notification, "subscription").unwrap()["valueReference"]["reference"],
        format!("http://carecircle.test/fhir/Subscription/{id}")
    );
    assert_eq!(notification["entry"][1]["resource"]["id"], plan["id"], "full-resource carries the plan");
    assert_eq!(notification["entry"][1]["request"]["method"], "POST");
    let (authorization, _) = receiver.received.lock().unwrap()[1].clone();
    assert_eq!(authorization.as_deref(), Some("Bearer secret-of-the-subscriber"), "channel headers are sent");

    // The plan of the other patient did not match the filter: nothing else arrived.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(receiver.bundles().len(), 2);
    let report = runtime.notifier.status(&id).expect("live");
    assert_eq!((report.status.as_str(), report.events_since_start), ("active", 1));
}

#[tokio::test]
async fn a_subscriber_is_told_only_what_its_access_decision_lets_it_read() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    runtime.access.grant("Organization/org-b", "p-shared");
    active_subscription(
        &runtime,
        &receiver,
        "Organization/org-b",
        subscription(Topic::CarePlanChanged, None, &receiver.url, "id-only"),
    )
    .await;

    runtime.write_as("Organization/org-a", care_plan("p-private")).await;
    let shared = runtime.write_as("Organization/org-a", care_plan("p-shared")).await;
    let bundles = receiver.wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(receiver.bundles().len(), 2, "the plan org-b may not read was not notified");
    let focus = &parameter(&bundles[1], "notification-event").unwrap()["part"][2]["valueReference"]["reference"];
    assert_eq!(focus, &json!(format!("http://carecircle.test/fhir/CarePlan/{}", shared["id"].as_str().unwrap())));
    assert!(bundles[1]["entry"][1].get("resource").is_none(), "id-only carries no resource");
}

#[tokio::test]
async fn care_team_encounters_reach_only_organisations_in_the_persons_care() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    runtime.access.grant("Organization/org-gp", "p1");
    active_subscription(
        &runtime,
        &receiver,
        "Organization/org-gp",
        subscription(Topic::CareTeamEncounter, None, &receiver.url, "id-only"),
    )
    .await;
    let encounter = |patient: &str| {
        json!({"resourceType": "Encounter", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": format!("Patient/{patient}")}})
    };
    runtime.write_as("Organization/org-hosp", encounter("p-other")).await;
    runtime.write_as("Organization/org-hosp", encounter("p1")).await;
    receiver.wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(receiver.bundles().len(), 2, "one handshake, one encounter of the person in care");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_and_logged() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    let id = active_subscription(
        &runtime,
        &receiver,
        "Organization/org-a",
        subscription(Topic::CarePlanChanged, None, &receiver.url, "id-only"),
    )
    .await;
    receiver.fail_first.store(2, std::sync::atomic::Ordering::SeqCst);
    runtime.write_as("Organization/org-a", care_plan("p1")).await;
    receiver.wait_for(2).await;

    let log: Vec<_> = runtime.notifier.delivery_log(Some(&id)).into_iter().filter(|r| r.event_number == 1).collect();
    assert_eq!(log.len(), 3, "two failures, then delivered: {log:?}");
    assert!(matches!(log[0].outcome, DeliveryOutcome::Failed { http_status: Some(500), .. }));
    assert!(matches!(log[2].outcome, DeliveryOutcome::Delivered { http_status: 200 }));
    assert_eq!(log.iter().map(|r| r.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    let first_wait = log[0].next_attempt_at.unwrap() - log[0].attempted_at;
    let second_wait = log[1].next_attempt_at.unwrap() - log[1].attempted_at;
    assert_eq!((first_wait.whole_milliseconds(), second_wait.whole_milliseconds()), (50, 100), "backoff doubles");
    assert!(log[1].attempted_at >= log[0].next_attempt_at.unwrap(), "the retry waited");
    assert!(log[2].next_attempt_at.is_none());
    assert_eq!(stored_status(&runtime, &id).await, "active");
}

#[tokio::test]
async fn a_subscription_whose_endpoint_never_answers_goes_to_error() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    let id = active_subscription(
        &runtime,
        &receiver,
        "Organization/org-a",
        subscription(Topic::CarePlanChanged, None, &receiver.url, "empty"),
    )
    .await;
    receiver.fail_first.store(100, std::sync::atomic::Ordering::SeqCst);
    runtime.write_as("Organization/org-a", care_plan("p1")).await;
    let notifier = runtime.notifier.clone();
    let id_for_log = id.clone();
    assert!(
        wait_until(move || notifier.delivery_log(Some(&id_for_log)).iter().any(|r| r.gave_up())).await,
        "delivery gives up after the policy's attempts"
    );
    let attempts = runtime.notifier.delivery_log(Some(&id)).iter().filter(|r| r.event_number == 1).count();
    assert_eq!(attempts, 4);
    let mut status = String::new();
    for _ in 0..100 {
        status = stored_status(&runtime, &id).await;
        if status == "error" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "error");
}

#[tokio::test]
async fn heartbeats_are_sent_when_nothing_happens() {
    let runtime = TestRuntime::new().await;
    let receiver = Receiver::start(0).await;
    let mut body = subscription(Topic::FlagRaised, None, &receiver.url, "empty");
    body["channel"]["extension"] = json!([{"url": HEARTBEAT, "valueUnsignedInt": 1}]);
    active_subscription(&runtime, &receiver, "Organization/org-a", body).await;
    let bundles = receiver.wait_for(2).await;
    assert_eq!(notification_type(&bundles[1]), "heartbeat");
}
