//! The audit log on the wire: the signed checkpoint (public, so anyone can hold the server to
//! it), inclusion proofs, the person's own access log (`Patient/{id}/$access-log`) and the
//! governance lead's reports (unusual access, break-glass rates).

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carecircle_audit_store::carecircle_audit::hex;
use carecircle_audit_store::Period;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{parse_query_string, Principal, PrincipalKind, RecordError};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fhir_json::fhir_response;
use crate::AppState;

/// Role codes of governance leads, who see the reports and review break-glass.
pub const GOVERNANCE_ROLES: [&str; 2] = ["governance-lead", "information-governance-lead"];

fn audit_unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::from(RecordError::Internal(format!("audit log: {error}")))
}

fn audit_log(state: &AppState) -> Result<&carecircle_audit_store::AuditLog, ApiError> {
    state
        .record
        .guard()
        .map(|g| g.audit.as_ref())
        .ok_or_else(|| audit_unavailable("the server runs without an audit log"))
}

/// Whether the principal is the administrator or a governance lead.
pub fn is_governance(principal: &Principal) -> bool {
    principal.is_admin() || principal.role.as_deref().is_some_and(|r| GOVERNANCE_ROLES.contains(&r))
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Issue::error(IssueType::Forbidden, message))
}

/// `GET /audit/checkpoint`: the latest signed checkpoint (C2SP tlog-checkpoint signed note),
/// signing one first if the log grew since the last.
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let log = audit_log(&state)?;
    let checkpoint = log.checkpoint_now().await.map_err(audit_unavailable)?;
    match checkpoint {
        Some(checkpoint) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], checkpoint.note).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, Issue::error(IssueType::NotFound, "the audit log is empty"))),
    }
}

/// `GET /audit/key`: the log's verifier key (C2SP note verifier key text), public, so anyone
/// can check the checkpoints' signatures.
pub async fn key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let log = audit_log(&state)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", log.verifier().verifier_key()))
        .into_response())
}

/// `GET /audit/consistency?old=N&new=M`: the RFC 6962 consistency proof between two tree sizes,
/// so a client holding an old checkpoint can check the log only grew. Public: it holds hashes only.
pub async fn consistency(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let mut old = None;
    let mut new = None;
    for (name, value) in raw.as_deref().map(parse_query_string).unwrap_or_default() {
        let parsed = value.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                Issue::error(IssueType::Value, format!("{name} must be a tree size")).at(name.clone()),
            )
        })?;
        match name.as_str() {
            "old" => old = Some(parsed),
            "new" => new = Some(parsed),
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(IssueType::NotSupported, format!("unknown parameter '{name}'")).at(name.clone()),
                ))
            }
        }
    }
    let (Some(old), Some(new)) = (old, new) else {
        return Err(ApiError::bad_request(
            Issue::error(IssueType::Required, "old and new tree sizes are required").at("old"),
        ));
    };
    let log = audit_log(&state)?;
    let hashes = log.store().consistency_proof(old, new).await.map_err(|e| match e {
        carecircle_audit_store::AuditStoreError::OutOfRange { .. } => ApiError::bad_request(
            Issue::error(IssueType::Value, format!("no consistency proof from {old} to {new} entries")).at("old"),
        ),
        other => audit_unavailable(other),
    })?;
    Ok(Json(json!({"old": old, "new": new, "hashes": hashes.iter().map(hex).collect::<Vec<_>>()})).into_response())
}

/// `GET /audit/proof/{seq}`: the inclusion proof of entry `seq` in the latest checkpoint's tree.
/// The person the entry concerns and governance leads may fetch it.
pub async fn proof(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(seq): Path<u64>,
) -> Result<Response, ApiError> {
    let log = audit_log(&state)?;
    let entry = log.store().entry(seq).await.map_err(audit_unavailable)?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, Issue::error(IssueType::NotFound, format!("no audit entry {seq}")))
    })?;
    let own = principal.kind == PrincipalKind::Patient
        && entry.record.patient_id.as_deref().is_some_and(|p| principal.subject == format!("Patient/{p}"));
    if !own && !is_governance(&principal) {
        return Err(forbidden("only the person an audit entry concerns, or a governance lead, may see its proof"));
    }
    let checkpoint =
        log.checkpoint_now().await.map_err(audit_unavailable)?.ok_or_else(|| audit_unavailable("no checkpoint"))?;
    let proof = log.store().inclusion_proof(seq, checkpoint.tree_size).await.map_err(audit_unavailable)?;
    Ok(Json(json!({
        "seq": proof.seq,
        "tree_size": proof.tree_size,
        "leaf_hash": hex(&proof.leaf_hash),
        "hashes": proof.hashes.iter().map(hex).collect::<Vec<_>>(),
        "checkpoint": checkpoint.note,
        "entry": entry.to_audit_event(),
    }))
    .into_response())
}

/// `GET /Patient/{id}/$access-log`: who accessed this person's record, newest first, as a
/// searchset Bundle of `AuditEvent`s. The person themselves (and governance leads) may ask.
/// Paging: `_count` (default 50, at most 500) and `before` (a sequence number from the last page).
pub async fn access_log(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
    raw: &Option<String>,
) -> Result<Response, ApiError> {
    let own = principal.kind == PrincipalKind::Patient && principal.subject == format!("Patient/{patient_id}");
    if !own && !is_governance(principal) {
        return Err(forbidden("only the person themselves, or a governance lead, may read a person's access log"));
    }
    let mut count: u32 = 50;
    let mut before = None;
    for (name, value) in raw.as_deref().map(parse_query_string).unwrap_or_default() {
        let bad = || {
            ApiError::bad_request(
                Issue::error(IssueType::Value, format!("{name} must be a non-negative integer")).at(name.clone()),
            )
        };
        match name.as_str() {
            "_count" => count = value.parse::<u32>().map_err(|_| bad())?.clamp(1, 500),
            "before" => before = Some(value.parse::<u64>().map_err(|_| bad())?),
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(
                        IssueType::NotSupported,
                        format!("$access-log does not support the parameter '{name}'"),
                    )
                    .at(name.clone()),
                ))
            }
        }
    }
    let log = audit_log(state)?;
    let entries = log.store().access_log_for_patient(patient_id, before, count).await.map_err(audit_unavailable)?;
    let reviews = crate::break_glass_review::reviews_for(state, &entries).await?;
    let base = &state.config.base_url;
    let mut links =
        vec![json!({"relation": "self", "url": format!("{base}/Patient/{patient_id}/$access-log?_count={count}")})];
    if entries.len() == count as usize {
        if let Some(last) = entries.last() {
            links.push(json!({"relation": "next", "url": format!("{base}/Patient/{patient_id}/$access-log?_count={count}&before={}", last.seq)}));
        }
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries.iter().map(|e| {
            let mut event = e.to_audit_event();
            if let Some(review) = reviews.iter().find(|r| r.entry_seq == e.seq) {
                crate::break_glass_review::annotate(&mut event, review, false);
            }
            json!({"fullUrl": format!("{base}/AuditEvent/{}", e.seq), "resource": event, "search": {"mode": "match"}})
        }).collect::<Vec<Value>>(),
    });
    Ok(fhir_response(StatusCode::OK, &bundle))
}

fn period(raw: &Option<String>) -> Result<(Period, u64), ApiError> {
    let mut days: i64 = 30;
    let mut min: u64 = 20;
    for (name, value) in raw.as_deref().map(parse_query_string).unwrap_or_default() {
        let bad = || {
            ApiError::bad_request(
                Issue::error(IssueType::Value, format!("{name} must be a positive integer")).at(name.clone()),
            )
        };
        match name.as_str() {
            "days" => days = value.parse::<i64>().ok().filter(|d| *d > 0 && *d <= 3660).ok_or_else(bad)?,
            "min_persons" => min = value.parse::<u64>().ok().filter(|m| *m > 0).ok_or_else(bad)?,
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(IssueType::NotSupported, format!("unknown parameter '{name}'")).at(name.clone()),
                ))
            }
        }
    }
    let now = carecircle_store::now_millis();
    Ok((Period { from_ms: now - days * 86_400_000, until_ms: now + 1 }, min))
}

/// `GET /audit/unusual-access?days=30&min_persons=20`: users who read many people outside
/// their care relationships. Governance leads only.
pub async fn unusual_access(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if !is_governance(&principal) {
        return Err(forbidden("the unusual-access report is for governance leads"));
    }
    let (period, min) = period(&raw)?;
    let rows = audit_log(&state)?.store().unusual_access(period, min).await.map_err(audit_unavailable)?;
    Ok(Json(json!({"users": rows.iter().map(|r| json!({"user": r.user_id, "organisation": r.organisation, "persons_outside_care": r.persons_outside_care})).collect::<Vec<_>>()})).into_response())
}

/// `GET /audit/break-glass?days=30`: break-glass use by user and organisation, with rates.
/// Governance leads only.
pub async fn break_glass(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if !is_governance(&principal) {
        return Err(forbidden("the break-glass report is for governance leads"));
    }
    let (period, _) = period(&raw)?;
    let rows = audit_log(&state)?.store().break_glass_by_user(period).await.map_err(audit_unavailable)?;
    Ok(Json(json!({"users": rows.iter().map(|r| json!({
        "user": r.user_id,
        "organisation": r.organisation,
        "break_glass_entries": r.break_glass_entries,
        "person_entries": r.person_entries,
        "rate": if r.person_entries == 0 { 0.0 } else { r.break_glass_entries as f64 / r.person_entries as f64 },
    })).collect::<Vec<_>>()}))
    .into_response())
}
