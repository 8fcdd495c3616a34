//! Small builders for FHIR R4 datatypes (Coding, CodeableConcept, Reference, Period, ContactPoint).

use serde_json::{json, Value};

/// Base of every carecircle-defined canonical URL.
pub const CC_BASE: &str = "https://carecircle.example.org/fhir";

/// A `Coding`.
pub fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// A `CodeableConcept` with one coding and the display as text.
pub fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [coding(system, code, display)], "text": display })
}

/// A `CodeableConcept` in one of carecircle's own CodeSystems (`<base>/CodeSystem/<name>`).
pub fn cc_concept(code_system: &str, code: &str, display: &str) -> Value {
    concept(&format!("{CC_BASE}/CodeSystem/{code_system}"), code, display)
}

/// A relative `Reference` (`Type/id`).
pub fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}") })
}

/// A relative `Reference` with a display string.
pub fn reference_display(resource_type: &str, id: &str, display: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}"), "display": display })
}

/// A `Period`; `end` is left out when `None`.
pub fn period(start: &str, end: Option<&str>) -> Value {
    match end {
        Some(end) => json!({ "start": start, "end": end }),
        None => json!({ "start": start }),
    }
}

/// A phone `ContactPoint`.
pub fn phone(value: &str, use_: &str) -> Value {
    json!({ "system": "phone", "value": value, "use": use_ })
}

/// An email `ContactPoint`.
pub fn email(value: &str) -> Value {
    json!({ "system": "email", "value": value, "use": "work" })
}
