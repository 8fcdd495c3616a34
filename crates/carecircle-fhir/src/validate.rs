//! Structural validation of incoming resources against the R4 element definitions.
//!
//! The validator walks the JSON (R4 §2.6.2 JSON representation) with the generated element type
//! map of [`crate::definitions`]: every property must be an element of its parent type (choice
//! elements as `name` + type suffix, primitive extensions as `_name`), primitives must have the
//! JSON kind and lexical form of their FHIR type, complex values must be objects (or arrays of
//! them) and nested resources (`contained`, `Bundle.entry.resource`, ...) are validated as the
//! type they declare. Cardinality and invariants are not checked: the map does not carry them.
//!
//! Issues are located by FHIRPath-style expressions (`Patient.name[1].given[0]`); the path is
//! kept as a stack of borrowed segments and only rendered when an issue is reported, and element
//! lookups reuse one buffer, so validating a resource allocates little beyond the issues.

use serde_json::{Map, Value};

use crate::definitions::{definitions, Definitions};
use crate::outcome::{Issue, IssueType};

/// At most this many issues are reported for one resource.
const MAX_ISSUES: usize = 100;

/// Checks `resource` (already known to be an object with a known `resourceType`) against the R4
/// element definitions; returns every problem found, each located by a FHIRPath expression.
pub fn validate_resource(resource: &Value) -> Vec<Issue> {
    let Some(object) = resource.as_object() else {
        return vec![Issue::error(IssueType::Structure, "a resource must be a JSON object")];
    };
    let resource_type = match object.get("resourceType") {
        Some(Value::String(t)) if definitions().is_resource_type(t) => t.as_str(),
        Some(Value::String(t)) => {
            return vec![Issue::error(IssueType::Structure, format!("unknown resource type '{t}'"))];
        }
        _ => return vec![Issue::error(IssueType::Structure, "a resource must have a string 'resourceType'")],
    };
    let mut validator = Validator { defs: definitions(), issues: Vec::new(), path: Vec::new(), types: String::new() };
    validator.path.push(Segment::Name(resource_type));
    validator.types.push_str(resource_type);
    validator.object(object, 0, true);
    validator.issues
}

/// One step of the location of the value being checked.
#[derive(Debug, Clone, Copy)]
enum Segment<'v> {
    /// An element name (`name`, `birthDate`), or the resource type at the root.
    Name(&'v str),
    /// An index into a repeating element.
    Index(usize),
}

/// What a JSON property resolved to.
struct Element {
    /// The type code (`HumanName`, `date`, `BackboneElement`, `@Questionnaire.item`, ...).
    code: &'static str,
    /// Whether the property matched a choice element (`deceasedBoolean` for `deceased[x]`).
    is_choice: bool,
}

struct Validator<'v> {
    defs: &'static Definitions,
    issues: Vec<Issue>,
    /// Location of the current value.
    path: Vec<Segment<'v>>,
    /// Type paths: the current type is `types[start..]` (`Patient.contact`); element lookups
    /// append `.name` temporarily, nested types are appended after it and truncated on return.
    types: String,
}

impl<'v> Validator<'v> {
    fn full(&self) -> bool {
        self.issues.len() >= MAX_ISSUES
    }

    /// Records an issue at the current path.
    fn report(&mut self, code: IssueType, message: String) {
        if self.full() {
            return;
        }
        let mut at = String::with_capacity(64);
        for segment in &self.path {
            match segment {
                Segment::Name(name) => {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(name);
                }
                Segment::Index(i) => {
                    at.push('[');
                    at.push_str(&i.to_string());
                    at.push(']');
                }
            }
        }
        self.issues.push(Issue::error(code, message).at(at));
    }

    /// Looks up `name` (`name` or `name[x]`) as a child of the type `types[start..]`.
    fn lookup(&mut self, start: usize, name: &str, choice: bool) -> Option<&'static [String]> {
        let len = self.types.len();
        self.types.push('.');
        self.types.push_str(name);
        if choice {
            self.types.push_str("[x]");
        }
        let defs: &'static Definitions = self.defs;
        let found = defs.element_types(&self.types[start..]);
        self.types.truncate(len);
        found
    }

    /// Resolves a JSON property name to an element of the type `types[start..]`.
    fn resolve(&mut self, start: usize, key: &str) -> Option<Element> {
        if let Some(types) = self.lookup(start, key, false) {
            return types.first().map(|code| Element { code: code.as_str(), is_choice: false });
        }
        for (i, c) in key.char_indices().skip(1) {
            if !c.is_ascii_uppercase() {
                continue;
            }
            let (prefix, suffix) = key.split_at(i);
            if let Some(types) = self.lookup(start, prefix, true) {
                if let Some(code) = types.iter().find(|t| type_suffix_matches(t, suffix)) {
                    return Some(Element { code: code.as_str(), is_choice: true });
                }
            }
        }
        None
    }

    /// Validates the properties of an object of the type `types[start..]`.
    fn object(&mut self, object: &'v Map<String, Value>, start: usize, is_resource: bool) {
        if object.is_empty() {
            self.report(IssueType::Structure, "empty objects are not allowed".to_string());
            return;
        }
        for (key, value) in object {
            if self.full() {
                return;
            }
            let key = key.as_str();
            if (is_resource && key == "resourceType") || key == "fhir_comments" {
                continue;
            }
            if let Some(name) = key.strip_prefix('_') {
                self.primitive_extension(object, start, key, name, value);
                continue;
            }
            match self.resolve(start, key) {
                Some(element) => {
                    let code = if element.code == "System.String" {
                        // `id` and `Extension.url` are typed System.String in the map.
                        if is_resource && key == "id" {
                            "id"
                        } else if key == "url" {
                            "uri"
                        } else {
                            "string"
                        }
                    } else {
                        element.code
                    };
                    self.path.push(Segment::Name(key));
                    self.element(object, start, key, code, element.is_choice, value);
                    self.path.pop();
                }
                None => {
                    self.path.push(Segment::Name(key));
                    self.report(IssueType::Structure, format!("unknown element '{key}'"));
                    self.path.pop();
                }
            }
        }
    }

    /// Validates the value of the element `key` (already on the path), single or repeating.
    fn element(
        &mut self,
        parent: &'v Map<String, Value>,
        start: usize,
        key: &'v str,
        code: &'static str,
        is_choice: bool,
        value: &'v Value,
    ) {
        let Value::Array(items) = value else {
            self.single(start, key, code, value);
            return;
        };
        if is_choice {
            self.report(IssueType::Structure, format!("choice element '{key}' cannot repeat"));
            return;
        }
        if items.is_empty() {
            self.report(IssueType::Structure, "empty arrays are not allowed".to_string());
            return;
        }
        for (i, item) in items.iter().enumerate() {
            if self.full() {
                return;
            }
            self.path.push(Segment::Index(i));
            match item {
                Value::Array(_) => self.report(IssueType::Structure, "arrays cannot contain arrays".to_string()),
                Value::Null => {
                    // A null stands for a value that only has extensions, in `_key` at the same index.
                    let extended = is_primitive(code)
                        && parent.get(&format!("_{key}")).and_then(|e| e.get(i)).is_some_and(Value::is_object);
                    if !extended {
                        self.report(
                            IssueType::Structure,
                            "null is only allowed in a primitive array whose '_' sibling has extensions at the same index"
                                .to_string(),
                        );
                    }
                }
                _ => self.single(start, key, code, item),
            }
            self.path.pop();
        }
    }

    /// Validates one (non-array) value of type `code`.
    fn single(&mut self, start: usize, key: &'v str, code: &'static str, value: &'v Value) {
        if is_primitive(code) {
            if let Some((kind, message)) = check_primitive(code, value) {
                self.report(kind, message);
            }
            return;
        }
        let Some(object) = value.as_object() else {
            self.report(IssueType::Structure, format!("expected a JSON object ({code}), found {}", json_kind(value)));
            return;
        };
        if code == "BackboneElement" || code == "Element" {
            let len = self.types.len();
            self.types.push('.');
            self.types.push_str(key);
            self.object(object, start, false);
            self.types.truncate(len);
        } else if let Some(target) = code.strip_prefix('@') {
            self.nested_type(object, target, false);
        } else if code == "Resource" || self.defs.is_resource_type(code) {
            self.nested_resource(object, code);
        } else {
            self.nested_type(object, code, false);
        }
    }

    /// Validates `object` as the type (or backbone path) `type_path`.
    fn nested_type(&mut self, object: &'v Map<String, Value>, type_path: &str, is_resource: bool) {
        let start = self.types.len();
        self.types.push_str(type_path);
        self.object(object, start, is_resource);
        self.types.truncate(start);
    }

    /// Validates a resource nested in another one (`contained`, `Bundle.entry.resource`).
    fn nested_resource(&mut self, object: &'v Map<String, Value>, expected: &str) {
        match object.get("resourceType") {
            Some(Value::String(t)) if self.defs.is_resource_type(t) => {
                if expected != "Resource" && t != expected {
                    self.report(IssueType::Structure, format!("expected a {expected} resource, found '{t}'"));
                } else {
                    self.nested_type(object, t, true);
                }
            }
            Some(Value::String(t)) => self.report(IssueType::Structure, format!("unknown resource type '{t}'")),
            _ => self.report(IssueType::Structure, "a resource must have a string 'resourceType'".to_string()),
        }
    }

    /// Validates `_name`: the id and extensions of the primitive element `name`.
    fn primitive_extension(
        &mut self,
        parent: &'v Map<String, Value>,
        start: usize,
        key: &'v str,
        name: &'v str,
        value: &'v Value,
    ) {
        let primitive = self.resolve(start, name).is_some_and(|e| is_primitive(e.code));
        if !primitive {
            self.path.push(Segment::Name(key));
            self.report(IssueType::Structure, format!("unknown element '{key}'"));
            self.path.pop();
            return;
        }
        self.path.push(Segment::Name(name));
        match (value, parent.get(name)) {
            (Value::Array(items), sibling) => match sibling {
                Some(Value::Array(values)) if values.len() != items.len() => self.report(
                    IssueType::Structure,
                    format!("'{key}' has {} entries but '{name}' has {}", items.len(), values.len()),
                ),
                Some(Value::Array(_)) | None => {
                    for (i, item) in items.iter().enumerate() {
                        self.path.push(Segment::Index(i));
                        match item {
                            Value::Null => {}
                            Value::Object(object) => self.primitive_extension_object(object),
                            other => self.report(
                                IssueType::Structure,
                                format!("'{key}' entries must be objects or null, found {}", json_kind(other)),
                            ),
                        }
                        self.path.pop();
                    }
                }
                Some(_) => self.report(IssueType::Structure, format!("'{key}' is an array but '{name}' is not")),
            },
            (Value::Object(object), sibling) => {
                if matches!(sibling, Some(Value::Array(_))) {
                    self.report(IssueType::Structure, format!("'{name}' is an array but '{key}' is not"));
                } else {
                    self.primitive_extension_object(object);
                }
            }
            (other, _) => {
                self.report(IssueType::Structure, format!("'{key}' must be an object, found {}", json_kind(other)))
            }
        }
        self.path.pop();
    }

    /// Validates the `{"id": ..., "extension": [...]}` object of a primitive extension.
    fn primitive_extension_object(&mut self, object: &'v Map<String, Value>) {
        if object.is_empty() {
            self.report(IssueType::Structure, "empty objects are not allowed".to_string());
        }
        for (key, value) in object {
            let key = key.as_str();
            match key {
                "fhir_comments" => {}
                "id" | "extension" => {
                    self.path.push(Segment::Name(key));
                    if key == "id" {
                        if let Some((kind, message)) = check_primitive("string", value) {
                            self.report(kind, message);
                        }
                    } else {
                        self.element(object, 0, key, "Extension", false, value);
                    }
                    self.path.pop();
                }
                _ => {
                    self.path.push(Segment::Name(key));
                    self.report(IssueType::Structure, format!("unknown element '{key}'"));
                    self.path.pop();
                }
            }
        }
    }
}

/// Whether `suffix` (`Quantity`, `DateTime`) names the type `code` (`Quantity`, `dateTime`).
fn type_suffix_matches(code: &str, suffix: &str) -> bool {
    let mut code_chars = code.chars();
    let mut suffix_chars = suffix.chars();
    match (code_chars.next(), suffix_chars.next()) {
        (Some(c), Some(s)) => c.to_ascii_uppercase() == s && code_chars.as_str() == suffix_chars.as_str(),
        _ => false,
    }
}

/// Whether `code` is a FHIR primitive type (their codes start with a lower-case letter).
fn is_primitive(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a primitive value of FHIR type `code`: its JSON kind, range and lexical form.
fn check_primitive(code: &str, value: &Value) -> Option<(IssueType, String)> {
    let wrong_kind =
        |expected: &str| Some((IssueType::Value, format!("expected {expected} ({code}), found {}", describe(value))));
    match code {
        "boolean" => {
            if value.is_boolean() {
                None
            } else {
                wrong_kind("a JSON boolean")
            }
        }
        "integer" | "positiveInt" | "unsignedInt" => {
            let Value::Number(n) = value else {
                return wrong_kind("a JSON integer");
            };
            let Some(n) = n.as_i64() else {
                return wrong_kind("a JSON integer");
            };
            let min = match code {
                "positiveInt" => 1,
                "unsignedInt" => 0,
                _ => i64::from(i32::MIN),
            };
            if n < min || n > i64::from(i32::MAX) {
                Some((IssueType::Value, format!("{n} is out of range for {code} ({min}..={})", i32::MAX)))
            } else {
                None
            }
        }
        "decimal" => {
            if value.is_number() {
                None
            } else {
                wrong_kind("a JSON number")
            }
        }
        _ => {
            let Value::String(s) = value else {
                return wrong_kind("a JSON string");
            };
            if s.is_empty() {
                return Some((IssueType::Value, format!("empty strings are not allowed ({code})")));
            }
            if valid_lexical(code, s) {
                None
            } else {
                Some((IssueType::Value, format!("'{s}' is not a valid {code}")))
            }
        }
    }
}

/// The value for a message: strings quoted, others as JSON.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Array(_) | Value::Object(_) => json_kind(value).to_string(),
        other => other.to_string(),
    }
}

/// Checks the lexical form of a non-empty string primitive against the R4 regexes.
fn valid_lexical(code: &str, s: &str) -> bool {
    let b = s.as_bytes();
    match code {
        "date" => matches!(date(b), Some((i, _)) if i == b.len()),
        "dateTime" => date_time(b),
        "instant" => instant(b),
        "time" => time(b, 0) == Some(b.len()),
        "id" => b.len() <= 64 && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.'),
        // [^\s]+(\s[^\s]+)*
        "code" => !s.starts_with(char::is_whitespace) && !s.ends_with(char::is_whitespace) && !s.contains("  "),
        "uri" | "url" | "canonical" => !s.contains(char::is_whitespace),
        "oid" => oid(s),
        "uuid" => uuid(s),
        "base64Binary" => b.iter().all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c) || c.is_ascii_whitespace()),
        // string, markdown, xhtml: any non-empty text without control characters.
        _ => !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')),
    }
}

/// Reads `n` ASCII digits at `i`.
fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let part = b.get(i..i + n)?;
    part.iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY[-MM[-DD]]`; returns the end position and whether the day was present.
fn date(b: &[u8]) -> Option<(usize, bool)> {
    let year = digits(b, 0, 4).filter(|y| *y > 0)?;
    if b.get(4) != Some(&b'-') {
        return Some((4, false));
    }
    let month = digits(b, 5, 2).filter(|m| (1..=12).contains(m))?;
    if b.get(7) != Some(&b'-') {
        return Some((7, false));
    }
    digits(b, 8, 2).filter(|d| (1..=days_in_month(year, month)).contains(d))?;
    Some((10, true))
}

/// Parses `hh:mm:ss[.f+]` at `i`; returns the end position.
fn time(b: &[u8], i: usize) -> Option<usize> {
    digits(b, i, 2).filter(|h| *h <= 23)?;
    (b.get(i + 2) == Some(&b':')).then_some(())?;
    digits(b, i + 3, 2).filter(|m| *m <= 59)?;
    (b.get(i + 5) == Some(&b':')).then_some(())?;
    digits(b, i + 6, 2).filter(|s| *s <= 60)?;
    let mut end = i + 8;
    if b.get(end) == Some(&b'.') {
        let fraction = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return None;
        }
        end += 1 + fraction;
    }
    Some(end)
}

/// Whether `b[i..]` is exactly a zone: `Z` or `(+|-)hh:mm` (up to 14:00).
fn zone(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(b'Z') => b.len() == i + 1,
        Some(b'+' | b'-') => {
            let (Some(h), Some(m)) = (digits(b, i + 1, 2), digits(b, i + 4, 2)) else {
                return false;
            };
            b.get(i + 3) == Some(&b':') && b.len() == i + 6 && m <= 59 && (h <= 13 || (h == 14 && m == 0))
        }
        _ => false,
    }
}

/// `date` or `date` `T` time zone (seconds and zone required once a time is given).
fn date_time(b: &[u8]) -> bool {
    match date(b) {
        Some((end, _)) if end == b.len() => true,
        Some((end, true)) if b.get(end) == Some(&b'T') => time(b, end + 1).is_some_and(|t| zone(b, t)),
        _ => false,
    }
}

/// A full date, time with seconds and a zone.
fn instant(b: &[u8]) -> bool {
    match date(b) {
        Some((end, true)) if b.get(end) == Some(&b'T') => time(b, end + 1).is_some_and(|t| zone(b, t)),
        _ => false,
    }
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
fn oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut arcs = rest.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut count = 0;
    let rest_ok = arcs.all(|arc| {
        count += 1;
        !arc.is_empty() && arc.bytes().all(|c| c.is_ascii_digit()) && (arc == "0" || !arc.starts_with('0'))
    });
    first_ok && rest_ok && count > 0
}

/// `urn:uuid:` followed by a lower-case 8-4-4-4-12 hex UUID.
fn uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = rest.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn examples_dir() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-r4-examples")
    }

    fn expressions(resource: &Value) -> Vec<String> {
        validate_resource(resource).into_iter().flat_map(|issue| issue.expression).collect()
    }

    #[test]
    fn every_official_example_is_valid() {
        let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
            .expect("examples directory exists")
            .map(|e| e.expect("readable entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        entries.sort();
        assert!(entries.len() >= 590, "expected the 590 official examples, found {}", entries.len());
        let mut failures = Vec::new();
        for path in &entries {
            let text = std::fs::read_to_string(path).expect("readable example");
            let resource: Value = serde_json::from_str(&text).expect("example is JSON");
            for issue in validate_resource(&resource) {
                failures.push(format!(
                    "{}: {:?} {} at {:?}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    issue.code,
                    issue.diagnostics,
                    issue.expression
                ));
            }
        }
        assert!(failures.is_empty(), "{} issues in official examples:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn refuses_invalid_content_at_the_right_place() {
        let cases: Vec<(&str, Value, &str, IssueType)> = vec![
            ("unknown element", json!({"resourceType": "Patient", "foo": 1}), "Patient.foo", IssueType::Structure),
            (
                "invalid date",
                json!({"resourceType": "Patient", "birthDate": "1971-13-45"}),
                "Patient.birthDate",
                IssueType::Value,
            ),
            (
                "date as number",
                json!({"resourceType": "Patient", "birthDate": 19710314}),
                "Patient.birthDate",
                IssueType::Value,
            ),
            (
                "boolean as string",
                json!({"resourceType": "Patient", "active": "yes"}),
                "Patient.active",
                IssueType::Value,
            ),
            (
                "unknown choice type",
                json!({"resourceType": "Patient", "deceasedFoo": true}),
                "Patient.deceasedFoo",
                IssueType::Structure,
            ),
            (
                "empty string",
                json!({"resourceType": "Patient", "name": [{"family": ""}]}),
                "Patient.name[0].family",
                IssueType::Value,
            ),
            (
                "decimal as string",
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": "12"}}),
                "Observation.valueQuantity.value",
                IssueType::Value,
            ),
            (
                "instant without zone",
                json!({"resourceType": "Patient", "meta": {"lastUpdated": "2020-01-01T10:00:00"}}),
                "Patient.meta.lastUpdated",
                IssueType::Value,
            ),
            (
                "contained resource of unknown type",
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Foo", "id": "a"}]}),
                "Patient.contained[0]",
                IssueType::Structure,
            ),
            (
                "fractional integer",
                json!({"resourceType": "Patient", "multipleBirthInteger": 1.5}),
                "Patient.multipleBirthInteger",
                IssueType::Value,
            ),
            (
                "unknown element in a bundled resource",
                json!({"resourceType": "Bundle", "type": "collection", "entry": [
                    {"fullUrl": "urn:uuid:0b5d5b3c-6b1a-4c36-9c4e-0d3f1d3c9a10",
                     "resource": {"resourceType": "Patient", "name": [{"given": ["A"], "nickname": "x"}]}}
                ]}),
                "Bundle.entry[0].resource.name[0].nickname",
                IssueType::Structure,
            ),
            ("bad resource id", json!({"resourceType": "Patient", "id": "a b"}), "Patient.id", IssueType::Value),
            (
                "code with trailing space",
                json!({"resourceType": "Patient", "multipleBirthInteger": 1, "contact": [{"gender": "male ", "name": {"family": "x"}}]}),
                "Patient.contact[0].gender",
                IssueType::Value,
            ),
            (
                "second given name wrong kind",
                json!({"resourceType": "Patient", "name": [{"family": "a"}, {"given": ["A", 3]}]}),
                "Patient.name[1].given[1]",
                IssueType::Value,
            ),
            (
                "complex as string",
                json!({"resourceType": "Patient", "maritalStatus": "M"}),
                "Patient.maritalStatus",
                IssueType::Structure,
            ),
            (
                "nested arrays",
                json!({"resourceType": "Patient", "name": [[{"family": "a"}]]}),
                "Patient.name[0]",
                IssueType::Structure,
            ),
            (
                "null in complex array",
                json!({"resourceType": "Patient", "name": [null]}),
                "Patient.name[0]",
                IssueType::Structure,
            ),
            (
                "extension value of wrong kind",
                json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/x", "valueBoolean": "true"}]}),
                "Patient.extension[0].valueBoolean",
                IssueType::Value,
            ),
            (
                "primitive extension on a complex element",
                json!({"resourceType": "Patient", "_name": {"extension": []}}),
                "Patient._name",
                IssueType::Structure,
            ),
            (
                "primitive extension with a value",
                json!({"resourceType": "Patient", "_birthDate": {"value": "x"}}),
                "Patient.birthDate.value",
                IssueType::Structure,
            ),
            (
                "misaligned primitive extension array",
                json!({"resourceType": "Patient", "name": [{"given": ["A", "B"], "_given": [null]}]}),
                "Patient.name[0].given",
                IssueType::Structure,
            ),
            (
                "unknown element in a content reference",
                json!({"resourceType": "Questionnaire", "status": "draft",
                       "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string", "bogus": true}]}]}),
                "Questionnaire.item[0].item[0].bogus",
                IssueType::Structure,
            ),
            (
                "unsignedInt negative",
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueSampledData": {"origin": {"value": 1}, "period": 1, "dimensions": -1, "data": "1 2"}}),
                "Observation.valueSampledData.dimensions",
                IssueType::Value,
            ),
            (
                "dateTime hour without seconds",
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "effectiveDateTime": "2020-01-01T10:00Z"}),
                "Observation.effectiveDateTime",
                IssueType::Value,
            ),
            (
                "time without seconds",
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueTime": "10:00"}),
                "Observation.valueTime",
                IssueType::Value,
            ),
            (
                "choice element repeated",
                json!({"resourceType": "Patient", "deceasedBoolean": [true]}),
                "Patient.deceasedBoolean",
                IssueType::Structure,
            ),
            (
                "wrong resource in typed slot",
                json!({"resourceType": "Bundle", "type": "batch-response",
                "entry": [{"response": {"status": "200", "outcome": {"resourceType": "Patient"}}}]}),
                "Bundle.entry[0].response.outcome",
                IssueType::Structure,
            ),
        ];
        for (what, resource, expected, kind) in cases {
            let issues = validate_resource(&resource);
            assert_eq!(issues.len(), 1, "{what}: expected exactly one issue, got {issues:?}");
            assert_eq!(issues[0].expression, [expected], "{what}: {issues:?}");
            assert_eq!(issues[0].code, kind, "{what}: {issues:?}");
            assert_eq!(issues[0].severity, crate::outcome::IssueSeverity::Error, "{what}");
        }
    }

    #[test]
    fn messages_say_what_was_wrong() {
        let issues = validate_resource(&json!({"resourceType": "Patient", "birthDate": "1971-13-45", "foo": 1}));
        let messages: Vec<&str> = issues.iter().map(|i| i.diagnostics.as_str()).collect();
        assert_eq!(messages, ["'1971-13-45' is not a valid date", "unknown element 'foo'"]);
    }

    #[test]
    fn reports_every_problem_up_to_the_cap() {
        let mut patient = json!({"resourceType": "Patient", "active": 1, "gender": 2});
        assert_eq!(expressions(&patient), ["Patient.active", "Patient.gender"]);
        let many: Vec<Value> = (0..300).map(|i| json!(i)).collect();
        patient["name"] = json!([{"given": many}]);
        let issues = validate_resource(&patient);
        assert_eq!(issues.len(), MAX_ISSUES);
        assert_eq!(issues[2].expression, ["Patient.name[0].given[0]"]);
    }

    #[test]
    fn accepts_valid_edge_cases() {
        let valid = [
            // Primitive extensions, alone and next to a value; aligned arrays with nulls.
            json!({"resourceType": "Patient", "id": "p-1.a",
                "birthDate": "1974-12-25",
                "_birthDate": {"id": "bd", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                    "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
                "_gender": {"extension": [{"url": "http://example.org/g", "valueCode": "x"}]},
                "name": [{"given": ["Peter", null], "_given": [null, {"extension": [{"url": "http://example.org/n", "valueString": "J"}]}]}],
                "multipleBirthInteger": 2,
                "deceasedBoolean": false}),
            // Choice types of many kinds, contained resources, meta with tags.
            json!({"resourceType": "Observation", "status": "final",
            "meta": {"versionId": "1", "lastUpdated": "2020-02-29T23:59:60.123+14:00",
                "tag": [{"system": "http://example.org/tags", "code": "a tag"}],
                "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}],
                "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "contained": [{"resourceType": "Practitioner", "id": "pr", "name": [{"family": "Who"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "performer": [{"reference": "#pr"}],
            "effectivePeriod": {"start": "2020", "end": "2020-03"},
            "valueQuantity": {"value": 1.5e2, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "component": [
                {"code": {"text": "a"}, "valueCodeableConcept": {"text": "b"}},
                {"code": {"text": "c"}, "valueInteger": -3},
                {"code": {"text": "d"}, "valueTime": "23:59:59.5"},
                {"code": {"text": "e"}, "valueString": "  padded strings are fine  "}
            ]}),
            // Extensions with nested extensions and complex values; modifierExtension on a backbone.
            json!({"resourceType": "Patient",
                "extension": [{"url": "http://example.org/complex", "extension": [
                    {"url": "a", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}},
                    {"url": "b", "valueReference": {"reference": "Patient/1"}},
                    {"url": "c", "valueUuid": "urn:uuid:0b5d5b3c-6b1a-4c36-9c4e-0d3f1d3c9a10"},
                    {"url": "d", "valueBase64Binary": "aGVsbG8gd29ybGQ="}]}],
                "contact": [{"id": "c1", "modifierExtension": [{"url": "http://example.org/m", "valueBoolean": true}],
                    "relationship": [{"text": "friend"}], "fhir_comments": ["tolerated"]}]}),
            // Nested resources in a Bundle and in Parameters.
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:0b5d5b3c-6b1a-4c36-9c4e-0d3f1d3c9a10",
                 "resource": {"resourceType": "Parameters", "parameter": [
                     {"name": "p", "resource": {"resourceType": "Patient", "active": true}},
                     {"name": "q", "part": [{"name": "r", "valueDate": "2021-02"}]}]},
                 "request": {"method": "POST", "url": "Parameters"}}]}),
        ];
        for resource in &valid {
            assert_eq!(validate_resource(resource), Vec::new(), "{resource}");
        }
    }

    #[test]
    fn lexical_forms_follow_the_r4_regexes() {
        for ok in ["2020", "2020-02", "2020-02-29", "2020-02-29T10:00:00Z", "2020-02-29T10:00:00.1234-03:30"] {
            assert!(valid_lexical("dateTime", ok), "{ok}");
        }
        for bad in [
            "20",
            "0000",
            "2021-02-29",
            "2020-1-01",
            "2020-01-01T",
            "2020-01-01T10:00:00",
            "2020-01-01T24:00:00Z",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01T10:00:00.Z",
            "2020-01-01 10:00:00Z",
            "2020-01-01T10:00:00Zx",
        ] {
            assert!(!valid_lexical("dateTime", bad), "{bad}");
        }
        assert!(valid_lexical("instant", "2015-02-07T13:28:17.239+02:00"));
        assert!(!valid_lexical("instant", "2015-02-07"));
        assert!(valid_lexical("date", "2015-02-07"));
        assert!(!valid_lexical("date", "2015-02-07T13:28:17Z"));
        assert!(valid_lexical("id", &"a".repeat(64)));
        assert!(!valid_lexical("id", &"a".repeat(65)));
        assert!(!valid_lexical("id", "a_b"));
        assert!(valid_lexical("code", "a b"));
        assert!(!valid_lexical("code", " a"));
        assert!(!valid_lexical("code", "a  b"));
        assert!(valid_lexical("oid", "urn:oid:1.2.840.10008"));
        assert!(!valid_lexical("oid", "urn:oid:1.02"));
        assert!(!valid_lexical("oid", "1.2.3"));
        assert!(!valid_lexical("uuid", "urn:uuid:0B5D5B3C-6B1A-4C36-9C4E-0D3F1D3C9A10"));
        assert!(!valid_lexical("uri", "http://a b"));
        assert!(!valid_lexical("string", "bell\u{7}"));
        assert_eq!(check_primitive("integer", &json!(2147483648_i64)).map(|i| i.0), Some(IssueType::Value));
        assert_eq!(check_primitive("integer", &json!(-2147483648_i64)), None);
        assert_eq!(check_primitive("positiveInt", &json!(0)).map(|i| i.0), Some(IssueType::Value));
        assert_eq!(check_primitive("unsignedInt", &json!(0)), None);
        assert_eq!(check_primitive("decimal", &json!("1.0")).map(|i| i.0), Some(IssueType::Value));
    }

    #[test]
    fn rejects_what_is_not_a_known_resource() {
        assert_eq!(validate_resource(&json!([1])).len(), 1);
        assert_eq!(validate_resource(&json!({"resourceType": "Nope"}))[0].diagnostics, "unknown resource type 'Nope'");
        assert_eq!(validate_resource(&json!({"id": "x"})).len(), 1);
    }

    /// Every object of `value`: the FHIRPath expression it is reported at and its JSON pointer.
    fn objects(value: &Value, at: String, pointer: String, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = key.strip_prefix('_').unwrap_or(key);
                    objects(child, format!("{at}.{name}"), format!("{pointer}/{key}"), out);
                }
                out.push((at, pointer));
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    objects(item, format!("{at}[{i}]"), format!("{pointer}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn an_unknown_element_is_found_in_every_object_of_the_examples() {
        // Mutation check of the traversal: adding a bogus property to any object of an official
        // example (element, backbone, extension, primitive extension, nested resource) must be
        // reported exactly there, so the example test cannot pass by skipping parts.
        let mut checked = 0;
        for entry in std::fs::read_dir(examples_dir()).expect("examples directory exists") {
            let path = entry.expect("readable entry").path();
            let text = std::fs::read_to_string(&path).expect("readable example");
            let mut resource: Value = serde_json::from_str(&text).expect("example is JSON");
            let root = resource["resourceType"].as_str().unwrap_or_default().to_string();
            let mut found = Vec::new();
            objects(&resource, root, String::new(), &mut found);
            // Up to 40 objects per example, evenly spread, keep the debug-build run short.
            for (at, pointer) in found.iter().step_by(found.len().div_ceil(40)) {
                let object =
                    resource.pointer_mut(pointer).and_then(Value::as_object_mut).expect("object from the walk");
                object.insert("zzBogus".to_string(), json!(true));
                let issues = validate_resource(&resource);
                assert_eq!(issues.len(), 1, "{}: {at}: {issues:?}", path.display());
                assert_eq!(issues[0].expression, [format!("{at}.zzBogus")], "{}", path.display());
                assert_eq!(issues[0].diagnostics, "unknown element 'zzBogus'");
                let object =
                    resource.pointer_mut(pointer).and_then(Value::as_object_mut).expect("object from the walk");
                object.shift_remove("zzBogus");
                checked += 1;
            }
        }
        assert!(checked > 5_000, "only {checked} objects checked");
    }
}
