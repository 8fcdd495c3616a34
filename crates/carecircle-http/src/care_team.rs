//! "Who else is working with this person?": `GET /Patient/{id}/$care-team` answers with one
//! `CareTeam` built by `carecircle_care::build_care_team` from the partners' list-membership
//! `EpisodeOfCare`s (key worker, service, contact, since when) and the explicit `CareTeam`s of
//! every Patient the person index links to this one. Everything is read through the principal's
//! guarded session, so what the access decision withholds is left out (a `note` says that some
//! was withheld, without revealing it) and every read is audited.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_fhir::search::{Handling, MAX_PAGE_SIZE};
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::lists::list_entry_of_episode;
use carecircle_record::{Principal, Session};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fhir_json::fhir_response;
use crate::AppState;

/// Every `resource_type` whose `param` is `Patient/{patient_id}` that the session may see, and
/// how many were withheld.
async fn search_all(
    session: &Session<'_>,
    resource_type: &str,
    param: &str,
    patient_id: &str,
) -> Result<(Vec<Value>, usize), ApiError> {
    let mut found = Vec::new();
    let mut withheld = 0;
    let mut offset = 0;
    loop {
        let params = vec![
            (param.to_string(), format!("Patient/{patient_id}")),
            ("_count".to_string(), MAX_PAGE_SIZE.to_string()),
            ("_offset".to_string(), offset.to_string()),
        ];
        let result = session.search(Some(resource_type), &params, Handling::Strict).await?;
        withheld += result.withheld;
        let page = result.value.page;
        let n = page.entries.len();
        found.extend(page.entries.iter().filter_map(|r| r.json()));
        if n + result.withheld < MAX_PAGE_SIZE {
            return Ok((found, withheld));
        }
        offset += n + result.withheld;
    }
}

/// `GET /Patient/{id}/$care-team`: the person's care team as one `CareTeam` (a view without an
/// id). The Patient must be visible to the principal.
pub async fn care_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    patient_id: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    if let Some((name, _)) = params.first() {
        return Err(ApiError::bad_request(
            Issue::error(IssueType::NotSupported, format!("$care-team does not support the parameter '{name}'"))
                .at(name.clone()),
        ));
    }
    let session = crate::interactions::session(state, principal, headers, Some("$care-team"))?;
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
    let mut withheld = 0;
    for id in &patient_ids {
        let (episodes, hidden_episodes) = search_all(&session, "EpisodeOfCare", "patient", id).await?;
        entries.extend(episodes.iter().filter_map(list_entry_of_episode));
        let (teams, hidden_teams) = search_all(&session, "CareTeam", "subject", id).await?;
        care_teams.extend(teams);
        withheld += hidden_episodes + hidden_teams;
    }
    let person_ref = format!("Patient/{patient_id}");
    let mut team = carecircle_care::build_care_team(&person_ref, &entries, &care_teams);
    if withheld > 0 {
        if let Some(object) = team.as_object_mut() {
            let notes = object.entry("note").or_insert_with(|| json!([]));
            if let Some(notes) = notes.as_array_mut() {
                notes.push(json!({"text": "Some of this person's care teams or list entries were withheld by the access decision."}));
            }
        }
    }
    Ok(fhir_response(StatusCode::OK, &team))
}
