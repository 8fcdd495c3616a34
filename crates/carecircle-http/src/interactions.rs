//! Handlers of the FHIR RESTful interactions: each reads the request, calls the record service
//! and shapes the FHIR response.

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use carecircle_auth::Interaction;
use carecircle_fhir::search::{Handling, SearchQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{custodian_reference, parse_query_string, Caller, Created, Principal, RequestMeta, Session};
use carecircle_store::{HistoryQuery, WriteEffect};

use crate::auth::require_scope;
use crate::bundles::{everything_bundle, history_bundle, mark_withheld, searchset_bundle};
use crate::error::ApiError;
use crate::fhir_json::{etag, fhir_response, handling, if_match, resource_response, return_preference, FhirBody};
use crate::AppState;

/// The header the partnership's administrator uses to load data on behalf of a partner. Anyone
/// else writes as their own organisation, which the token decides.
pub const CUSTODIAN_HEADER: &str = "x-custodian";

/// The custodian of what `principal` writes: its organisation; the administrator may name a
/// partner with `X-Custodian`; a person (or an administrator without the header) writes as the
/// partnership.
fn caller(headers: &HeaderMap, state: &AppState, principal: &Principal) -> Result<Caller, ApiError> {
    match headers.get(CUSTODIAN_HEADER) {
        None => Ok(Caller { custodian: principal.custodian(&state.config.default_custodian.custodian) }),
        Some(value) => {
            let text = value.to_str().unwrap_or_default();
            let custodian =
                custodian_reference(text).map_err(|issue| ApiError::bad_request(issue.at("X-Custodian")))?;
            if !principal.is_admin() && principal.organization.as_deref() != Some(custodian.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    Issue::error(
                        IssueType::Security,
                        "X-Custodian may only name the token's own organisation (the administrator may name any partner)",
                    )
                    .at("X-Custodian"),
                ));
            }
            Ok(Caller { custodian })
        }
    }
}

/// The principal's session, with what the audit trail records about the request.
fn session<'a>(
    state: &'a AppState,
    principal: &'a Principal,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Session<'a>, ApiError> {
    let meta = RequestMeta {
        request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect()),
        client_address: headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string()),
        query: query.map(str::to_string),
    };
    Ok(state.record.session(principal, meta)?)
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    query.as_deref().map(parse_query_string).unwrap_or_default()
}

/// `GET /metadata`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    fhir_response(StatusCode::OK, &state.capability)
}

/// `POST /{type}`: create, or conditional create with `If-None-Exist`.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Create)?;
    let caller = caller(&headers, &state, &principal)?;
    let condition = headers.get("if-none-exist").and_then(|v| v.to_str().ok()).map(str::to_string);
    let preference = return_preference(&headers);
    let base = &state.config.base_url;
    let session = session(&state, &principal, &headers, None)?;
    Ok(match session.create(&caller, &resource_type, body, condition.as_deref()).await? {
        Created::New(stored) => resource_response(StatusCode::CREATED, &stored, base, true, preference),
        Created::Existing(stored) => resource_response(StatusCode::OK, &stored, base, true, preference),
    })
}

/// `GET /{type}/{id}`.
pub async fn read(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Read)?;
    let session = session(&state, &principal, &headers, None)?;
    Ok(stored_response(&state, &session.read(&resource_type, &id).await?))
}

/// `GET /{type}/{id}/_history/{version}`.
pub async fn vread(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Read)?;
    let session = session(&state, &principal, &headers, None)?;
    Ok(stored_response(&state, &session.vread(&resource_type, &id, &version).await?))
}

/// 200 with a stored version, its ETag and Last-Modified.
fn stored_response(state: &AppState, stored: &carecircle_store::StoredResource) -> Response {
    resource_response(
        StatusCode::OK,
        stored,
        &state.config.base_url,
        false,
        crate::fhir_json::ReturnPreference::Representation,
    )
}

/// `PUT /{type}/{id}`: update, or create with the client's id; `If-Match` for optimistic locking.
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Update)?;
    let caller = caller(&headers, &state, &principal)?;
    let expected = if_match(&headers)?;
    let outcome =
        session(&state, &principal, &headers, None)?.update(&caller, &resource_type, &id, body, expected).await?;
    let status = if outcome.effect == WriteEffect::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(resource_response(status, &outcome.stored, &state.config.base_url, true, return_preference(&headers)))
}

/// `DELETE /{type}/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Delete)?;
    let expected = if_match(&headers)?;
    let outcome = session(&state, &principal, &headers, None)?.delete(&resource_type, &id, expected).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if outcome.effect == WriteEffect::Deleted {
        if let Ok(value) = etag(outcome.stored.version).parse() {
            response.headers_mut().insert(axum::http::header::ETAG, value);
        }
    }
    Ok(response)
}

async fn search(
    state: &AppState,
    principal: &Principal,
    resource_type: Option<&str>,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(principal, resource_type, Interaction::Search)?;
    let handling: Handling = handling(headers);
    let query = crate::bundles::encode_pairs(&params);
    let guarded = session(state, principal, headers, Some(&query))?.search(resource_type, &params, handling).await?;
    let path = resource_type.map(|t| format!("/{t}")).unwrap_or_default();
    let mut bundle = searchset_bundle(&state.config.base_url, &path, &params, &guarded.value);
    mark_withheld(&mut bundle, guarded.withheld, guarded.total_known);
    Ok(fhir_response(StatusCode::OK, &bundle))
}

/// `GET /{type}?...`.
pub async fn search_type(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(&state, &principal, Some(&resource_type), query_pairs(&query), &headers).await
}

/// `POST /{type}/_search` with form-encoded parameters (and any in the URL).
pub async fn search_type_post(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut params = query_pairs(&query);
    params.extend(parse_query_string(&String::from_utf8_lossy(&body)));
    search(&state, &principal, Some(&resource_type), params, &headers).await
}

/// `GET /?...`: a search across all types (common parameters only, e.g. `_source`, `_id`).
pub async fn search_system(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    search(&state, &principal, None, query_pairs(&query), &headers).await
}

fn history_query(
    resource_type: Option<String>,
    id: Option<String>,
    query: &Option<String>,
) -> Result<HistoryQuery, ApiError> {
    let mut history = HistoryQuery { resource_type, id, since: None, count: DEFAULT_PAGE_SIZE, offset: 0 };
    for (name, value) in query_pairs(query) {
        let invalid = |what: &str| {
            ApiError::bad_request(
                Issue::error(IssueType::Value, format!("{name} must be {what}, not '{value}'")).at(name.clone()),
            )
        };
        match name.as_str() {
            "_count" => {
                history.count =
                    value.parse::<usize>().map_err(|_| invalid("a non-negative integer"))?.min(MAX_PAGE_SIZE)
            }
            "_offset" => history.offset = value.parse().map_err(|_| invalid("a non-negative integer"))?,
            "_since" => {
                history.since =
                    Some(carecircle_fhir::date::parse_date_range(&value).map_err(|_| invalid("an instant"))?.start);
            }
            "_format" | "_pretty" => {}
            _ => {
                return Err(ApiError::bad_request(
                    Issue::error(IssueType::NotSupported, format!("history does not support the parameter '{name}'"))
                        .at(name.clone()),
                ))
            }
        }
    }
    Ok(history)
}

async fn history(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    query: HistoryQuery,
    path: &str,
    raw: &Option<String>,
) -> Result<Response, ApiError> {
    let guarded = session(state, principal, headers, raw.as_deref())?.history(query.clone()).await?;
    let mut bundle = history_bundle(&state.config.base_url, path, &query_pairs(raw), &query, &guarded.value);
    mark_withheld(&mut bundle, guarded.withheld, guarded.total_known);
    Ok(fhir_response(StatusCode::OK, &bundle))
}

/// `GET /_history`.
pub async fn history_system(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, None, Interaction::Search)?;
    history(&state, &principal, &headers, history_query(None, None, &raw)?, "/_history", &raw).await
}

/// `GET /{type}/_history`.
pub async fn history_type(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Search)?;
    let path = format!("/{resource_type}/_history");
    history(&state, &principal, &headers, history_query(Some(resource_type), None, &raw)?, &path, &raw).await
}

/// `GET /{type}/{id}/_history`.
pub async fn history_instance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_scope(&principal, Some(&resource_type), Interaction::Read)?;
    let path = format!("/{resource_type}/{id}/_history");
    history(&state, &principal, &headers, history_query(Some(resource_type), Some(id), &raw)?, &path, &raw).await
}

/// `POST /` with a batch or transaction Bundle.
pub async fn bundle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    crate::bundles::require_entry_scopes(&principal, &body)?;
    let caller = caller(&headers, &state, &principal)?;
    let response = session(&state, &principal, &headers, None)?.process_bundle(&caller, body).await?;
    Ok(fhir_response(StatusCode::OK, &response))
}

/// `/{type}/{id}/$operation`: `Patient/$everything` and `Organization/$custodian-export`.
pub async fn instance_operation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((resource_type, id, operation)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = query_pairs(&raw);
    // Operations read whole compartments or partners' data sets: they need search on every type.
    require_scope(&principal, None, Interaction::Search)?;
    match (resource_type.as_str(), operation.as_str()) {
        ("Patient", "$everything") => {
            let mut count = DEFAULT_PAGE_SIZE;
            let mut offset = 0;
            for (name, value) in &params {
                let parsed = || {
                    value.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(
                            Issue::error(IssueType::Value, format!("{name} must be a non-negative integer"))
                                .at(name.clone()),
                        )
                    })
                };
                match name.as_str() {
                    "_count" => count = parsed()?.min(MAX_PAGE_SIZE),
                    "_offset" => offset = parsed()?,
                    _ => {
                        return Err(ApiError::bad_request(
                            Issue::error(
                                IssueType::NotSupported,
                                format!("$everything does not support the parameter '{name}'"),
                            )
                            .at(name.clone()),
                        ))
                    }
                }
            }
            let guarded = session(&state, &principal, &headers, raw.as_deref())?.everything(&id, count, offset).await?;
            let path = format!("/Patient/{id}/$everything");
            let mut bundle = everything_bundle(&state.config.base_url, &path, count, offset, &guarded.value);
            mark_withheld(&mut bundle, guarded.withheld, guarded.total_known);
            Ok(fhir_response(StatusCode::OK, &bundle))
        }
        (_, "$explain") => crate::explain::explain(&state, &principal, &resource_type, &id, &params).await,
        ("Patient", "$access-log") => crate::audit::access_log(&state, &principal, &id, &raw).await,
        ("Patient", "$care-team") => crate::care_team::care_team(&state, &principal, &headers, &id).await,
        ("Organization", "$custodian-export") => custodian_export(&state, &principal, &headers, &id).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Issue::error(
                IssueType::NotSupported,
                format!("operation '{operation}' is not supported on {resource_type}"),
            ),
        )),
    }
}

/// Every resource the organisation is custodian of, as NDJSON (`application/fhir+ndjson`).
/// Only the partner itself (its systems and staff) and the administrator may export it; the
/// export is audited as one event.
async fn custodian_export(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    organization_id: &str,
) -> Result<Response, ApiError> {
    state.record.read("Organization", organization_id).await?;
    let organisation = format!("Organization/{organization_id}");
    if !principal.is_admin() && principal.organization.as_deref() != Some(organisation.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Issue::error(
                IssueType::Forbidden,
                "only the partner itself or the administrator may export a partner's data",
            ),
        ));
    }
    session(state, principal, headers, Some("$custodian-export"))?.audit_export(&organisation).await?;
    let mut query = SearchQuery::all(None);
    query.filters.push(carecircle_fhir::search::Filter {
        param: "_source".into(),
        kind: carecircle_fhir::SearchParamType::Uri,
        negated: false,
        any_of: vec![carecircle_fhir::search::Condition::Custodian(format!("Organization/{organization_id}"))],
    });
    query.count = MAX_PAGE_SIZE;
    let mut body = String::new();
    loop {
        let result = state.record.run_search(query.clone()).await?;
        for resource in &result.page.entries {
            if let Some(json) = &resource.body {
                body.push_str(json);
                body.push('\n');
            }
        }
        if result.page.entries.len() < query.count {
            break;
        }
        query.offset += query.count;
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "application/fhir+ndjson")], body).into_response())
}

/// Anything the API does not serve.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

/// A known path with a method it does not accept.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Issue::error(IssueType::NotSupported, format!("{method} is not allowed on '{}'", uri.path())),
    )
}
