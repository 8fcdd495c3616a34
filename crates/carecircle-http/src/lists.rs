//! Partner list upload at the API: `POST /Organization/{id}/$upload-list` with a `Parameters`
//! holding the TOML `mapping` and the CSV `list` (both `valueString`). Only the partner itself
//! (its systems and staff) or the administrator may upload a partner's list; every write goes
//! through the uploader's session (access decision and audit), and each Patient is matched into
//! the person index before the answer. The layout is in `docs/lists.md`.

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use carecircle_auth::Interaction;
use carecircle_fhir::{Issue, IssueType};
use carecircle_link::{Mapping, NoProgress};
use carecircle_record::lists::{upload_list, ListUpload, ListWriter};
use carecircle_record::{Principal, RequestMeta};
use serde_json::{json, Value};

use crate::auth::require_scope;
use crate::error::ApiError;
use crate::fhir_json::{fhir_response, FhirBody};
use crate::AppState;

fn invalid(expression: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueType::Invalid, message).at(expression))
}

/// `POST /Organization/{id}/$upload-list`: answers a `Parameters` with the counts `rows`,
/// `new`, `changed`, `unchanged`, `left`, `reviewProposed` and one `issue` (`valueString`) per
/// value that could not be used.
pub async fn upload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some("Patient"), Interaction::Create)?;
    require_scope(&principal, Some("EpisodeOfCare"), Interaction::Create)?;
    state.record.read("Organization", &organization_id).await?;
    let organisation = format!("Organization/{organization_id}");
    if !principal.is_admin() && principal.organization.as_deref() != Some(organisation.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Issue::error(IssueType::Forbidden, "only the partner itself or the administrator may upload its list"),
        ));
    }
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("Parameters", "$upload-list takes a Parameters resource"));
    }
    let mut mapping_text = None;
    let mut list = None;
    for (index, parameter) in body.get("parameter").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{index}]");
        let text = || {
            parameter
                .get("valueString")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| invalid(&at, "this parameter needs a valueString"))
        };
        match parameter.get("name").and_then(Value::as_str) {
            Some("mapping") => mapping_text = Some(text()?),
            Some("list") => list = Some(text()?),
            Some(other) => return Err(invalid(&at, format!("$upload-list has no parameter '{other}'"))),
            None => return Err(invalid(&at, "a parameter needs a name")),
        }
    }
    let mapping_text =
        mapping_text.ok_or_else(|| invalid("Parameters.parameter", "a 'mapping' parameter is needed"))?;
    let list = list.ok_or_else(|| invalid("Parameters.parameter", "a 'list' parameter (the CSV) is needed"))?;
    let mapping = Mapping::from_toml(&mapping_text)
        .map_err(|e| invalid("Parameters.parameter.where(name='mapping')", e.to_string()))?;
    let index = state.identity.index(&state).await?;
    let meta = RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: None,
        query: Some("$upload-list".into()),
    };
    let session = state.record.session(&principal, meta)?;
    let upload = ListUpload { partner: &organisation, mapping: &mapping, csv: list.as_bytes() };
    let summary = upload_list(&state.record, &ListWriter::Guarded(&session), index, &upload, &NoProgress).await?;
    let count = |name: &str, n: usize| json!({"name": name, "valueInteger": n});
    let mut parameters = vec![
        count("rows", summary.n_rows),
        count("new", summary.n_new),
        count("changed", summary.n_changed),
        count("unchanged", summary.n_unchanged),
        count("left", summary.n_left),
        count("reviewProposed", summary.n_review_proposed),
    ];
    for issue in &summary.issues {
        parameters.push(
            json!({"name": "issue", "valueString": format!("row {}: {}: {}", issue.row, issue.field, issue.message)}),
        );
    }
    Ok(fhir_response(StatusCode::OK, &json!({"resourceType": "Parameters", "parameter": parameters})))
}
