//! `GET /Patient/{id}/$care-team`: the person's care team as one FHIR `CareTeam`, built by
//! carecircle-care's `build_care_team` from the partners' list-membership `EpisodeOfCare`s and
//! the explicit `CareTeam`s of every Patient the person index links to this one. Everything is
//! read through the caller's session, so what the access decision withholds is left out (and
//! the reads are audited).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_fhir::search::{Handling, MAX_PAGE_SIZE};
use carecircle_record::lists::list_entry_of_episode;
use carecircle_record::{Principal, RequestMeta, Session};
use serde_json::Value;

use crate::error::ApiError;
use crate::fhir_json::fhir_response;
use crate::AppState;

async fn search_all(
    session: &Session<'_>,
    resource_type: &str,
    param: &str,
    patient_id: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut found = Vec::new();
    let mut offset = 0;
    loop {
        let params = vec![
            (param.to_string(), format!("Patient/{patient_id}")),
            ("_count".to_string(), MAX_PAGE_SIZE.to_string()),
            ("_offset".to_string(), offset.to_string()),
        ];
        let page = session.search(Some(resource_type), &params, Handling::Strict).await?.value.page;
        let n = page.entries.len();
        found.extend(page.entries.iter().filter_map(|r| r.json()));
        if n < MAX_PAGE_SIZE {
            return Ok(found);
        }
        offset += n;
    }
}

/// Answers the built `CareTeam` (`subject` = `Patient/{id}`).
pub async fn care_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    patient_id: &str,
) -> Result<Response, ApiError> {
    let meta = RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: None,
        query: Some("$care-team".into()),
    };
    let session = state.record.session(principal, meta)?;
    session.read("Patient", patient_id).await?;
    let index = state.identity.index(state).await?;
    let mut patient_ids = match index.person_of_patient(patient_id) {
        Some(person) => index.patients_of_person(&person),
        None => Vec::new(),
    };
    if !patient_ids.iter().any(|id| id == patient_id) {
        patient_ids.push(patient_id.to_string());
    }
    let mut entries = Vec::new();
    let mut care_teams = Vec::new();
    for id in &patient_ids {
        for episode in search_all(&session, "EpisodeOfCare", "patient", id).await? {
            entries.extend(list_entry_of_episode(&episode));
        }
        care_teams.extend(search_all(&session, "CareTeam", "subject", id).await?);
    }
    let team = carecircle_care::build_care_team(&format!("Patient/{patient_id}"), &entries, &care_teams);
    Ok(fhir_response(StatusCode::OK, &team))
}
