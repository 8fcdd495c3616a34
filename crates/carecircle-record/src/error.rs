//! The record service's errors: each says which FHIR outcome (and so which HTTP status) applies.

use carecircle_fhir::{Issue, IssueType};
use carecircle_store::{StoreError, StoredResource};

/// Why an interaction failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The request is invalid (400): every problem found, each located.
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<Issue>),
    /// The resource does not exist (404).
    #[error("not found: {}", .0.diagnostics)]
    NotFound(Issue),
    /// The resource was deleted (410); holds the deletion version.
    #[error("{}/{} was deleted", .0.resource_type, .0.id)]
    Gone(StoredResource),
    /// A precondition (`If-Match`, conditional create/update) failed (412).
    #[error("precondition failed: {}", .0.diagnostics)]
    PreconditionFailed(Issue),
    /// The operation is not supported (e.g. a Bundle interaction the server does not offer).
    #[error("not supported: {}", .0.diagnostics)]
    NotSupported(Issue),
    /// The access decision refused the request (403); the issue says why, without revealing
    /// anything the caller may not see.
    #[error("forbidden: {}", .0.diagnostics)]
    Forbidden(Issue),
    /// The server failed (500). The message is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(issues: &[Issue]) -> String {
    issues.iter().map(|i| i.diagnostics.as_str()).collect::<Vec<_>>().join("; ")
}

impl RecordError {
    /// An invalid request with one issue.
    pub fn invalid(issue: Issue) -> RecordError {
        RecordError::Invalid(vec![issue])
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>) -> RecordError {
        RecordError::NotFound(Issue::error(IssueType::NotFound, message))
    }

    /// The same error with every issue located inside `prefix` (`Bundle.entry[2].resource`).
    pub fn within(self, prefix: &str, resource_type: &str) -> RecordError {
        let relocate = |issue: Issue| issue.within(prefix, resource_type);
        match self {
            RecordError::Invalid(issues) => RecordError::Invalid(issues.into_iter().map(relocate).collect()),
            RecordError::NotFound(issue) => RecordError::NotFound(relocate(issue)),
            RecordError::PreconditionFailed(issue) => RecordError::PreconditionFailed(relocate(issue)),
            RecordError::NotSupported(issue) => RecordError::NotSupported(relocate(issue)),
            RecordError::Forbidden(issue) => RecordError::Forbidden(relocate(issue)),
            other => other,
        }
    }

    /// The issues to report to the caller (internal causes are replaced by a generic message).
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            RecordError::Invalid(issues) => issues.clone(),
            RecordError::NotFound(issue)
            | RecordError::PreconditionFailed(issue)
            | RecordError::NotSupported(issue)
            | RecordError::Forbidden(issue) => vec![issue.clone()],
            RecordError::Gone(r) => vec![Issue::error(
                IssueType::Deleted,
                format!("{}/{} was deleted (version {})", r.resource_type, r.id, r.version),
            )],
            RecordError::Internal(_) => vec![Issue::error(
                IssueType::Exception,
                "the server could not complete the request; it has been logged",
            )],
        }
    }
}

impl From<StoreError> for RecordError {
    fn from(error: StoreError) -> RecordError {
        match error {
            StoreError::VersionConflict { resource_type, id, expected, current } => {
                let message = if expected == 0 {
                    format!("{resource_type}/{id} already exists (version {current})")
                } else if current == 0 {
                    format!("{resource_type}/{id} does not exist, but version {expected} was expected")
                } else {
                    format!("{resource_type}/{id} is at version {current}, not the expected version {expected}")
                };
                RecordError::PreconditionFailed(Issue::error(IssueType::Conflict, message))
            }
            StoreError::Backend(message) => RecordError::Internal(message),
        }
    }
}
