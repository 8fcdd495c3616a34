//! The websocket channel of Subscriptions: `$get-ws-binding-token` for the subscriber only, a
//! socket on a real loopback port bound with `bind-with-token`, the handshake, notifications of
//! what matches and what the subscriber may read (and nothing else), refused tokens, two sockets
//! on one subscription, unbinding on close and when the subscription ends.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{assert_outcome, TestApp, TestResponse, BASE};

const HOSPITAL: &str = "Organization/hospital";
const HOUSING: &str = "Organization/housing";
const TOPIC: &str = "https://carecircle.example.org/fhir/SubscriptionTopic/care-plan-changed";
const FILTER: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
const CONTENT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn websocket_subscription(filter: &str, content: &str) -> Value {
    json!({
        "resourceType": "Subscription", "status": "requested", "reason": "care plan changes, live",
        "criteria": TOPIC,
        "_criteria": {"extension": [{"url": FILTER, "valueString": filter}]},
        "channel": {"type": "websocket", "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": CONTENT, "valueCode": content}]}}
    })
}

fn care_plan(patient: &str) -> Value {
    json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
           "subject": {"reference": format!("Patient/{patient}")}})
}

async fn app_with(config: carecircle_notify::NotifyConfig) -> (TestApp, carecircle_notify::Notifier) {
    let (app, notifier) = TestApp::with_notifier(config).await;
    app.seed_partner("hospital", "acute").await;
    app.seed_partner("housing", "housing").await;
    app.seed(HOSPITAL, json!({"resourceType": "Patient", "id": "joe", "name": [{"family": "Smith"}]})).await;
    app.seed(HOSPITAL, json!({"resourceType": "Patient", "id": "bob", "name": [{"family": "Jones"}]})).await;
    (app, notifier)
}

async fn app() -> (TestApp, carecircle_notify::Notifier) {
    app_with(carecircle_notify::NotifyConfig::new(BASE, crate::PARTNERSHIP)).await
}

fn bearer(app: &TestApp, organisation: &str) -> String {
    TestApp::bearer(&app.token(TestApp::system_request(organisation)))
}

async fn send_as(app: &TestApp, organisation: &str, method: Method, uri: &str, body: Option<&Value>) -> TestResponse {
    let bearer = bearer(app, organisation);
    app.request(method, uri, &[("authorization", &bearer)], body.map(Value::to_string)).await
}

/// Creates a websocket Subscription as `organisation` and waits until the notifier has it active.
async fn subscribe(app: &TestApp, notifier: &carecircle_notify::Notifier, organisation: &str, body: &Value) -> String {
    let created = send_as(app, organisation, Method::POST, "/Subscription", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_string();
    for _ in 0..500 {
        if notifier.status(&id).is_some_and(|s| s.status == "active") {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("Subscription/{id} never became active");
}

fn parameter<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters["parameter"].as_array()?.iter().find(|p| p["name"] == name)
}

/// A binding token for `id`, asked for by `organisation` (which must get one).
async fn token(app: &TestApp, organisation: &str, id: &str) -> String {
    let response =
        send_as(app, organisation, Method::GET, &format!("/Subscription/{id}/$get-ws-binding-token"), None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    parameter(&response.body, "token").and_then(|p| p["valueString"].as_str()).expect("a token").to_string()
}

async fn connect(address: std::net::SocketAddr) -> Socket {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{address}/subscriptions/ws")).await.expect("connect");
    socket
}

/// The next message of the socket (text parsed as JSON, a close as `{"close": code}`), waiting at
/// most 10 s.
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a readable message");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Close(frame) => return json!({"close": frame.map(|f| u16::from(f.code))}),
            _ => continue,
        }
    }
}

/// Asserts nothing arrives on the socket for `millis`.
async fn expect_silence(socket: &mut Socket, millis: u64) {
    if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(millis), socket.next()).await {
        panic!("expected nothing, got {message:?}");
    }
}

async fn bind(socket: &mut Socket, token: &str) {
    socket.send(Message::Text(format!("bind-with-token {token}").into())).await.expect("send");
}

fn status_parameters(bundle: &Value) -> &Value {
    &bundle["entry"][0]["resource"]
}

fn notification_type(bundle: &Value) -> String {
    parameter(status_parameters(bundle), "type").and_then(|p| p["valueCode"].as_str()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_binding_token_is_issued_only_to_the_subscriber() {
    let (app, notifier) = app().await;
    let id =
        subscribe(&app, &notifier, HOSPITAL, &websocket_subscription("CarePlan?patient=Patient/joe", "id-only")).await;
    let path = format!("/Subscription/{id}/$get-ws-binding-token");

    // Another partner may not even read the Subscription (its session's decision, audited).
    let refused = send_as(&app, HOUSING, Method::GET, &path, None).await;
    assert_outcome(&refused, StatusCode::FORBIDDEN, None, "not permitted");
    // Nor may the administrator, who did not subscribe it (the subscriber check itself is
    // tested in carecircle-notify's `websocket` tests).
    let admin = TestApp::bearer(&app.admin_token());
    let not_subscriber = app.request(Method::GET, &path, &[("authorization", &admin)], None).await;
    assert_outcome(&not_subscriber, StatusCode::FORBIDDEN, None, &format!("Subscription/{id}"));

    let issued = send_as(&app, HOSPITAL, Method::POST, &path, None).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    assert_eq!(issued.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    assert_eq!(issued.body["resourceType"], "Parameters");
    let token = parameter(&issued.body, "token").unwrap()["valueString"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256 random bits, URL-safe base64");
    let expiration = parameter(&issued.body, "expiration").unwrap()["valueDateTime"].as_str().unwrap();
    let expires = time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339).unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(4) && left <= time::Duration::minutes(5), "default lifetime 5 minutes");
    assert_eq!(parameter(&issued.body, "subscription").unwrap()["valueString"], format!("{BASE}/Subscription/{id}"));
    assert_eq!(
        parameter(&issued.body, "websocket-url").unwrap()["valueUrl"],
        "ws://carecircle.test/fhir/subscriptions/ws"
    );

    // The type-level form names the subscriptions with id parameters.
    let by_parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "id", "valueId": id}]});
    let issued =
        send_as(&app, HOSPITAL, Method::POST, "/Subscription/$get-ws-binding-token", Some(&by_parameters)).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    assert_ne!(parameter(&issued.body, "token").unwrap()["valueString"], json!(token), "every token is new");
    let by_query =
        send_as(&app, HOSPITAL, Method::GET, &format!("/Subscription/$get-ws-binding-token?id={id}"), None).await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text);
    let none = send_as(&app, HOSPITAL, Method::GET, "/Subscription/$get-ws-binding-token", None).await;
    assert_outcome(&none, StatusCode::BAD_REQUEST, Some("id"), "name the websocket Subscription");
    let other_org =
        send_as(&app, HOUSING, Method::GET, &format!("/Subscription/$get-ws-binding-token?id={id}"), None).await;
    assert_outcome(&other_org, StatusCode::FORBIDDEN, None, "not permitted");

    // A rest-hook subscription has no websocket to bind.
    let mut rest_hook = websocket_subscription("CarePlan?patient=Patient/joe", "id-only");
    rest_hook["channel"]["type"] = json!("rest-hook");
    rest_hook["channel"]["endpoint"] = json!("http://127.0.0.1:9/hook");
    let created = send_as(&app, HOSPITAL, Method::POST, "/Subscription", Some(&rest_hook)).await;
    let rest_id = created.body["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let not_websocket =
        send_as(&app, HOSPITAL, Method::GET, &format!("/Subscription/{rest_id}/$get-ws-binding-token"), None).await;
    assert_outcome(&not_websocket, StatusCode::BAD_REQUEST, None, "does not use the websocket channel");

    // The CapabilityStatement offers the operation.
    let capability = app.get("/metadata").await.body;
    let subscription = capability["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Subscription")
        .unwrap()
        .clone();
    assert!(subscription["operation"].as_array().unwrap().iter().any(|o| o["name"] == "get-ws-binding-token"));
}

#[tokio::test]
async fn a_bound_socket_gets_the_handshake_then_only_what_matches_and_its_subscriber_may_read() {
    let (app, notifier) = app().await;
    let address = app.serve().await;
    let id =
        subscribe(&app, &notifier, HOSPITAL, &websocket_subscription("CarePlan?patient=Patient/joe", "full-resource"))
            .await;
    let token = token(&app, HOSPITAL, &id).await;
    let mut socket = connect(address).await;
    bind(&mut socket, &token).await;

    let handshake = next_message(&mut socket).await;
    assert_eq!(handshake["resourceType"], "Bundle");
    assert_eq!(handshake["type"], "history");
    assert_eq!(notification_type(&handshake), "handshake");
    assert_eq!(parameter(status_parameters(&handshake), "status").unwrap()["valueCode"], "active");
    assert_eq!(
        parameter(status_parameters(&handshake), "subscription").unwrap()["valueReference"]["reference"],
        format!("{BASE}/Subscription/{id}")
    );

    // Housing's plan for Joe matches the filter, but the hospital may not read it; the hospital's
    // plan for Bob does not match the filter. Neither is sent.
    app.seed(
        HOUSING,
        json!({"resourceType": "CarePlan", "id": "housing-plan", "status": "active", "intent": "plan",
                             "subject": {"reference": "Patient/joe"}}),
    )
    .await;
    let other = send_as(&app, HOSPITAL, Method::POST, "/CarePlan", Some(&care_plan("bob"))).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
    let plan = send_as(&app, HOSPITAL, Method::POST, "/CarePlan", Some(&care_plan("joe"))).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);

    let notification = next_message(&mut socket).await;
    assert_eq!(notification_type(&notification), "event-notification", "{notification}");
    let status = status_parameters(&notification);
    assert_eq!(parameter(status, "events-since-subscription-start").unwrap()["valueString"], "1");
    let event = parameter(status, "notification-event").unwrap();
    assert_eq!(event["part"][0], json!({"name": "event-number", "valueString": "1"}));
    assert_eq!(notification["entry"][1]["resource"]["id"], plan.body["id"], "full-resource carries the plan");
    assert_eq!(notification["entry"][1]["resource"]["subject"]["reference"], "Patient/joe");
    expect_silence(&mut socket, 300).await;

    // $status and $events count what went over the socket.
    let hospital = bearer(&app, HOSPITAL);
    let status =
        app.request(Method::GET, &format!("/Subscription/{id}/$status"), &[("authorization", &hospital)], None).await;
    let parameters = &status.body["entry"][0]["resource"];
    assert_eq!(parameter(parameters, "status").unwrap()["valueCode"], "active");
    assert_eq!(parameter(parameters, "events-since-subscription-start").unwrap()["valueString"], "1");
    let events =
        app.request(Method::GET, &format!("/Subscription/{id}/$events"), &[("authorization", &hospital)], None).await;
    let attempts: Vec<&Value> = events.body["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "delivery-attempt")
        .collect();
    let part =
        |attempt: &Value, name: &str| attempt["part"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    assert_eq!(attempts.len(), 2, "the handshake and one notification: {}", events.text);
    assert_eq!(part(attempts[0], "kind").unwrap()["valueCode"], "handshake");
    assert_eq!(part(attempts[1], "kind").unwrap()["valueCode"], "event-notification");
    assert_eq!(part(attempts[1], "event-number").unwrap()["valueString"], "1");
    assert_eq!(part(attempts[1], "outcome").unwrap()["valueCode"], "sent");
    assert_eq!(part(attempts[1], "websocket-connections").unwrap()["valueInteger"], 1);
}

#[tokio::test]
async fn unknown_used_and_expired_tokens_are_refused() {
    let mut config = carecircle_notify::NotifyConfig::new(BASE, crate::PARTNERSHIP);
    config.websocket_token_ttl = Duration::from_millis(1500);
    let (app, notifier) = app_with(config).await;
    let address = app.serve().await;
    let id =
        subscribe(&app, &notifier, HOSPITAL, &websocket_subscription("CarePlan?patient=Patient/joe", "empty")).await;

    // Something else than a bind is answered, and the socket stays open.
    let mut socket = connect(address).await;
    socket.send(Message::Text("hello".into())).await.unwrap();
    let answer = next_message(&mut socket).await;
    assert_eq!(answer["resourceType"], "OperationOutcome");
    // An unknown token: an OperationOutcome, then the socket is closed (policy violation).
    bind(&mut socket, "not-a-token-of-this-server").await;
    let refusal = next_message(&mut socket).await;
    assert_eq!(refusal["resourceType"], "OperationOutcome");
    assert!(refusal["issue"][0]["diagnostics"].as_str().unwrap().contains("unknown, expired or already used"));
    assert_eq!(next_message(&mut socket).await, json!({"close": 1008}));

    // A token binds one socket only.
    let token = token(&app, HOSPITAL, &id).await;
    let mut first = connect(address).await;
    bind(&mut first, &token).await;
    assert_eq!(notification_type(&next_message(&mut first).await), "handshake");
    let mut second = connect(address).await;
    bind(&mut second, &token).await;
    assert_eq!(next_message(&mut second).await["resourceType"], "OperationOutcome");
    assert_eq!(next_message(&mut second).await, json!({"close": 1008}));

    // An expired token.
    let late = self::token(&app, HOSPITAL, &id).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let mut third = connect(address).await;
    bind(&mut third, &late).await;
    assert_eq!(next_message(&mut third).await["resourceType"], "OperationOutcome");
    assert_eq!(next_message(&mut third).await, json!({"close": 1008}));
    assert_eq!(notifier.ws_connections(&id), 1, "only the first socket is bound");

    // Without the upgrade, the socket's address answers an OperationOutcome.
    let plain = app.get("/subscriptions/ws").await;
    assert_outcome(&plain, StatusCode::BAD_REQUEST, None, "websocket upgrade");
}

#[tokio::test]
async fn two_sockets_bound_to_one_subscription_both_receive_until_they_close() {
    let (app, notifier) = app().await;
    let address = app.serve().await;
    let id =
        subscribe(&app, &notifier, HOSPITAL, &websocket_subscription("CarePlan?patient=Patient/joe", "id-only")).await;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let token = token(&app, HOSPITAL, &id).await;
        let mut socket = connect(address).await;
        bind(&mut socket, &token).await;
        assert_eq!(notification_type(&next_message(&mut socket).await), "handshake");
        sockets.push(socket);
    }
    let plan = send_as(&app, HOSPITAL, Method::POST, "/CarePlan", Some(&care_plan("joe"))).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);
    let first = next_message(&mut sockets[0]).await;
    let second = next_message(&mut sockets[1]).await;
    assert_eq!(notification_type(&first), "event-notification");
    assert_eq!(first, second, "the same notification on both");
    assert!(first["entry"][1].get("resource").is_none(), "id-only carries no resource");
    assert_eq!(first["entry"][1]["fullUrl"], format!("{BASE}/CarePlan/{}", plan.body["id"].as_str().unwrap()));

    // Closing one unbinds it; the other still receives.
    let mut closed = sockets.remove(0);
    closed.close(None).await.unwrap();
    drop(closed);
    let mut unbound = false;
    for _ in 0..500 {
        if notifier.ws_connections(&id) == 1 {
            unbound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(unbound, "a closed socket is unbound");
    let mut update = plan.body.clone();
    update["status"] = json!("completed");
    let hospital = bearer(&app, HOSPITAL);
    let updated = app
        .request(
            Method::PUT,
            &format!("/CarePlan/{}", plan.body["id"].as_str().unwrap()),
            &[("authorization", &hospital), ("x-change-reason", "plan completed")],
            Some(update.to_string()),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let next = next_message(&mut sockets[0]).await;
    let event = parameter(status_parameters(&next), "notification-event").unwrap();
    assert_eq!(event["part"][0], json!({"name": "event-number", "valueString": "2"}));

    // Deleting the subscription ends it: the socket is closed normally.
    let deleted = send_as(&app, HOSPITAL, Method::DELETE, &format!("/Subscription/{id}"), None).await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(next_message(&mut sockets[0]).await, json!({"close": 1000}));
    assert_eq!(notifier.ws_connections(&id), 0);
}
