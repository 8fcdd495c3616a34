//! FHIR JSON on the wire: the request body extractor (size limit, content type, JSON syntax),
//! `Prefer` headers, and responses with the FHIR media type, `ETag`, `Last-Modified` and
//! `Location`.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carecircle_fhir::search::Handling;
use carecircle_fhir::{Issue, IssueType};
use carecircle_store::StoredResource;
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// The FHIR JSON media type, as sent.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A response with a FHIR JSON body.
pub fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// `Last-Modified` form of a UTC millisecond instant (RFC 9110 IMF-fixdate).
pub fn http_date(millis: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_default()
}

/// The weak ETag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version in an `If-Match` header (`W/"3"` or `"3"`), or a 400 when it is not one.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    text.trim_start_matches("W/").trim_matches('"').parse().map(Some).map_err(|_| {
        ApiError::bad_request(
            Issue::error(IssueType::Value, format!("If-Match '{text}' is not an ETag such as W/\"3\"")).at("If-Match"),
        )
    })
}

/// `Prefer: handling=strict|lenient` (strict when absent: an unknown parameter in a search of a
/// care record must not silently widen the result).
pub fn handling(headers: &HeaderMap) -> Handling {
    if prefer_values(headers).any(|(k, v)| k == "handling" && v == "lenient") {
        Handling::Lenient
    } else {
        Handling::Strict
    }
}

/// `Prefer: return=minimal|representation|OperationOutcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPreference {
    /// The stored resource (the default).
    Representation,
    /// No body.
    Minimal,
    /// An `OperationOutcome` saying what happened.
    OperationOutcome,
}

/// The caller's return preference.
pub fn return_preference(headers: &HeaderMap) -> ReturnPreference {
    match prefer_values(headers).find(|(k, _)| k == "return").map(|(_, v)| v) {
        Some(v) if v == "minimal" => ReturnPreference::Minimal,
        Some(v) if v == "OperationOutcome" => ReturnPreference::OperationOutcome,
        _ => ReturnPreference::Representation,
    }
}

fn prefer_values(headers: &HeaderMap) -> impl Iterator<Item = (String, String)> + '_ {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split([',', ';'])).filter_map(
        |part| {
            let (k, v) = part.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        },
    )
}

/// A response carrying a stored resource with its version headers.
pub fn resource_response(
    status: StatusCode,
    stored: &StoredResource,
    base: &str,
    with_location: bool,
    preference: ReturnPreference,
) -> Response {
    let mut response = match (preference, stored.body.as_deref()) {
        (ReturnPreference::Minimal, _) | (_, None) => status.into_response(),
        (ReturnPreference::OperationOutcome, _) => fhir_response(
            status,
            &carecircle_fhir::outcome::operation_outcome(&[Issue::information(format!(
                "{}/{} stored as version {}",
                stored.resource_type, stored.id, stored.version
            ))]),
        ),
        // The stored body is the resource as the store serialised it (with its meta): sent as
        // it is, not parsed and serialised again.
        (ReturnPreference::Representation, Some(body)) => {
            let mut response = (status, body.to_string()).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            response
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag(stored.version)) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&http_date(stored.last_updated)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    if with_location {
        let location = format!("{base}/{}/{}/_history/{}", stored.resource_type, stored.id, stored.version);
        if let Ok(value) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, value.clone());
            headers.insert(header::CONTENT_LOCATION, value);
        }
    }
    response
}

/// A request body holding FHIR JSON: within the configured size, of a JSON media type, and
/// syntactically valid. Each failure is a precise `OperationOutcome`.
pub struct FhirBody(pub Value);

impl<S> FromRequest<S> for FhirBody
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, state: &S) -> Result<FhirBody, ApiError> {
        let limit = AppState::from_ref(state).config.max_body_bytes;
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let media = content_type
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                media.as_str(),
                "application/fhir+json" | "application/json" | "application/json+fhir" | "text/json"
            ) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Issue::error(
                        IssueType::NotSupported,
                        format!("content type '{media}' is not supported; send application/fhir+json"),
                    ),
                ));
            }
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Issue::error(IssueType::TooLong, format!("the request body is larger than the limit of {limit} bytes")),
            )
        };
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let bytes = to_bytes(request.into_body(), limit).await.map_err(|_| too_large())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(Issue::error(
                IssueType::Required,
                "the request has no body; send a FHIR resource",
            )));
        }
        serde_json::from_slice(&bytes).map(FhirBody).map_err(|e| {
            ApiError::bad_request(Issue::error(IssueType::Structure, format!("the body is not valid JSON: {e}")))
        })
    }
}
