//! Search-index extraction: the values of every search parameter of a resource, found by
//! evaluating the official R4 SearchParameter FHIRPath expressions.

use serde_json::Value;

use crate::date::DateRange;

/// One indexed value of one search parameter of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The search parameter's code (`family`, `identifier`, `_tag`).
    pub param: String,
    /// The value, in the form its parameter type is searched by.
    pub value: IndexValue,
}

/// An indexed value, by search parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// `string` parameters: every string part of a string, HumanName or Address.
    String {
        /// [`crate::text::normalize_for_search`] of the text, matched by prefix.
        normalized: String,
        /// The text as written, for `:exact`.
        exact: String,
    },
    /// `token` parameters: codes, Codings, CodeableConcepts, Identifiers, ContactPoints, booleans.
    Token {
        /// The code system (Coding.system, Identifier.system); `None` for plain codes, booleans
        /// and ContactPoints.
        system: Option<String>,
        /// The code (Coding.code, Identifier.value, ContactPoint.value, "true"/"false").
        code: String,
    },
    /// `reference` parameters.
    Reference {
        /// The referenced resource type when the reference is `Type/id` or an absolute URL
        /// ending in `Type/id` (optionally `/_history/n`).
        target_type: Option<String>,
        /// The referenced id, with the same rule.
        target_id: Option<String>,
        /// The reference (or canonical) exactly as written.
        url: String,
    },
    /// `date` parameters: date, dateTime, instant, Period, Timing events.
    Date(DateRange),
    /// `number` parameters.
    Number(f64),
    /// `quantity` parameters.
    Quantity {
        /// The numeric value.
        value: f64,
        /// Quantity.system.
        system: Option<String>,
        /// Quantity.code, or when absent Quantity.unit.
        code: Option<String>,
    },
    /// `uri` parameters: uri, url, canonical (without any `|version` suffix kept separately).
    Uri(String),
}

/// Every index entry of `resource` for the official search parameters of its type, in a stable
/// order. Parameters of type composite and special are not indexed. A resource that is not a JSON
/// object with a known `resourceType` yields no entries.
pub fn extract_index(resource: &Value) -> Vec<IndexEntry> {
    crate::fhirpath::extract(resource)
}
