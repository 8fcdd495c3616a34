//! The person index at the API: FHIR `Patient/$match` and IHE PIXm `Patient/$ihe-pix`.
//! Both answer only with Patients the caller may read: every candidate is read through the
//! caller's `Session` (access decision and audit), and what is refused is left out.

use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_auth::Interaction;
use carecircle_fhir::search::Handling;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{
    parse_query_string, validate_incoming, MatchGrade, PersonIndex, Principal, RecordError, RequestMeta, Session,
};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::auth::require_scope;
use crate::error::ApiError;
use crate::fhir_json::{fhir_response, FhirBody};
use crate::AppState;

/// The extension FHIR defines for a `$match` entry's grade.
pub const MATCH_GRADE_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/match-grade";

/// Most entries a `$match` answers when `count` is not given.
pub const DEFAULT_MATCH_COUNT: usize = 10;

/// The person index of a running server, loaded on first use.
#[derive(Default)]
pub struct Identity {
    index: OnceCell<PersonIndex>,
}

impl Identity {
    /// The index, loaded on first use and caught up with every Patient write since.
    pub async fn index(&self, state: &AppState) -> Result<&PersonIndex, ApiError> {
        let index = self
            .index
            .get_or_try_init(|| PersonIndex::load(&state.record, state.config.default_custodian.clone()))
            .await?;
        index.catch_up(&state.record).await?;
        Ok(index)
    }
}

/// Middleware: once the person index is loaded, Patients written over the API (`POST`, `PUT`,
/// `DELETE` on `/Patient…`, and Bundles at `/`) are matched into it before the write is answered,
/// so the next request anywhere sees the new record linked. Before the index is loaded there is
/// nothing to keep up to date: loading it reads every Patient. A failure here does not undo the
/// committed write; it is logged and the next identity request catches up.
pub async fn index_patient_writes(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    let path = request.uri().path();
    let writes_patients = matches!(*request.method(), Method::POST | Method::PUT | Method::DELETE)
        && (path == "/" || path == "/Patient" || path.starts_with("/Patient/"));
    let response = next.run(request).await;
    if writes_patients && response.status().is_success() {
        if let Some(index) = state.identity.index.get() {
            if let Err(error) = index.catch_up(&state.record).await {
                tracing::warn!(%error, "matching written Patients into the person index failed; the next identity request retries");
            }
        }
    }
    response
}

fn session<'a>(
    state: &'a AppState,
    principal: &'a Principal,
    headers: &HeaderMap,
    query: &str,
) -> Result<Session<'a>, ApiError> {
    let meta = RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: None,
        query: Some(query.to_string()),
    };
    Ok(state.record.session(principal, meta)?)
}

/// Reads a Patient if the caller may; `None` when refused, unknown or deleted.
async fn visible_patient(session: &Session<'_>, id: &str) -> Result<Option<Value>, ApiError> {
    match session.read("Patient", id).await {
        Ok(stored) => Ok(stored.json()),
        Err(RecordError::Forbidden(_) | RecordError::NotFound(_) | RecordError::Gone(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn invalid(expression: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueType::Invalid, message).at(expression))
}

/// `POST /Patient/$match`: a `Parameters` with `resource` (a Patient), optional
/// `onlyCertainMatches` and `count`; answers a searchset of the Patients of the candidate
/// persons, best first, each with `search.score` and the `match-grade` extension.
pub async fn patient_match(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Patient"), Interaction::Search)?;
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("Parameters", "$match takes a Parameters resource"));
    }
    let mut resource = None;
    let mut only_certain = false;
    let mut count = DEFAULT_MATCH_COUNT;
    for (index, parameter) in body.get("parameter").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{index}]");
        match parameter.get("name").and_then(Value::as_str) {
            Some("resource") => resource = parameter.get("resource").cloned(),
            Some("onlyCertainMatches") => {
                only_certain = parameter
                    .get("valueBoolean")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| invalid(&at, "onlyCertainMatches needs a valueBoolean"))?;
            }
            Some("count") => {
                count = parameter
                    .get("valueInteger")
                    .and_then(Value::as_u64)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| invalid(&at, "count needs a positive valueInteger"))?
                    .try_into()
                    .unwrap_or(usize::MAX);
            }
            Some(other) => return Err(invalid(&at, format!("$match has no parameter '{other}'"))),
            None => return Err(invalid(&at, "a parameter needs a name")),
        }
    }
    let Some(patient) = resource else {
        return Err(invalid("Parameters.parameter", "$match needs a 'resource' parameter holding a Patient"));
    };
    if patient.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return Err(invalid("Parameters.parameter.resource", "the 'resource' parameter must be a Patient"));
    }
    validate_incoming(&patient, "Patient", None)?;
    let index = state.identity.index(&state).await?;
    let query_id = patient.get("id").and_then(Value::as_str).unwrap_or_default();
    let matches = index.match_patient(query_id, "$match", &patient);
    let session = session(&state, &principal, &headers, "$match")?;
    let mut entries = Vec::new();
    for candidate in matches {
        if entries.len() >= count {
            break;
        }
        if only_certain && candidate.grade != MatchGrade::Certain {
            continue;
        }
        let Some(resource) = visible_patient(&session, &candidate.patient_id).await? else { continue };
        entries.push(json!({
            "fullUrl": format!("{}/Patient/{}", state.config.base_url, candidate.patient_id),
            "resource": resource,
            "search": {
                "mode": "match",
                "score": (candidate.probability * 10_000.0).round() / 10_000.0,
                "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": candidate.grade.code()}]
            }
        }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{}/Patient/$match", state.config.base_url)}],
        "entry": entries,
    });
    Ok(fhir_response(StatusCode::OK, &bundle))
}

/// `GET /Patient/$ihe-pix?sourceIdentifier=system|value[&targetSystem=…]` (IHE PIXm): the
/// identifiers of the same person at every partner whose Patient the caller may read, as
/// `targetIdentifier`s, with a `targetId` reference per Patient. An identifier no visible
/// Patient carries answers 404.
pub async fn patient_ihe_pix(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Patient"), Interaction::Search)?;
    let params = raw.as_deref().map(parse_query_string).unwrap_or_default();
    let mut source = None;
    let mut target_systems: Vec<String> = Vec::new();
    for (name, value) in &params {
        match name.as_str() {
            "sourceIdentifier" => {
                let (system, code) = value
                    .split_once('|')
                    .filter(|(system, code)| !system.is_empty() && !code.is_empty())
                    .ok_or_else(|| invalid("sourceIdentifier", "sourceIdentifier must be 'system|value'"))?;
                source = Some((system.to_string(), code.to_string()));
            }
            "targetSystem" => target_systems.extend(value.split(',').map(str::to_string)),
            "_format" => {}
            other => return Err(invalid(other, format!("$ihe-pix has no parameter '{other}'"))),
        }
    }
    let Some((system, code)) = source else {
        return Err(invalid("sourceIdentifier", "$ihe-pix needs a sourceIdentifier"));
    };
    let index = state.identity.index(&state).await?;
    let session = session(&state, &principal, &headers, "$ihe-pix")?;
    let found = session
        .search(Some("Patient"), &[("identifier".to_string(), format!("{system}|{code}"))], Handling::Strict)
        .await?;
    if found.value.page.entries.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Issue::error(IssueType::NotFound, "no Patient with that sourceIdentifier is known").at("sourceIdentifier"),
        ));
    }
    let mut patient_ids: Vec<String> = Vec::new();
    for source_patient in &found.value.page.entries {
        match index.person_of_patient(&source_patient.id) {
            Some(person) => patient_ids.extend(index.patients_of_person(&person)),
            None => patient_ids.push(source_patient.id.clone()),
        }
    }
    patient_ids.sort();
    patient_ids.dedup();
    let mut parameters = Vec::new();
    for patient_id in patient_ids {
        let Some(patient) = visible_patient(&session, &patient_id).await? else { continue };
        let identifiers: Vec<&Value> = patient
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|identifier| {
                let id_system = identifier.get("system").and_then(Value::as_str).unwrap_or_default();
                let id_value = identifier.get("value").and_then(Value::as_str).unwrap_or_default();
                !(id_system == system && id_value == code)
                    && (target_systems.is_empty() || target_systems.iter().any(|t| t == id_system))
            })
            .collect();
        if identifiers.is_empty() && !target_systems.is_empty() {
            continue;
        }
        for identifier in identifiers {
            parameters.push(json!({"name": "targetIdentifier", "valueIdentifier": identifier}));
        }
        parameters.push(json!({"name": "targetId", "valueReference": {"reference": format!("Patient/{patient_id}")}}));
    }
    Ok(fhir_response(StatusCode::OK, &json!({"resourceType": "Parameters", "parameter": parameters})))
}
