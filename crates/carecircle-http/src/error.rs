//! The one HTTP error type: every failure becomes a FHIR `OperationOutcome` with its status
//! decided here, and internal causes go to the log, never to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use carecircle_fhir::outcome::operation_outcome;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::RecordError;

use crate::fhir_json::fhir_response;

/// An error answered with an `OperationOutcome`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What to tell the caller.
    pub issues: Vec<Issue>,
}

impl ApiError {
    /// An error with one issue.
    pub fn new(status: StatusCode, issue: Issue) -> ApiError {
        ApiError { status, issues: vec![issue] }
    }

    /// 400 with one issue.
    pub fn bad_request(issue: Issue) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, issue)
    }

    /// 404 for a path the server does not serve.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Issue::error(IssueType::NotFound, format!("nothing is served at '{path}'")),
        )
    }
}

impl From<RecordError> for ApiError {
    fn from(error: RecordError) -> ApiError {
        let status = match &error {
            RecordError::Invalid(_) => StatusCode::BAD_REQUEST,
            RecordError::NotFound(_) => StatusCode::NOT_FOUND,
            RecordError::Gone(_) => StatusCode::GONE,
            RecordError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            RecordError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            RecordError::Forbidden(_) => StatusCode::FORBIDDEN,
            RecordError::Internal(cause) => {
                tracing::error!(%cause, "request failed inside the server");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError { status, issues: error.issues() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        fhir_response(self.status, &operation_outcome(&self.issues))
    }
}
