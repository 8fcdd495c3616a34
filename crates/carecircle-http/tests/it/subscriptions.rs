//! Subscriptions at the API: the CapabilityStatement lists the topics; a Subscription is checked
//! before it is stored (valid backport form, and the subscriber may read the patient it names);
//! the subscriber is the creating organisation; a new Subscription starts `requested`.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{assert_outcome, TestApp};

const HOSPITAL: &str = "Organization/hospital";
const HOUSING: &str = "Organization/housing";
const TOPIC: &str = "https://carecircle.example.org/fhir/SubscriptionTopic/care-plan-changed";
const FILTER: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
const CONTENT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

fn subscription(filter: &str) -> Value {
    json!({
        "resourceType": "Subscription", "status": "active", "reason": "care plan changes",
        "criteria": TOPIC,
        "_criteria": {"extension": [{"url": FILTER, "valueString": filter}]},
        "channel": {"type": "rest-hook", "endpoint": "https://receiver.example.org/hook",
                    "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": CONTENT, "valueCode": "id-only"}]}}
    })
}

async fn app() -> TestApp {
    let app = TestApp::new().await;
    app.seed_partner("hospital", "acute").await;
    app.seed_partner("housing", "housing").await;
    app.seed(HOSPITAL, json!({"resourceType": "Patient", "id": "joe", "name": [{"family": "Smith"}]})).await;
    app
}

async fn post_as(app: &TestApp, organisation: &str, body: &Value) -> crate::TestResponse {
    let bearer = TestApp::bearer(&app.token(TestApp::system_request(organisation)));
    app.request(Method::POST, "/Subscription", &[("authorization", &bearer)], Some(body.to_string())).await
}

#[tokio::test]
async fn the_capability_statement_lists_the_topics() {
    let app = TestApp::new().await;
    let capability = app.get("/metadata").await.body;
    let subscription = capability["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Subscription")
        .unwrap()
        .clone();
    let topics: Vec<&str> =
        subscription["extension"].as_array().unwrap().iter().filter_map(|e| e["valueCanonical"].as_str()).collect();
    assert_eq!(topics.len(), 4);
    assert!(topics.contains(&TOPIC));
    assert!(subscription["operation"].as_array().unwrap().iter().any(|o| o["name"] == "status"));
}

#[tokio::test]
async fn a_subscription_is_stored_requested_with_the_creator_as_subscriber() {
    let app = app().await;
    let created = post_as(&app, HOSPITAL, &subscription("CarePlan?patient=Patient/joe")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["status"], "requested");
    assert_eq!(created.body["meta"]["source"], HOSPITAL);
}

#[tokio::test]
async fn a_subscription_to_a_person_the_subscriber_may_not_read_is_refused() {
    let app = app().await;
    let refused = post_as(&app, HOUSING, &subscription("CarePlan?patient=Patient/joe")).await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, Some("Subscription._criteria.extension[0]"), "may not read");
    assert_eq!(app.count("Subscription").await, 0);
}

#[tokio::test]
async fn a_malformed_subscription_is_refused_with_located_issues() {
    let app = app().await;
    let mut body = subscription("CarePlan?colour=blue");
    body["channel"]["endpoint"] = json!("ftp://nowhere");
    let refused = post_as(&app, HOSPITAL, &body).await;
    assert_outcome(&refused, StatusCode::BAD_REQUEST, Some("Subscription.channel.endpoint"), "not an http(s) URL");
    assert!(refused.text.contains("Subscription._criteria.extension[0]"));
}

#[tokio::test]
async fn status_needs_the_notification_runtime() {
    let app = app().await;
    let created = post_as(&app, HOSPITAL, &subscription("CarePlan?patient=Patient/joe")).await;
    let id = created.body["id"].as_str().unwrap();
    let bearer = TestApp::bearer(&app.token(TestApp::system_request(HOSPITAL)));
    let status =
        app.request(Method::GET, &format!("/Subscription/{id}/$status"), &[("authorization", &bearer)], None).await;
    assert_outcome(&status, StatusCode::NOT_IMPLEMENTED, None, "not running");
}

/// R4's query-based Subscriptions are valid R4 data: stored unchanged, never run, reported as
/// `error` by `$status`.
#[tokio::test]
async fn a_query_based_r4_subscription_is_stored_unchanged_but_not_run() {
    let app = TestApp::new().await;
    let classic = json!({
        "resourceType": "Subscription", "id": "classic", "status": "active",
        "reason": "Monitor new neonatal function", "criteria": "Observation?code=http://loinc.org|1975-2",
        "channel": {"type": "rest-hook", "endpoint": "https://biliwatch.example.org/fhir", "payload": "application/fhir+json"}
    });
    let stored = app.put("/Subscription/classic", &classic).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    let read = app.get("/Subscription/classic").await;
    assert_eq!(read.body["status"], "active");
    assert_eq!(read.body["criteria"], classic["criteria"]);
    let status = app.get("/Subscription/classic/$status").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    let parameters = &status.body["entry"][0]["resource"]["parameter"];
    let status_code = parameters.as_array().into_iter().flatten().find(|p| p["name"] == "status");
    assert_eq!(status_code.map(|p| &p["valueCode"]), Some(&json!("error")), "never run: {}", status.text);
    // A criteria that looks like a topic URL but is not one of the server's is still refused.
    let mut unknown_topic = classic.clone();
    unknown_topic["id"] = json!("unknown-topic");
    unknown_topic["criteria"] = json!("https://example.org/SubscriptionTopic/nothing");
    let refused = app.put("/Subscription/unknown-topic", &unknown_topic).await;
    assert_outcome(&refused, StatusCode::BAD_REQUEST, Some("Subscription.criteria"), "not a topic");
}
