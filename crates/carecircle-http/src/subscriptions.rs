//! Topic-based Subscriptions (FHIR R4 Subscriptions Backport IG) and care-plan alerts at the
//! API: checking a Subscription before it is stored, `Subscription/{id}/$status`,
//! `Subscription/{id}/$events`, `Communication/{id}/$acknowledge`, and the websocket channel
//! (`Subscription/$get-ws-binding-token` and the socket at [`WEBSOCKET_PATH`]). Subscriptions are created,
//! read and updated with the ordinary interactions, through the caller's session; the subscriber
//! is the creating organisation (the stored custodian). The runtime (`carecircle-notify`) is
//! reached through an `Extension<Notifier>` the server adds; without it these operations answer
//! 501.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_auth::Interaction;
use carecircle_care::codes;
use carecircle_care::subscriptions::Topic;
use carecircle_care::{parse_subscription, ProblemKind};
use carecircle_fhir::{Issue, IssueType};
use carecircle_notify::Notifier;
use carecircle_record::{Principal, RecordError, RequestMeta, Session};
use serde_json::{json, Value};

use crate::auth::require_scope;
use crate::error::ApiError;
use crate::fhir_json::{fhir_response, FhirBody};
use crate::AppState;

fn meta(headers: &HeaderMap, query: &str) -> RequestMeta {
    RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: None,
        query: Some(query.to_string()),
    }
}

fn no_runtime() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        Issue::error(IssueType::NotSupported, "notifications are not running on this server"),
    )
}

/// Checks a Subscription about to be created or updated: it must parse as a backport
/// Subscription of one of the server's topics, and every patient or subject its filters name
/// must be readable by the caller (through the caller's session, decided and audited); a new
/// Subscription starts `requested` until its handshake succeeds. Other resources pass unchanged.
pub async fn admit(
    session: &Session<'_>,
    resource_type: &str,
    mut body: Value,
    creating: bool,
) -> Result<Value, ApiError> {
    if resource_type != "Subscription" {
        return Ok(body);
    }
    if is_query_based(&body) {
        // An R4 query-based Subscription (criteria `Observation?code=…`) is accepted and stored
        // unchanged, like any resource, but never run: `$status` reports it as `error`, and
        // docs/subscriptions.md says to use a topic. Refusing it would refuse valid R4 data.
        return Ok(body);
    }
    if creating {
        if let Some(object) = body.as_object_mut() {
            object.insert("status".into(), Value::String("requested".into()));
        }
    }
    let parsed = parse_subscription(&body).map_err(|problems| {
        let status = if problems.iter().all(|p| p.kind == ProblemKind::NotSupported) {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError { status, issues: problems.iter().map(|p| p.to_issue()).collect() }
    })?;
    for (index, filter) in parsed.filters.iter().enumerate() {
        if filter.param != "patient" && filter.param != "subject" {
            continue;
        }
        for value in &filter.values {
            let id = value.rsplit('/').next().unwrap_or(value);
            if value.contains('/') && !value.contains("Patient/") {
                continue;
            }
            match session.read("Patient", id).await {
                Ok(_) => {}
                Err(RecordError::Forbidden(_) | RecordError::NotFound(_) | RecordError::Gone(_)) => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        Issue::error(
                            IssueType::Forbidden,
                            format!("the subscriber may not read {value}, so it cannot subscribe to it"),
                        )
                        .at(format!("Subscription._criteria.extension[{index}]")),
                    ))
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(body)
}

/// The backport status `Parameters` of a subscription, inside a searchset Bundle.
fn status_bundle(base_url: &str, id: &str, topic: &str, status: &str, events: u64, kind: &str) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{
            "fullUrl": format!("urn:uuid:{}", carecircle_record::new_id()),
            "resource": {
                "resourceType": "Parameters",
                "meta": {"profile": [codes::BACKPORT_STATUS_PROFILE]},
                "parameter": [
                    {"name": "subscription", "valueReference": {"reference": format!("{base_url}/Subscription/{id}")}},
                    {"name": "topic", "valueCanonical": topic},
                    {"name": "status", "valueCode": status},
                    {"name": "type", "valueCode": kind},
                    {"name": "events-since-subscription-start", "valueString": events.to_string()}
                ]
            },
            "search": {"mode": "match"}
        }]
    })
}

/// An R4 query-based Subscription: its criteria is a search (`Type?params`), not a topic URL.
fn is_query_based(subscription: &Value) -> bool {
    subscription.get("criteria").and_then(Value::as_str).and_then(|criteria| criteria.split('?').next()).is_some_and(
        |resource_type| {
            resource_type.starts_with(|c: char| c.is_ascii_uppercase())
                && resource_type.chars().all(|c| c.is_ascii_alphanumeric())
        },
    )
}

/// `GET /Subscription/{id}/$status`: the subscription's status and event count, if the caller
/// may read the Subscription.
pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Subscription"), Interaction::Read)?;
    let session = state.record.session(&principal, meta(&headers, "$status"))?;
    let stored = session.read("Subscription", &id).await?;
    let body = stored.json().unwrap_or(Value::Null);
    if is_query_based(&body) {
        // Stored, never run, with or without the notifier.
        let bundle = status_bundle(&state.config.base_url, &id, "", "error", 0, "query-status");
        return Ok(fhir_response(StatusCode::OK, &bundle));
    }
    let Some(Extension(notifier)) = notifier else { return Err(no_runtime()) };
    let (status, events, topic) = match notifier.status(&id) {
        Some(report) => (report.status, report.events_since_start, report.topic),
        None => (
            body.get("status").and_then(Value::as_str).unwrap_or("off").to_string(),
            0,
            body.get("criteria")
                .and_then(Value::as_str)
                .and_then(Topic::from_url)
                .map(|t| t.url().to_string())
                .unwrap_or_default(),
        ),
    };
    Ok(fhir_response(
        StatusCode::OK,
        &status_bundle(&state.config.base_url, &id, &topic, &status, events, "query-status"),
    ))
}

/// `GET /Subscription/{id}/$events`: the delivery log of the subscription (attempts, outcomes,
/// next attempts) as a backport `query-event` status Bundle, if the caller may read the
/// Subscription.
pub async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Subscription"), Interaction::Read)?;
    let Some(Extension(notifier)) = notifier else { return Err(no_runtime()) };
    let session = state.record.session(&principal, meta(&headers, "$events"))?;
    session.read("Subscription", &id).await?;
    let report = notifier.status(&id);
    let mut bundle = status_bundle(
        &state.config.base_url,
        &id,
        report.as_ref().map(|r| r.topic.as_str()).unwrap_or_default(),
        report.as_ref().map(|r| r.status.as_str()).unwrap_or("off"),
        report.as_ref().map(|r| r.events_since_start).unwrap_or(0),
        "query-event",
    );
    let attempts: Vec<Value> = notifier
        .delivery_log(Some(&id))
        .into_iter()
        .map(|record| {
            let (outcome, http_status, error) = match &record.outcome {
                carecircle_care::DeliveryOutcome::Delivered { http_status } => ("delivered", Some(*http_status), None),
                carecircle_care::DeliveryOutcome::Failed { http_status, error } => {
                    ("failed", *http_status, Some(error.clone()))
                }
                carecircle_care::DeliveryOutcome::Websocket { connections: 0 } => {
                    ("not-bound", None, Some("no websocket was bound to the subscription".to_string()))
                }
                carecircle_care::DeliveryOutcome::Websocket { .. } => ("sent", None, None),
            };
            let mut parts = vec![
                json!({"name": "notification", "valueString": record.notification_id}),
                json!({"name": "kind", "valueCode": record.kind.code()}),
                json!({"name": "event-number", "valueString": record.event_number.to_string()}),
                json!({"name": "attempt", "valueInteger": record.attempt}),
                json!({"name": "attempted", "valueInstant": carecircle_fhir::date::format_instant(millis(record.attempted_at))}),
                json!({"name": "outcome", "valueCode": outcome}),
            ];
            if let carecircle_care::DeliveryOutcome::Websocket { connections } = &record.outcome {
                parts.push(json!({"name": "websocket-connections", "valueInteger": connections}));
            }
            if let Some(status) = http_status {
                parts.push(json!({"name": "http-status", "valueInteger": status}));
            }
            if let Some(error) = error {
                parts.push(json!({"name": "error", "valueString": error}));
            }
            if let Some(next) = record.next_attempt_at {
                parts.push(json!({"name": "next-attempt", "valueInstant": carecircle_fhir::date::format_instant(millis(next))}));
            }
            json!({"name": "delivery-attempt", "part": parts})
        })
        .collect();
    if let Some(parameters) = bundle.pointer_mut("/entry/0/resource/parameter").and_then(Value::as_array_mut) {
        parameters.extend(attempts);
    }
    Ok(fhir_response(StatusCode::OK, &bundle))
}

fn millis(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `POST /Communication/{id}/$acknowledge`: the alerted agency acknowledges a care-plan alert,
/// which stops its escalation. Answers the alert's Communication as now stored.
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Communication"), Interaction::Update)?;
    let Some(Extension(notifier)) = notifier else { return Err(no_runtime()) };
    notifier.acknowledge(&principal, &id, meta(&headers, "$acknowledge")).await?;
    let session = state.record.session(&principal, meta(&headers, "$acknowledge"))?;
    let stored = session.read("Communication", &id).await?;
    Ok(fhir_response(StatusCode::OK, &stored.json().unwrap_or(Value::Null)))
}

/// The backport extension that lists a topic the server offers on the CapabilityStatement's
/// Subscription resource.
pub const TOPIC_CANONICAL_EXTENSION: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical";

/// Adds the Subscriptions Backport parts to the CapabilityStatement: the four topics as
/// `SubscriptionTopic` canonicals on the Subscription resource, the backport profile, and the
/// `$status`, `$events`, `$get-ws-binding-token` and `$acknowledge` operations.
pub fn describe(mut capability: Value, base_url: &str) -> Value {
    let Some(resources) = capability.pointer_mut("/rest/0/resource").and_then(Value::as_array_mut) else {
        return capability;
    };
    for resource in resources.iter_mut() {
        match resource.get("type").and_then(Value::as_str) {
            Some("Subscription") => {
                resource["extension"] = Value::Array(
                    Topic::ALL
                        .iter()
                        .map(|t| json!({"url": TOPIC_CANONICAL_EXTENSION, "valueCanonical": t.url()}))
                        .collect(),
                );
                resource["supportedProfile"] = json!([codes::BACKPORT_SUBSCRIPTION_PROFILE]);
                resource["operation"] = json!([
                    {"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"},
                    {"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"},
                    {"name": "get-ws-binding-token", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-get-ws-binding-token",
                     "documentation": "A short-lived, single-use token for the subscriber to bind a websocket (bind-with-token) to its websocket Subscriptions"}
                ]);
            }
            Some("Communication") => {
                resource["operation"] = json!([{
                    "name": "acknowledge",
                    "definition": format!("{base_url}/OperationDefinition/Communication-acknowledge"),
                    "documentation": "The alerted agency acknowledges a care-plan alert; escalation stops"
                }]);
            }
            _ => {}
        }
    }
    capability
}

/// Where websockets connect to bind to websocket Subscriptions (the `websocket-url` of
/// `$get-ws-binding-token`). Not behind bearer authentication: the binding token is the
/// credential, as browsers cannot send headers on a websocket.
pub const WEBSOCKET_PATH: &str = "/subscriptions/ws";

/// The most Subscriptions one binding token may be asked for.
const MAX_TOKEN_SUBSCRIPTIONS: usize = 50;

/// How long a websocket may stay open without binding to a subscription.
const BIND_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// How long writing one message to a websocket may take before the client counts as gone.
const SEND_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The largest message a websocket client may send (a `bind-with-token` line is ~60 bytes).
const MAX_CLIENT_MESSAGE: usize = 4096;

fn invalid_parameter(expression: String, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueType::Invalid, message).at(expression))
}

/// The `websocket-url` for a server whose public base URL is `base_url`.
pub fn websocket_url(base_url: &str) -> String {
    let base = if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base_url.to_string()
    };
    format!("{}{WEBSOCKET_PATH}", base.trim_end_matches('/'))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `GET|POST /Subscription/{id}/$get-ws-binding-token`: a binding token for one Subscription (any
/// `id` parameters are ignored, as the operation says).
pub async fn ws_binding_token_instance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    binding_token(&state, &principal, notifier, vec![id], &headers).await
}

/// `GET /Subscription/$get-ws-binding-token?id=a&id=b`: one token for the named Subscriptions.
pub async fn ws_binding_token_type_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut ids = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "id" => ids.extend(value.split(',').map(|v| v.trim().to_string())),
            "_format" => {}
            other => {
                return Err(invalid_parameter(
                    other.to_string(),
                    format!("'{other}' is not a parameter of $get-ws-binding-token (id)"),
                ))
            }
        }
    }
    binding_token(&state, &principal, notifier, ids, &headers).await
}

/// `POST /Subscription/$get-ws-binding-token` with a `Parameters` body of `id` parameters.
pub async fn ws_binding_token_type_post(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    notifier: Option<Extension<Notifier>>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid_parameter(
            "Parameters".into(),
            "the body of $get-ws-binding-token is a Parameters resource",
        ));
    }
    let mut ids = Vec::new();
    for (i, parameter) in body.get("parameter").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        if parameter.get("name").and_then(Value::as_str) != Some("id") {
            return Err(invalid_parameter(at, "$get-ws-binding-token takes only id parameters"));
        }
        match parameter.get("valueId").or_else(|| parameter.get("valueString")).and_then(Value::as_str) {
            Some(id) => ids.push(id.to_string()),
            None => return Err(invalid_parameter(at, "an id parameter has a valueId")),
        }
    }
    binding_token(&state, &principal, notifier, ids, &headers).await
}

/// Issues one binding token for `ids`. Each Subscription is read through the caller's session
/// (decided and audited); the caller must act for its subscriber (the stored custodian: a
/// partner's system or user; the administrator only for the default custodian's), and it must be
/// an active websocket Subscription on this server.
async fn binding_token(
    state: &AppState,
    principal: &Principal,
    notifier: Option<Extension<Notifier>>,
    mut ids: Vec<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(principal, Some("Subscription"), Interaction::Read)?;
    let Some(Extension(notifier)) = notifier else { return Err(no_runtime()) };
    ids.retain(|id| !id.is_empty());
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(invalid_parameter(
            "id".into(),
            "name the websocket Subscription(s) to bind with id parameters (a token for every subscription is not offered)",
        ));
    }
    if ids.len() > MAX_TOKEN_SUBSCRIPTIONS {
        return Err(invalid_parameter(
            "id".into(),
            format!("at most {MAX_TOKEN_SUBSCRIPTIONS} subscriptions per token"),
        ));
    }
    if let Some(bad) = ids.iter().find(|id| !valid_id(id)) {
        return Err(invalid_parameter("id".into(), format!("'{bad}' is not a valid id")));
    }
    let subscriber = match (&principal.organization, principal.is_admin()) {
        (Some(organisation), _) => organisation.clone(),
        (None, true) => state.config.default_custodian.custodian.clone(),
        (None, false) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Issue::error(IssueType::Forbidden, "only a subscribing organisation can bind a websocket"),
            ))
        }
    };
    let session = state.record.session(principal, meta(headers, "$get-ws-binding-token"))?;
    for id in &ids {
        let stored = session.read("Subscription", id).await?;
        if stored.custodian.as_deref() != Some(subscriber.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Issue::error(
                    IssueType::Forbidden,
                    format!("only the subscriber (the organisation that created it) may bind to Subscription/{id}"),
                ),
            ));
        }
    }
    let issued = notifier.issue_ws_token(&subscriber, &ids).map_err(|error| {
        let (status, kind) = match error {
            carecircle_notify::WsTokenError::NotSubscriber(_) => (StatusCode::FORBIDDEN, IssueType::Forbidden),
            carecircle_notify::WsTokenError::NotWebsocket(_) => (StatusCode::BAD_REQUEST, IssueType::NotSupported),
            carecircle_notify::WsTokenError::NotActive(_) => (StatusCode::CONFLICT, IssueType::Conflict),
            carecircle_notify::WsTokenError::TooMany => (StatusCode::SERVICE_UNAVAILABLE, IssueType::Exception),
        };
        ApiError::new(status, Issue::error(kind, error.to_string()))
    })?;
    let expiration = carecircle_fhir::date::format_instant(millis(issued.expires_at));
    let mut parameter = vec![
        json!({"name": "token", "valueString": issued.token}),
        json!({"name": "expiration", "valueDateTime": expiration}),
    ];
    for id in &issued.subscriptions {
        parameter.push(
            json!({"name": "subscription", "valueString": format!("{}/Subscription/{id}", state.config.base_url)}),
        );
    }
    parameter.push(json!({"name": "websocket-url", "valueUrl": websocket_url(&state.config.base_url)}));
    let mut response = fhir_response(StatusCode::OK, &json!({"resourceType": "Parameters", "parameter": parameter}));
    // A credential: not to be kept by caches on the way.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /subscriptions/ws`: the websocket the subscriber binds with `bind-with-token <token>`.
/// Anything but a websocket upgrade is answered 400 with an `OperationOutcome`.
pub async fn websocket(
    notifier: Option<Extension<Notifier>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Some(Extension(notifier)) = notifier else { return Err(no_runtime()) };
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(Issue::error(
            IssueType::NotSupported,
            format!("this endpoint takes a websocket upgrade ({rejection}); then send 'bind-with-token <token>'"),
        ))
    })?;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve_socket(notifier, socket)))
}

/// What a client may send on the socket.
#[derive(Debug, PartialEq, Eq)]
enum ClientCommand<'a> {
    /// `bind-with-token <token>` (also accepted: `bind-with-token: <token>`).
    Bind(&'a str),
}

fn parse_command(text: &str) -> Option<ClientCommand<'_>> {
    let rest = text.trim().strip_prefix("bind-with-token")?;
    if !rest.starts_with([' ', ':', '\t']) {
        return None;
    }
    let token = rest.trim_start_matches([':', ' ', '\t']).trim_end();
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(ClientCommand::Bind(token))
}

fn outcome_text(kind: IssueType, message: impl Into<String>) -> String {
    carecircle_fhir::outcome::operation_outcome(&[Issue::error(kind, message)]).to_string()
}

/// Policy violation: a bad token, a slow reader, no bind in time.
const CLOSE_POLICY: u16 = 1008;
/// Normal closure: the subscription ended.
const CLOSE_NORMAL: u16 = 1000;

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // The reason of a close frame is at most 123 bytes.
    let mut reason = reason.to_string();
    while reason.len() > 120 {
        reason.pop();
    }
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// Serves one websocket: binds it on `bind-with-token`, then writes what the notifier queues for
/// it. A refused token gets an `OperationOutcome` message and a close (1008); other messages get
/// an `OperationOutcome` and the socket stays open. Closing unbinds it.
async fn serve_socket(notifier: Notifier, mut socket: WebSocket) {
    let mut connection = notifier.ws_connection();
    let bind_deadline = tokio::time::sleep(BIND_WITHIN);
    tokio::pin!(bind_deadline);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(text))) => match parse_command(text.as_str()) {
                    Some(ClientCommand::Bind(token)) => {
                        if let Err(error) = connection.bind(token) {
                            let message = outcome_text(IssueType::Security, error.to_string());
                            let _ = socket.send(Message::Text(message.into())).await;
                            close(&mut socket, CLOSE_POLICY, &error.to_string()).await;
                            break;
                        }
                    }
                    None => {
                        let message = outcome_text(
                            IssueType::NotSupported,
                            "the only message this socket takes is 'bind-with-token <token>'",
                        );
                        if socket.send(Message::Text(message.into())).await.is_err() {
                            break;
                        }
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    let message = outcome_text(IssueType::NotSupported, "send text messages ('bind-with-token <token>')");
                    if socket.send(Message::Text(message.into())).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the socket itself.
                Some(Ok(_)) => {}
            },
            outgoing = connection.next() => match outgoing {
                Ok(text) => {
                    // A client that stops reading must not hold the connection for ever.
                    let sent = tokio::time::timeout(SEND_WITHIN, socket.send(Message::Text(text.as_ref().into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
                Err(reason) => {
                    let code = if reason.ends_with("ended") { CLOSE_NORMAL } else { CLOSE_POLICY };
                    close(&mut socket, code, &reason).await;
                    break;
                }
            },
            () = &mut bind_deadline, if !connection.is_bound() => {
                close(&mut socket, CLOSE_POLICY, "no bind-with-token in time").await;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_commands_are_recognised() {
        assert_eq!(parse_command("bind-with-token abc"), Some(ClientCommand::Bind("abc")));
        assert_eq!(parse_command("bind-with-token: abc\n"), Some(ClientCommand::Bind("abc")));
        assert_eq!(parse_command("bind-with-token"), None);
        assert_eq!(parse_command("bind-with-tokenabc"), None);
        assert_eq!(parse_command("bind-with-token a b"), None);
        assert_eq!(parse_command("hello"), None);
    }

    #[test]
    fn the_websocket_url_follows_the_base_url() {
        assert_eq!(websocket_url("https://cc.example.org/fhir"), "wss://cc.example.org/fhir/subscriptions/ws");
        assert_eq!(websocket_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/subscriptions/ws");
    }
}
