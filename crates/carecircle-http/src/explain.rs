//! `GET /{type}/{id}/$explain?user=Practitioner/{id}[&purpose=ETREAT&reason=…&action=read|update|delete]`:
//! shows a governance lead why a user could or could not see (or change) a resource — the
//! policies considered and matched, the agreement clause and consent provision that decided.

use axum::http::StatusCode;
use axum::response::Response;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{AccessAction, Candidate, Principal};
use serde_json::json;

use crate::auth::{principal_for_user, PURPOSES};
use crate::error::ApiError;
use crate::fhir_json::fhir_response;
use crate::AppState;

/// The `$explain` operation. Governance leads only; the explanation itself is audited as a read
/// of the resource by the governance lead.
pub async fn explain(
    state: &AppState,
    principal: &Principal,
    resource_type: &str,
    id: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    if !crate::audit::is_governance(principal) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Issue::error(IssueType::Forbidden, "$explain is for governance leads"),
        ));
    }
    let mut user = None;
    let mut purpose = "TREAT".to_string();
    let mut reason = None;
    let mut action = AccessAction::Read;
    for (name, value) in params {
        match name.as_str() {
            "user" => user = Some(value.clone()),
            "purpose" if PURPOSES.contains(&value.as_str()) => purpose = value.clone(),
            "reason" => reason = Some(value.clone()),
            "action" => {
                action = match value.as_str() {
                    "read" => AccessAction::Read,
                    "update" => AccessAction::Update,
                    "delete" => AccessAction::Delete,
                    _ => {
                        return Err(ApiError::bad_request(
                            Issue::error(IssueType::Value, "action must be read, update or delete").at("action"),
                        ))
                    }
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(IssueType::Value, format!("$explain does not take '{name}={value}'")).at(name.clone()),
                ))
            }
        }
    }
    let user = user.ok_or_else(|| {
        ApiError::bad_request(
            Issue::error(IssueType::Required, "user=Practitioner/{id} or Patient/{id} is required").at("user"),
        )
    })?;
    let subject = principal_for_user(&state.record, &user, &purpose, reason).await?;
    let stored = state.record.read(resource_type, id).await?;
    let body = stored.json().unwrap_or_default();
    let guard = state
        .record
        .guard()
        .ok_or_else(|| ApiError::from(carecircle_record::RecordError::Internal("no access decision".into())))?;
    let candidate = Candidate { resource_type, id, custodian: stored.custodian.as_deref(), resource: &body };
    let verdict = guard.access.decide(&subject, action, std::slice::from_ref(&candidate)).await?.remove(0);
    let account = guard.access.explain(&subject, action, &candidate).await?;
    // The governance lead has now looked at who may see this resource: audit it as their read.
    let person = carecircle_record::person_of(resource_type, id, &body);
    state.record.session(principal, Default::default())?.audit_explain(resource_type, id, person).await?;
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "user", "valueString": subject.subject},
            {"name": "organization", "valueString": subject.organization.clone().unwrap_or_default()},
            {"name": "role", "valueString": subject.role.clone().unwrap_or_default()},
            {"name": "purpose", "valueString": subject.purpose},
            {"name": "permit", "valueBoolean": verdict.permit},
            {"name": "breakGlass", "valueBoolean": verdict.break_glass},
            {"name": "policy", "valueString": verdict.policy_id},
            {"name": "reason", "valueString": verdict.explanation},
            {"name": "explanation", "valueString": account},
        ]
    });
    Ok(fhir_response(StatusCode::OK, &parameters))
}
