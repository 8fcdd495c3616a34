//! "Who else is working with this person?": `GET /Patient/{id}/$care-team` answers with one
//! `CareTeam` built by `carecircle_care::build_care_team` from the explicit `CareTeam`s about
//! the person and the partners' list entries, everything read through the principal's guarded
//! session (so filtered by the access decision and audited).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_care::PartnerListEntry;
use carecircle_fhir::search::Handling;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{Principal, RecordError, Session};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fhir_json::fhir_response;
use crate::AppState;

/// The most explicit `CareTeam`s about one person read for the view.
const MAX_CARE_TEAMS: usize = 1000;

/// The partners' list entries for the person (key worker, service, contact, since when), as
/// far as the principal may see them.
///
/// Partner list import is not part of this server yet, so there is no source to read and this
/// returns no entries: the care team is built from explicit `CareTeam`s alone. When list import
/// lands, this is the one place that reads its entries (through `session`, so they are filtered
/// and audited like any other read).
async fn partner_list_entries(_session: &Session<'_>, _patient_id: &str) -> Result<Vec<PartnerListEntry>, RecordError> {
    Ok(Vec::new())
}

/// `GET /Patient/{id}/$care-team`: the person's care team as one `CareTeam` (a view without an
/// id). The Patient must be visible to the principal; `CareTeam`s the principal may not see are
/// left out, and a `note` says that some were withheld without revealing them.
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
    let person_ref = format!("Patient/{patient_id}");
    let query = vec![("subject".to_string(), person_ref.clone()), ("_count".to_string(), MAX_CARE_TEAMS.to_string())];
    let found = session.search(Some("CareTeam"), &query, Handling::Strict).await?;
    let care_teams: Vec<Value> = found.value.page.entries.iter().filter_map(|r| r.json()).collect();
    let list_entries = partner_list_entries(&session, patient_id).await?;
    let mut team = carecircle_care::build_care_team(&person_ref, &list_entries, &care_teams);
    if found.withheld > 0 {
        if let Some(object) = team.as_object_mut() {
            let notes = object.entry("note").or_insert_with(|| json!([]));
            if let Some(notes) = notes.as_array_mut() {
                notes.push(json!({"text": "Some care teams about this person were withheld by the access decision."}));
            }
        }
    }
    Ok(fhir_response(StatusCode::OK, &team))
}
