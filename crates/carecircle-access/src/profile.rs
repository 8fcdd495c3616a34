//! Located problems and a small reader over FHIR JSON that records where each value came
//! from, so every profile error names its element as a FHIRPath-style expression
//! (`Contract.term[1].action[0].reasonCode`).

use std::fmt;

use serde_json::Value;
use time::Date;

/// One problem with a resource, located by a FHIRPath-style expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: for example `Contract.signer[0].party`.
    pub expression: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Problem {
    /// A problem at `expression`.
    pub fn new(expression: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { expression: expression.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.expression, self.message)
    }
}

/// A resource that does not follow its carecircle profile; every problem is located.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} does not follow its profile: {}", .resource, .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ProfileError {
    /// The resource type and id, for example `Contract/dsa-1`.
    pub resource: String,
    /// Every problem found (at least one).
    pub problems: Vec<Problem>,
}

impl ProfileError {
    /// True when some problem is located exactly at `expression`.
    pub fn has_problem_at(&self, expression: &str) -> bool {
        self.problems.iter().any(|p| p.expression == expression)
    }
}

/// A JSON value and the FHIRPath-style expression that reached it.
#[derive(Clone, Debug)]
pub(crate) struct At<'a> {
    pub value: &'a Value,
    pub path: String,
}

impl<'a> At<'a> {
    /// The resource itself, at its type name.
    pub fn root(value: &'a Value, resource_type: &str) -> At<'a> {
        At { value, path: resource_type.to_string() }
    }

    /// The child element `name`, when present and not null.
    pub fn field(&self, name: &str) -> Option<At<'a>> {
        match self.value.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(At { value: v, path: format!("{}.{name}", self.path) }),
        }
    }

    /// The path of child `name`, whether or not it is present.
    pub fn child_path(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// The items of a repeating child element; a single object is read as one item.
    pub fn items(&self, name: &str) -> Vec<At<'a>> {
        match self.value.get(name) {
            Some(Value::Array(a)) => {
                a.iter().enumerate().map(|(i, v)| At { value: v, path: format!("{}.{name}[{i}]", self.path) }).collect()
            }
            None | Some(Value::Null) => Vec::new(),
            Some(v) => vec![At { value: v, path: format!("{}.{name}", self.path) }],
        }
    }

    /// The string child `name`; a present non-string is a problem.
    pub fn string(&self, name: &str, problems: &mut Vec<Problem>) -> Option<&'a str> {
        let child = self.field(name)?;
        match child.value.as_str() {
            Some(s) => Some(s),
            None => {
                problems.push(Problem::new(child.path, "must be a string"));
                None
            }
        }
    }

    /// The string child `name`, which must be present.
    pub fn required_string(&self, name: &str, problems: &mut Vec<Problem>) -> Option<&'a str> {
        if self.field(name).is_none() {
            problems.push(Problem::new(self.child_path(name), "is required"));
            return None;
        }
        self.string(name, problems)
    }

    /// Every coding of this CodeableConcept (or this Coding itself), with system and code.
    pub fn codings(&self) -> Vec<(At<'a>, Option<&'a str>, Option<&'a str>)> {
        let list = if self.value.get("coding").is_some() { self.items("coding") } else { vec![self.clone()] };
        list.into_iter()
            .map(|c| {
                let system = c.value.get("system").and_then(Value::as_str);
                let code = c.value.get("code").and_then(Value::as_str);
                (c, system, code)
            })
            .collect()
    }

    /// The code of the first coding in `system`, if any.
    pub fn code_in(&self, system: &str) -> Option<&'a str> {
        self.codings().into_iter().find_map(|(_, s, code)| if s == Some(system) { code } else { None })
    }

    /// The `Type/id` of this Reference element, split in two; a missing or malformed
    /// literal reference is a problem.
    pub fn reference(&self, problems: &mut Vec<Problem>) -> Option<(&'a str, &'a str)> {
        let Some(reference) = self.value.get("reference").and_then(Value::as_str) else {
            problems.push(Problem::new(self.child_path("reference"), "a literal reference Type/id is required"));
            return None;
        };
        match split_reference(reference) {
            Some(parts) => Some(parts),
            None => {
                problems.push(Problem::new(
                    self.child_path("reference"),
                    format!("'{reference}' is not a Type/id reference"),
                ));
                None
            }
        }
    }

    /// A FHIR `date` (or the date part of a `dateTime`) child.
    pub fn date(&self, name: &str, problems: &mut Vec<Problem>) -> Option<Date> {
        let s = self.string(name, problems)?;
        match parse_date(s) {
            Some(d) => Some(d),
            None => {
                problems.push(Problem::new(self.child_path(name), format!("'{s}' is not a full date (YYYY-MM-DD)")));
                None
            }
        }
    }
}

/// Split `Type/id` (relative, or the last two segments of an absolute URL).
pub(crate) fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.rsplitn(3, '/');
    let id = parts.next()?;
    let resource_type = parts.next()?;
    let type_ok = resource_type.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && resource_type.chars().all(|c| c.is_ascii_alphabetic());
    (type_ok && !id.is_empty()).then_some((resource_type, id))
}

/// Parse the date part of a FHIR `date` or `dateTime` (`YYYY-MM-DD…`).
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let day = s.get(0..10)?;
    let mut it = day.split('-');
    let year: i32 = it.next()?.parse().ok()?;
    let month: u8 = it.next()?.parse().ok()?;
    let dom: u8 = it.next()?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    Date::from_calendar_date(year, month, dom).ok()
}

/// A date as the number `yyyymmdd`, which orders like the date (how Cedar policies compare days).
pub(crate) fn date_number(d: Date) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(u8::from(d.month())) * 100 + i64::from(d.day())
}

/// The resource's `Type/id` for error messages.
pub(crate) fn resource_label(resource: &Value, expected_type: &str) -> String {
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("(no id)");
    format!("{expected_type}/{id}")
}

/// Check `resourceType`, returning a located problem when it is wrong.
pub(crate) fn check_resource_type(resource: &Value, expected_type: &str) -> Result<(), ProfileError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == expected_type => Ok(()),
        other => Err(ProfileError {
            resource: resource_label(resource, expected_type),
            problems: vec![Problem::new(
                expected_type,
                format!("resourceType must be {expected_type}, found {}", other.unwrap_or("nothing")),
            )],
        }),
    }
}

/// `Ok(value)` when no problem was found, otherwise the located error.
pub(crate) fn finish<T>(resource: String, problems: Vec<Problem>, value: Option<T>) -> Result<T, ProfileError> {
    match value {
        Some(v) if problems.is_empty() => Ok(v),
        _ => Err(ProfileError {
            resource,
            problems: if problems.is_empty() { vec![Problem::new("", "incomplete resource")] } else { problems },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_split_into_type_and_id() {
        assert_eq!(split_reference("Organization/org-1"), Some(("Organization", "org-1")));
        assert_eq!(split_reference("https://x.example.org/fhir/Patient/p1"), Some(("Patient", "p1")));
        assert_eq!(split_reference("org-1"), None);
        assert_eq!(split_reference("organization/x"), None);
    }

    #[test]
    fn dates_parse_and_number_in_order() {
        let a = parse_date("2026-01-31").map(date_number);
        let b = parse_date("2026-02-01T10:00:00Z").map(date_number);
        assert_eq!(a, Some(20_260_131));
        assert!(a < b);
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026"), None);
    }

    #[test]
    fn navigation_locates_problems() {
        let v = json!({ "term": [{ "id": 3 }, { "id": "t2" }] });
        let root = At::root(&v, "Contract");
        let mut problems = Vec::new();
        let ids: Vec<_> = root.items("term").iter().map(|t| t.string("id", &mut problems)).collect();
        assert_eq!(ids, vec![None, Some("t2")]);
        assert_eq!(problems, vec![Problem::new("Contract.term[0].id", "must be a string")]);
    }
}
