//! `OperationOutcome` issues: what went wrong (or was noted) and where, as FHIR reports it.

use serde_json::{json, Value};

/// Issue severity (R4 `issue-severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    /// The action failed because of a problem the server cannot recover from.
    Fatal,
    /// The issue makes the action fail.
    Error,
    /// The action succeeded but something deserves attention.
    Warning,
    /// For information only.
    Information,
}

/// Issue type (the subset of R4 `issue-type` the server reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// A structural issue (malformed JSON, wrong shape).
    Structure,
    /// A required element is missing.
    Required,
    /// An element or value is not valid.
    Value,
    /// Not supported by this server.
    NotSupported,
    /// An element or search parameter the server does not know.
    NotFound,
    /// The resource was deleted.
    Deleted,
    /// Content too long or too large.
    TooLong,
    /// A version conflict or duplicate.
    Conflict,
    /// An unexpected internal failure.
    Exception,
    /// Processing was not attempted because of another problem.
    Processing,
    /// Information about the response (e.g. a search parameter was ignored).
    Informational,
    /// Multiple matches where one was required.
    MultipleMatches,
    /// Access denied, or the content was withheld.
    Forbidden,
    /// Authentication failed or is missing.
    Login,
    /// A security rule (scope, policy) refused the request.
    Security,
    /// Some content was withheld from the response (access decisions filtered it).
    Suppressed,
    /// A business rule (an agreement's lifecycle, a referral's state machine) refused the change.
    BusinessRule,
}

impl IssueSeverity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueSeverity::Fatal => "fatal",
            IssueSeverity::Error => "error",
            IssueSeverity::Warning => "warning",
            IssueSeverity::Information => "information",
        }
    }
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::TooLong => "too-long",
            IssueType::Conflict => "conflict",
            IssueType::Exception => "exception",
            IssueType::Processing => "processing",
            IssueType::Informational => "informational",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::Forbidden => "forbidden",
            IssueType::Login => "login",
            IssueType::Security => "security",
            IssueType::Suppressed => "suppressed",
            IssueType::BusinessRule => "business-rule",
        }
    }
}

/// One issue: severity, type, a human-readable message and where (FHIRPath) it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// How bad it is.
    pub severity: IssueSeverity,
    /// What kind of problem.
    pub code: IssueType,
    /// The message for people.
    pub diagnostics: String,
    /// FHIRPath-style locations (`Patient.birthDate`, `Bundle.entry[2].resource`).
    pub expression: Vec<String>,
}

impl Issue {
    /// An error issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue { severity: IssueSeverity::Error, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    /// A warning issue.
    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue { severity: IssueSeverity::Warning, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    /// An informational issue.
    pub fn information(diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: IssueSeverity::Information,
            code: IssueType::Informational,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// The same issue located at `expression`.
    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }

    /// The same issue with every location prefixed (`Patient.x` inside `Bundle.entry[3].resource`
    /// becomes `Bundle.entry[3].resource.x`); issues without a location get the prefix itself.
    pub fn within(mut self, prefix: &str, resource_type: &str) -> Issue {
        if self.expression.is_empty() {
            self.expression.push(prefix.to_string());
        } else {
            for e in &mut self.expression {
                let rest = e.strip_prefix(resource_type).unwrap_or(e.as_str());
                *e = format!("{prefix}{rest}");
            }
        }
        self
    }
}

/// An `OperationOutcome` resource holding `issues`.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|issue| {
            let mut value = json!({
                "severity": issue.severity.code(),
                "code": issue.code.code(),
                "diagnostics": issue.diagnostics,
            });
            if !issue.expression.is_empty() {
                value["expression"] = json!(issue.expression);
            }
            value
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_issues_with_locations() {
        let issue = Issue::error(IssueType::Value, "bad date")
            .at("Patient.birthDate")
            .within("Bundle.entry[2].resource", "Patient");
        let outcome = operation_outcome(&[issue]);
        assert_eq!(outcome["issue"][0]["severity"], "error");
        assert_eq!(outcome["issue"][0]["code"], "value");
        assert_eq!(outcome["issue"][0]["expression"][0], "Bundle.entry[2].resource.birthDate");
    }
}
