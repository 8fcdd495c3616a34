//! Topic-based Subscriptions (FHIR R4 Subscriptions Backport IG) and care-plan alerts at the
//! API: checking a Subscription before it is stored, `Subscription/{id}/$status`,
//! `Subscription/{id}/$events` and `Communication/{id}/$acknowledge`. Subscriptions are created,
//! read and updated with the ordinary interactions, through the caller's session; the subscriber
//! is the creating organisation (the stored custodian). The runtime (`carecircle-notify`) is
//! reached through an `Extension<Notifier>` the server adds; without it these operations answer
//! 501.

use axum::extract::{Extension, Path, State};
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
use crate::fhir_json::fhir_response;
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
            };
            let mut parts = vec![
                json!({"name": "notification", "valueString": record.notification_id}),
                json!({"name": "kind", "valueCode": record.kind.code()}),
                json!({"name": "event-number", "valueString": record.event_number.to_string()}),
                json!({"name": "attempt", "valueInteger": record.attempt}),
                json!({"name": "attempted", "valueInstant": carecircle_fhir::date::format_instant(millis(record.attempted_at))}),
                json!({"name": "outcome", "valueCode": outcome}),
            ];
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
/// `$status`, `$events` and `$acknowledge` operations.
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
                    {"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"}
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
