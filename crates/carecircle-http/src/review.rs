//! The person index's review queue at the API: `GET /Patient/$match-review` lists the possible
//! matches waiting for a decision (review `Task`s), `POST /Patient/$match-review` records one
//! (`link` or `keep-apart`). Only governance leads and the administrator may review; every
//! look at the queue and every decision is audited. The layout is in `docs/person-index.md`.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_audit_store::carecircle_audit::AuditAction;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{Principal, RequestMeta, ReviewDecision, Session};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fhir_json::{fhir_response, FhirBody};
use crate::AppState;

fn invalid(expression: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueType::Invalid, message).at(expression))
}

fn require_reviewer(principal: &Principal) -> Result<(), ApiError> {
    if crate::audit::is_governance(principal) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        Issue::error(IssueType::Forbidden, "match reviews are for governance leads and the administrator"),
    ))
}

fn session<'a>(state: &'a AppState, principal: &'a Principal, headers: &HeaderMap) -> Result<Session<'a>, ApiError> {
    let meta = RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: None,
        query: Some("$match-review".into()),
    };
    Ok(state.record.session(principal, meta)?)
}

/// `GET /Patient/$match-review`: a searchset Bundle of the open review Tasks, oldest first.
pub async fn queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_reviewer(&principal)?;
    let index = state.identity.index(&state).await?;
    let open = index.open_reviews(&state.record).await?;
    let session = session(&state, &principal, &headers)?;
    let mut entries = Vec::new();
    for task in &open {
        let Some(body) = task.json() else { continue };
        let person = body.pointer("/focus/reference").and_then(Value::as_str).and_then(|r| r.strip_prefix("Patient/"));
        session.audit_identity(AuditAction::Read, "Task", &task.id, person.map(str::to_string)).await?;
        entries.push(json!({
            "fullUrl": format!("{}/Task/{}", state.config.base_url, task.id),
            "resource": body,
            "search": {"mode": "match"},
        }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{}/Patient/$match-review", state.config.base_url)}],
        "entry": entries,
    });
    Ok(fhir_response(StatusCode::OK, &bundle))
}

fn patient_reference(parameter: &Value, at: &str) -> Result<String, ApiError> {
    parameter
        .pointer("/valueReference/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Patient/"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(at, "a patient parameter needs a valueReference to Patient/{id}"))
}

/// `POST /Patient/$match-review`: a `Parameters` with `decision` (`valueCode` `link` or
/// `keep-apart`) and either `task` (`valueString`, a review Task id) or two `patient`
/// (`valueReference`). Answers a `Parameters` with `task` and each Patient's `person`.
pub async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    require_reviewer(&principal)?;
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("Parameters", "$match-review takes a Parameters resource"));
    }
    let mut decision = None;
    let mut task = None;
    let mut patients = Vec::new();
    for (index, parameter) in body.get("parameter").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{index}]");
        match parameter.get("name").and_then(Value::as_str) {
            Some("decision") => {
                let code = parameter.get("valueCode").and_then(Value::as_str).unwrap_or_default();
                decision = Some(
                    ReviewDecision::from_code(code)
                        .ok_or_else(|| invalid(&at, "decision must be the valueCode 'link' or 'keep-apart'"))?,
                );
            }
            Some("task") => {
                task = Some(
                    parameter
                        .get("valueString")
                        .and_then(Value::as_str)
                        .map(|t| t.strip_prefix("Task/").unwrap_or(t).to_string())
                        .ok_or_else(|| invalid(&at, "task needs a valueString (the review Task's id)"))?,
                );
            }
            Some("patient") => patients.push(patient_reference(parameter, &at)?),
            Some(other) => return Err(invalid(&at, format!("$match-review has no parameter '{other}'"))),
            None => return Err(invalid(&at, "a parameter needs a name")),
        }
    }
    let decision = decision.ok_or_else(|| invalid("Parameters.parameter", "a 'decision' parameter is needed"))?;
    let index = state.identity.index(&state).await?;
    let (patient_a, patient_b) = match (task, patients.as_slice()) {
        (Some(task), []) => index.review_task_pair(&state.record, &task).await?,
        (None, [a, b]) => (a.clone(), b.clone()),
        _ => {
            return Err(invalid(
                "Parameters.parameter",
                "name the pair with one 'task' or with two 'patient' parameters",
            ))
        }
    };
    let outcome = index.decide(&state.record, &patient_a, &patient_b, decision, &principal.subject).await?;
    let session = session(&state, &principal, &headers)?;
    for patient in [&patient_a, &patient_b] {
        session.audit_identity(AuditAction::Update, "Task", &outcome.task_id, Some(patient.clone())).await?;
    }
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "task", "valueReference": {"reference": format!("Task/{}", outcome.task_id)}},
        {"name": "decision", "valueCode": decision.code()},
        {"name": "person", "part": [
            {"name": "patient", "valueReference": {"reference": format!("Patient/{patient_a}")}},
            {"name": "linkage", "valueReference": {"reference": format!("Linkage/{}", outcome.persons[0])}}]},
        {"name": "person", "part": [
            {"name": "patient", "valueReference": {"reference": format!("Patient/{patient_b}")}},
            {"name": "linkage", "valueReference": {"reference": format!("Linkage/{}", outcome.persons[1])}}]},
    ]});
    Ok(fhir_response(StatusCode::OK, &parameters))
}
