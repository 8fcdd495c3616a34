//! Domain primitives shared by every part of the engine: organisation ids, codes, located
//! problems, and the few readers of FHIR JSON elements (references, codings, extensions, dates)
//! the parsers are built on.

use std::fmt;

use carecircle_fhir::{Issue, IssueType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, OffsetDateTime};

/// The id of an `Organization` (a partner, or a team inside one), without the `Organization/`
/// prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// An organisation id as written (`org-vale-mh-trust`).
    pub fn new(id: impl Into<String>) -> OrgId {
        OrgId(id.into())
    }

    /// The id of the Organization a reference string points to: `Organization/x`, an absolute
    /// URL ending in `Organization/x`, optionally followed by `/_history/n`. Anything else
    /// (another type, a contained `#ref`, a bare id) is `None`.
    pub fn from_reference(reference: &str) -> Option<OrgId> {
        let (resource_type, id) = reference_parts(reference)?;
        (resource_type == "Organization").then(|| OrgId(id.to_string()))
    }

    /// The id of the Organization a FHIR `Reference` element points to.
    pub fn from_reference_element(element: &Value) -> Option<OrgId> {
        element.get("reference").and_then(Value::as_str).and_then(OrgId::from_reference)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The relative reference `Organization/{id}`.
    pub fn reference(&self) -> String {
        format!("Organization/{}", self.0)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resource type and id of a literal reference (`Type/id`, or an absolute URL ending in
/// `Type/id`, optionally with `/_history/n`).
pub fn reference_parts(reference: &str) -> Option<(&str, &str)> {
    let path = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut segments = path.rsplit('/');
    let id = segments.next()?;
    let resource_type = segments.next()?;
    let is_type = resource_type.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphabetic());
    (is_type && !id.is_empty()).then_some((resource_type, id))
}

/// A code in a code system (`system` + `code`), the part of a `Coding` rules compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Code {
    /// The code system URL.
    pub system: String,
    /// The code.
    pub code: String,
}

impl Code {
    /// A code in `system`.
    pub fn new(system: impl Into<String>, code: impl Into<String>) -> Code {
        Code { system: system.into(), code: code.into() }
    }

    /// The code of a `Coding` element with both `system` and `code`.
    pub fn from_coding(coding: &Value) -> Option<Code> {
        let system = coding.get("system")?.as_str()?;
        let code = coding.get("code")?.as_str()?;
        Some(Code::new(system, code))
    }

    /// A `Coding` element (with `display` when given).
    pub fn to_coding(&self, display: Option<&str>) -> Value {
        let mut coding = serde_json::json!({ "system": self.system, "code": self.code });
        if let Some(display) = display {
            coding["display"] = Value::String(display.to_string());
        }
        coding
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.code)
    }
}

/// Every code of a `CodeableConcept` element.
pub fn concept_codes(concept: &Value) -> Vec<Code> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |codings| codings.iter().filter_map(Code::from_coding).collect())
}

/// What kind of problem a [`Problem`] is, mapped to an `OperationOutcome` issue type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A required element is missing.
    Required,
    /// An element has a value that is not allowed.
    Value,
    /// The content breaks a rule of its structure (wrong kind of JSON, unknown extension part).
    Structure,
    /// The caller may not make this change.
    Forbidden,
    /// The server does not support the requested option.
    NotSupported,
}

/// One problem with submitted content, located by a FHIRPath expression
/// (`CarePlan.activity[2].detail`), so the HTTP layer can answer with an `OperationOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Where, as a FHIRPath expression starting with the resource type.
    pub expression: String,
    /// What is wrong, in a sentence for people.
    pub message: String,
}

impl Problem {
    /// A problem of `kind` at `expression`.
    pub fn new(kind: ProblemKind, expression: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { kind, expression: expression.into(), message: message.into() }
    }

    /// A missing required element.
    pub fn required(expression: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::Required, expression, message)
    }

    /// A value that is not allowed.
    pub fn value(expression: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::Value, expression, message)
    }

    /// A change the caller may not make.
    pub fn forbidden(expression: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::Forbidden, expression, message)
    }

    /// The `OperationOutcome` issue for this problem.
    pub fn to_issue(&self) -> Issue {
        let code = match self.kind {
            ProblemKind::Required => IssueType::Required,
            ProblemKind::Value => IssueType::Value,
            ProblemKind::Structure => IssueType::Structure,
            ProblemKind::Forbidden => IssueType::Forbidden,
            ProblemKind::NotSupported => IssueType::NotSupported,
        };
        Issue::error(code, self.message.clone()).at(self.expression.clone())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.expression, self.message)
    }
}

/// The sub-extensions (or top-level extensions) of `element` with `url`, with their index in the
/// `extension` array.
pub fn extensions<'a>(element: &'a Value, url: &'a str) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
    element
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(move |(_, e)| e.get("url").and_then(Value::as_str) == Some(url))
}

/// The string at `key` of a JSON object, if it is a string.
pub fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A FHIR `date` (`YYYY-MM-DD`, or the first day of `YYYY-MM` / `YYYY`), as a calendar date.
pub fn parse_fhir_date(text: &str) -> Option<Date> {
    let date_part = text.split('T').next().unwrap_or(text);
    let mut parts = date_part.split('-');
    let year: i32 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month: u8 = match parts.next() {
        Some(m) if m.len() == 2 => m.parse().ok()?,
        Some(_) => return None,
        None => 1,
    };
    let day: u8 = match parts.next() {
        Some(d) if d.len() == 2 => d.parse().ok()?,
        Some(_) => return None,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// The first and last instant a FHIR date, dateTime or instant covers (`2026-08` covers the
/// whole month), as UTC `OffsetDateTime`s.
pub fn fhir_instant_range(text: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let range = carecircle_fhir::date::parse_date_range(text).ok()?;
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(range.start) * 1_000_000).ok()?;
    let end = OffsetDateTime::from_unix_timestamp_nanos(i128::from(range.end) * 1_000_000).ok()?;
    Some((start, end))
}

/// A FHIR `instant` in UTC with millisecond precision.
pub fn format_instant(at: OffsetDateTime) -> String {
    let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    carecircle_fhir::date::format_instant(millis)
}

/// A FHIR `date` (`YYYY-MM-DD`).
pub fn format_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_ids_come_from_organisation_references_only() {
        let cases = [
            ("Organization/org-a", Some("org-a")),
            ("https://x.example/fhir/Organization/org-b", Some("org-b")),
            ("Organization/org-c/_history/3", Some("org-c")),
            ("Practitioner/p1", None),
            ("#contained", None),
            ("org-a", None),
            ("Organization/", None),
        ];
        for (reference, expected) in cases {
            assert_eq!(OrgId::from_reference(reference).as_ref().map(OrgId::as_str), expected, "{reference}");
        }
    }

    #[test]
    fn fhir_dates_parse_at_every_precision() {
        assert_eq!(parse_fhir_date("2026-08-19").map(format_date).as_deref(), Some("2026-08-19"));
        assert_eq!(parse_fhir_date("2026-08").map(format_date).as_deref(), Some("2026-08-01"));
        assert_eq!(parse_fhir_date("2026").map(format_date).as_deref(), Some("2026-01-01"));
        assert_eq!(parse_fhir_date("2026-08-19T10:00:00Z").map(format_date).as_deref(), Some("2026-08-19"));
        assert_eq!(parse_fhir_date("2026-02-30"), None);
        assert_eq!(parse_fhir_date("26-08-19"), None);
    }

    #[test]
    fn problems_become_located_issues() {
        let issue = Problem::forbidden("CarePlan.title", "only the lead may change the title").to_issue();
        assert_eq!(issue.code, IssueType::Forbidden);
        assert_eq!(issue.expression, vec!["CarePlan.title".to_string()]);
    }
}
