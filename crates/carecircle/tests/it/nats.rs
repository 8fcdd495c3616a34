//! Two `carecircle serve --nats` processes sharing one PostgreSQL schema, one key directory and
//! one JetStream stream: a rest-hook subscriber hears of each change once whichever process
//! took the write, and a care-plan trigger raises its alert once.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust, database `test`; `psql` on the PATH) and NATS with
//! JetStream on 127.0.0.1:4222, as on every machine here and in CI.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::carecircle;

const DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";
const NATS: &str = "nats://127.0.0.1:4222";
/// The public base URL both processes serve under (as behind one load balancer).
const BASE_URL: &str = "http://carecircle.test";
const SECTOR_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/partner-sector";
const TRIGGER_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-trigger";
const TRIGGER_EVENT_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event";
const ALERT_CATEGORY: &str = "https://carecircle.example.org/fhir/CodeSystem/communication-category|care-plan-alert";
const ALERT_STATE_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/alert-state";
const PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const CARE_PLAN_TOPIC: &str = "https://carecircle.example.org/fhir/SubscriptionTopic/care-plan-changed";

/// A running server process, killed when dropped.
struct Server {
    child: Child,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test made outside its temporary directory, removed when dropped (also on failure).
struct Cleanup {
    schema: String,
    stream: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        let stream = self.stream.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let nats = carecircle_notify::NatsEvents::connect(NATS, &stream).await.ok()?;
                nats.delete().await.ok()
            })
        })
        .join();
    }
}

fn psql(sql: &str) -> std::io::Result<std::process::Output> {
    Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c", sql]).output()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `carecircle` with the shared database and key directory.
fn cli(work: &Path, database: &str) -> Command {
    let mut command = carecircle(&work.join("data"));
    command.arg("--database").arg(database).arg("--key-dir").arg(work.join("keys"));
    command
}

async fn start(work: &Path, database: &str, stream: &str, name: &str) -> Server {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = cli(work, database)
        .args(["serve", "--dev-issuer", "--listen", &listen, "--base-url", BASE_URL, "--nats", NATS])
        .args(["--nats-stream", stream])
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server { child, http: format!("http://{listen}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(work.join(format!("{name}.log"))).unwrap_or_default();
            panic!("server {name} exited with {status}: {log}");
        }
        if reqwest::get(format!("{}/healthz", server.http)).await.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        assert!(Instant::now() < deadline, "server {name} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn token(work: &Path, database: &str, args: &[&str]) -> String {
    let output = cli(work, database).arg("token").args(args).args(["--audience", BASE_URL]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn post(server: &Server, token: &str, resource_type: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/{resource_type}", server.http))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {resource_type}: {status} {answer}");
    answer
}

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let response =
        reqwest::Client::new().get(format!("{}/{path}", server.http)).bearer_auth(token).send().await.unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

/// A rest-hook receiver on a loopback port keeping every Bundle it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Both servers' logs, for failure messages.
fn logs(work: &Path) -> String {
    ["a", "b"]
        .iter()
        .map(|name| {
            format!("--- {name}:\n{}", std::fs::read_to_string(work.join(format!("{name}.log"))).unwrap_or_default())
        })
        .collect()
}

/// Polls `condition` every 50 ms for at most 30 s.
async fn eventually(work: &Path, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}\n{}", logs(work));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parameter(bundle: &Value, name: &str) -> Option<Value> {
    bundle.pointer("/entry/0/resource/parameter")?.as_array()?.iter().find(|p| p["name"] == name).cloned()
}

fn notification_type(bundle: &Value) -> String {
    parameter(bundle, "type").and_then(|p| p["valueCode"].as_str().map(str::to_string)).unwrap_or_default()
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

/// The stored alert `Communication`s.
async fn alerts(server: &Server, token: &str) -> Vec<Value> {
    entries(&get(server, token, &format!("Communication?category={ALERT_CATEGORY}")).await)
        .into_iter()
        .filter(|r| r["resourceType"] == "Communication")
        .collect()
}

fn alert_state(communication: &Value) -> Value {
    let text = communication["extension"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["url"] == ALERT_STATE_EXTENSION))
        .and_then(|x| x["valueString"].as_str())
        .expect("the alert's state");
    serde_json::from_str(text).unwrap()
}

fn organisation(id: &str, sector: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "name": id,
           "type": [{"coding": [{"system": SECTOR_SYSTEM, "code": sector}]}]})
}

/// Joe's plan: when he attends the emergency department, the crisis team is told.
fn trigger_plan() -> Value {
    json!({
        "resourceType": "CarePlan", "status": "active", "intent": "plan",
        "subject": {"reference": "Patient/joe"},
        "activity": [{
            "id": "ed",
            "extension": [{"url": TRIGGER_EXTENSION, "extension": [
                {"url": "kind", "valueCode": "event"},
                {"url": "event", "valueCoding": {"system": TRIGGER_EVENT_SYSTEM, "code": "ed-attendance"}},
                {"url": "response", "extension": [
                    {"url": "agency", "valueReference": {"reference": "Organization/org-crisis"}},
                    {"url": "text", "valueString": "Crisis team to see Joe in the emergency department."},
                    {"url": "contact", "valueReference": {"reference": "PractitionerRole/duty-worker"}}
                ]}
            ]}],
            "detail": {"status": "scheduled", "description": "If Joe attends the emergency department"}
        }]
    })
}

fn ed_encounter() -> Value {
    json!({"resourceType": "Encounter", "status": "in-progress",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
           "subject": {"reference": "Patient/joe"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_nats_notify_and_alert_exactly_once() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let unique = format!("{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    let cleanup = Cleanup { schema: format!("t_nats_{unique}"), stream: format!("carecircle-test-{unique}") };
    let created = psql(&format!("CREATE SCHEMA {}", cleanup.schema)).expect("psql runs");
    assert!(created.status.success(), "creating the schema: {}", String::from_utf8_lossy(&created.stderr));
    let database = format!("{DATABASE}?options=-c%20search_path%3D{}", cleanup.schema);
    let work = tempfile::tempdir().unwrap();
    let work = work.path();

    // The partners, loaded offline (no events), and Joe's care plan.
    let setup = work.join("setup.ndjson");
    let lines = [
        organisation("carecircle-partnership", "governance"),
        organisation("org-hosp", "acute"),
        organisation("org-crisis", "mental-health"),
    ];
    std::fs::write(&setup, lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")).unwrap();
    let import = cli(work, &database)
        .args(["import", "--custodian", "Organization/carecircle-partnership"])
        .arg(&setup)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stdout));

    let a = start(work, &database, &cleanup.stream, "a").await;
    let b = start(work, &database, &cleanup.stream, "b").await;
    let hospital = token(work, &database, &["--system", "--org", "org-hosp"]);
    // An alert is held by the partner of the agency it alerts: the crisis team's system reads it.
    let crisis = token(work, &database, &["--system", "--org", "org-crisis"]);
    post(&a, &hospital, "CarePlan", trigger_plan()).await;

    // The hospital subscribes (through A) to changes of care plans.
    let (endpoint, received) = receiver().await;
    let subscription = post(
        &a,
        &hospital,
        "Subscription",
        json!({"resourceType": "Subscription", "status": "requested", "reason": "two processes",
               "criteria": CARE_PLAN_TOPIC,
               "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                           "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]}}}),
    )
    .await;
    let id = subscription["id"].as_str().unwrap().to_string();
    // Handshaken once; then live and active in both processes.
    for server in [&a, &b] {
        eventually(work, "the subscription is active in both processes", async || {
            let events = get(server, &hospital, &format!("Subscription/{id}/$events")).await;
            parameter(&events, "status").is_some_and(|p| p["valueCode"] == "active")
        })
        .await;
    }

    // Ten care plans, written alternately through both processes.
    let mut written = Vec::new();
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let plan = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
                          "subject": {"reference": format!("Patient/p{i}")}});
        written.push(post(server, &hospital, "CarePlan", plan).await["id"].as_str().unwrap().to_string());
    }
    eventually(work, "every notification arrived", async || received.lock().unwrap().len() >= 11).await;
    // Anything sent twice would have arrived by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bundles = received.lock().unwrap().clone();
    let kinds: Vec<String> = bundles.iter().map(notification_type).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "handshake").count(), 1, "one handshake: {kinds:?}");
    let expected: BTreeMap<String, usize> = written.iter().map(|id| (id.clone(), 1)).collect();
    let counted: BTreeMap<String, usize> =
        bundles.iter().filter(|b| notification_type(b) == "event-notification").fold(BTreeMap::new(), |mut m, b| {
            let focus = b.pointer("/entry/1/fullUrl").and_then(Value::as_str).unwrap_or_default();
            *m.entry(focus.rsplit('/').next().unwrap_or_default().to_string()).or_default() += 1;
            m
        });
    assert_eq!(counted, expected, "each change notified exactly once: {kinds:?}");
    assert_eq!(bundles.len(), 11, "nothing else was sent: {kinds:?}");

    // An ED attendance written through B raises one alert for the crisis team.
    post(&b, &hospital, "Encounter", ed_encounter()).await;
    eventually(work, "the alert is stored", async || !alerts(&a, &crisis).await.is_empty()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = alerts(&a, &crisis).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["meta"]["versionId"], "1", "raised once, never again");
    assert_eq!(stored[0]["recipient"][0]["reference"], "Organization/org-crisis");
    assert_eq!(alert_state(&stored[0])["occurrences"], 1);

    // A second attendance, through A, is merged into it exactly once.
    post(&a, &hospital, "Encounter", ed_encounter()).await;
    eventually(work, "the repeat is merged", async || {
        alerts(&b, &crisis).await.first().is_some_and(|c| alert_state(c)["occurrences"] == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = alerts(&b, &crisis).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["meta"]["versionId"], "2");
    assert_eq!(alert_state(&stored[0])["occurrences"], 2);
    assert_eq!(received.lock().unwrap().len(), 11, "encounters and alerts are not care-plan changes");

    // Every event was handled and acknowledged (none left to be handed out again).
    let nats = carecircle_notify::NatsEvents::connect(NATS, &cleanup.stream).await.expect("NATS");
    eventually(work, "every event is acknowledged", async || nats.outstanding_events().await == Ok(0)).await;
    assert!(nats.stored_events().await.unwrap() >= 14, "plans, subscription changes and encounters went through NATS");
    drop((a, b));
}
