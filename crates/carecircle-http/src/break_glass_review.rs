//! The break-glass review queue on the wire: governance leads list the break-glass uses waiting
//! for review (`GET /audit/break-glass/queue`) and record one outcome per use
//! (`POST /audit/break-glass/{seq}/review`). Each review is audited itself and stored once; the
//! person's own access log shows the outcome beside the use.

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carecircle_audit_store::carecircle_audit::{AuditAction, AuditEntry};
use carecircle_audit_store::{BreakGlassReview, ReviewFilter, ReviewOutcome};
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{parse_query_string, Principal, RecordError};
use serde_json::{json, Value};

use crate::audit::is_governance;
use crate::error::ApiError;
use crate::AppState;

/// The extension on a break-glass `AuditEvent` that carries its review.
pub const REVIEW_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/break-glass-review";

/// The longest review note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

fn audit_unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::from(RecordError::Internal(format!("audit log: {error}")))
}

fn store(state: &AppState) -> Result<&carecircle_audit_store::AuditStore, ApiError> {
    state
        .record
        .guard()
        .map(|g| g.audit.store())
        .ok_or_else(|| audit_unavailable("the server runs without an audit log"))
}

fn require_governance(principal: &Principal) -> Result<(), ApiError> {
    if is_governance(principal) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Issue::error(IssueType::Forbidden, "break-glass review is for governance leads and the administrator"),
        ))
    }
}

fn instant(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Adds the review to a rendered break-glass `AuditEvent`: the outcome and when, and the note
/// only when `with_note` (the governance view; the person's log shows the outcome alone).
pub fn annotate(event: &mut Value, review: &BreakGlassReview, with_note: bool) {
    let mut parts = vec![
        json!({"url": "outcome", "valueCode": review.outcome.code()}),
        json!({"url": "reviewed", "valueInstant": instant(review.reviewed_ms)}),
    ];
    if with_note && !review.note.is_empty() {
        parts.push(json!({"url": "note", "valueString": review.note}));
        parts.push(json!({"url": "reviewer", "valueString": review.reviewer}));
    }
    if let Some(object) = event.as_object_mut() {
        let extensions = object.entry("extension").or_insert_with(|| json!([]));
        if let Some(list) = extensions.as_array_mut() {
            list.push(json!({"url": REVIEW_EXTENSION, "extension": parts}));
        }
    }
}

/// The reviews of the break-glass entries among `entries`, for the person's access log.
pub async fn reviews_for(state: &AppState, entries: &[AuditEntry]) -> Result<Vec<BreakGlassReview>, ApiError> {
    let seqs: Vec<u64> = entries.iter().filter(|e| e.record.action == AuditAction::BreakGlass).map(|e| e.seq).collect();
    store(state)?.break_glass_reviews(&seqs).await.map_err(audit_unavailable)
}

fn review_json(review: &BreakGlassReview) -> Value {
    json!({
        "outcome": review.outcome.code(),
        "note": review.note,
        "reviewer": review.reviewer,
        "organisation": review.organisation,
        "reviewed": instant(review.reviewed_ms),
        "audit_entry": review.review_seq,
    })
}

/// `GET /audit/break-glass/queue?status=pending|reviewed|all&_count=&before=`: break-glass
/// uses, newest first (default: pending), each with who, when, for whom, the stated reason, the
/// `AuditEvent` and its review once recorded. Governance leads only; the look is audited.
pub async fn queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    require_governance(&principal)?;
    let mut filter = ReviewFilter::Pending;
    let mut count: u32 = 50;
    let mut before = None;
    for (name, value) in raw.as_deref().map(parse_query_string).unwrap_or_default() {
        let bad = |what: &str| {
            ApiError::bad_request(Issue::error(IssueType::Value, format!("{name} must be {what}")).at(name.clone()))
        };
        match name.as_str() {
            "status" => {
                filter = match value.as_str() {
                    "pending" => ReviewFilter::Pending,
                    "reviewed" => ReviewFilter::Reviewed,
                    "all" => ReviewFilter::All,
                    _ => return Err(bad("pending, reviewed or all")),
                }
            }
            "_count" => count = value.parse::<u32>().map_err(|_| bad("a non-negative integer"))?.clamp(1, 500),
            "before" => before = Some(value.parse::<u64>().map_err(|_| bad("a sequence number"))?),
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(IssueType::NotSupported, format!("unknown parameter '{name}'")).at(name.clone()),
                ))
            }
        }
    }
    let session = crate::interactions::session(&state, &principal, &headers, raw.as_deref())?;
    let uses = store(&state)?.break_glass_queue(filter, before, count).await.map_err(audit_unavailable)?;
    session.audit_review_queue().await?;
    let items: Vec<Value> = uses
        .iter()
        .map(|queued| {
            let record = &queued.entry.record;
            let mut event = queued.entry.to_audit_event();
            if let Some(review) = &queued.review {
                annotate(&mut event, review, true);
            }
            json!({
                "seq": queued.entry.seq,
                "recorded": instant(record.recorded_ms),
                "user": record.agent.user_id,
                "organisation": record.agent.organisation,
                "role": record.agent.role,
                "patient": record.patient_id,
                "reason": record.break_glass_reason,
                "entity": record.entity.as_ref().map(|e| format!("{}/{}", e.resource_type, e.id)),
                "status": if queued.review.is_some() { "reviewed" } else { "pending" },
                "review": queued.review.as_ref().map(review_json),
                "event": event,
            })
        })
        .collect();
    let mut answer = json!({"uses": items});
    if uses.len() == count as usize {
        if let Some(last) = uses.last() {
            let status = match filter {
                ReviewFilter::Pending => "pending",
                ReviewFilter::Reviewed => "reviewed",
                ReviewFilter::All => "all",
            };
            answer["next"] = json!(format!(
                "{}/audit/break-glass/queue?status={status}&_count={count}&before={}",
                state.config.base_url, last.entry.seq
            ));
        }
    }
    Ok(Json(answer).into_response())
}

/// `POST /audit/break-glass/{seq}/review` with `{"outcome": "justified" | "not-justified" |
/// "referred", "note": "…"}`: records the governance lead's review of break-glass entry `seq`
/// (201 with the review). The review is audited first; a use has one review, so a second is
/// refused (409) and the attempt audited.
pub async fn review(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(seq): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_governance(&principal)?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(Issue::error(IssueType::Structure, format!("the review must be a JSON object: {e}")))
    })?;
    let outcome_code = body.get("outcome").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(
            Issue::error(IssueType::Required, "a review needs an outcome (justified, not-justified, referred)")
                .at("outcome"),
        )
    })?;
    let outcome: ReviewOutcome = outcome_code
        .parse()
        .map_err(|message: String| ApiError::bad_request(Issue::error(IssueType::Value, message).at("outcome")))?;
    let note = match body.get("note") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.trim().to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(Issue::error(IssueType::Value, "note must be text").at("note")));
        }
    };
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(
            Issue::error(IssueType::Value, format!("the note is longer than {MAX_NOTE_CHARS} characters")).at("note"),
        ));
    }
    let store = store(&state)?;
    let entry = store
        .entry(seq)
        .await
        .map_err(audit_unavailable)?
        .filter(|e| e.record.action == AuditAction::BreakGlass)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                Issue::error(IssueType::NotFound, format!("audit entry {seq} is not a break-glass use")),
            )
        })?;
    let person = entry.record.patient_id.clone();
    let session = crate::interactions::session(&state, &principal, &headers, None)?;
    let already_reviewed = || {
        ApiError::new(
            StatusCode::CONFLICT,
            Issue::error(
                IssueType::Conflict,
                format!("break-glass use {seq} has already been reviewed; a review is final"),
            ),
        )
    };
    if !store.break_glass_reviews(&[seq]).await.map_err(audit_unavailable)?.is_empty() {
        session.audit_break_glass_review(seq, person, outcome.code(), false).await?;
        return Err(already_reviewed());
    }
    let review_seq = session.audit_break_glass_review(seq, person, outcome.code(), true).await?;
    let review = BreakGlassReview {
        entry_seq: seq,
        outcome,
        note,
        reviewer: principal.subject.clone(),
        organisation: principal.organization.clone(),
        reviewed_ms: carecircle_store::now_millis(),
        review_seq,
    };
    if !store.record_break_glass_review(&review).await.map_err(audit_unavailable)? {
        // Another lead's review landed between the check and the insert: theirs stands.
        return Err(already_reviewed());
    }
    Ok((StatusCode::CREATED, Json(json!({"seq": seq, "review": review_json(&review)}))).into_response())
}
