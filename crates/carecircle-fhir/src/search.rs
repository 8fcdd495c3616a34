//! Parsing a FHIR search (`GET [type]?name=value&...`) into a [`SearchQuery`] the storage layer
//! can run, with precise errors for what it cannot understand.
//!
//! Semantics follow FHIR R4 §3.1.1 (search): parameters are ANDed, comma-separated values are
//! ORed, prefixes `eq ne gt lt ge le sa eb ap` apply to dates, numbers and quantities, and dates
//! are ranges matched by their precision.

use crate::date::{parse_date_range, DateRange};
use crate::definitions::{definitions, SearchParamType};
use crate::outcome::{Issue, IssueType};
use crate::text::normalize_for_search;

/// The default page size when `_count` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page size served; larger `_count` values are reduced to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A comparison prefix for ordered values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Equal: the value's range lies within the parameter's range.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
    /// Greater than or equal.
    Ge,
    /// Less than or equal.
    Le,
    /// Starts after the parameter's range.
    Sa,
    /// Ends before the parameter's range.
    Eb,
    /// Approximately (ranges overlap, widened by 10% for numbers).
    Ap,
}

/// How a token's system part was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// How a string is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Default: the normalised value starts with the normalised text.
    Prefix(String),
    /// `:exact`: equal, case and accents included.
    Exact(String),
    /// `:contains`: the normalised value contains the normalised text.
    Contains(String),
}

/// How a uri is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    /// Equal.
    Exact,
    /// `:below`: the value starts with the parameter.
    Below,
    /// `:above`: the parameter starts with the value.
    Above,
}

/// One condition on one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `:missing=true|false`: whether the parameter has no indexed value.
    Missing(bool),
    /// `_id`.
    Id(String),
    /// `_lastUpdated`.
    LastUpdated(Prefix, DateRange),
    /// `_source`: the custodian organisation (`Organization/{id}`) that supplied the resource.
    Custodian(String),
    /// A string parameter.
    String(StringMatch),
    /// A token parameter.
    Token {
        /// The system part.
        system: TokenSystem,
        /// The code part; `None` for `system|`.
        code: Option<String>,
    },
    /// A reference parameter.
    Reference {
        /// The target type, when given (`Patient/123`, `:Patient`).
        target_type: Option<String>,
        /// The target id, when the value is a relative reference or a plain id.
        target_id: Option<String>,
        /// The value as an absolute or canonical URL, when it is one.
        url: Option<String>,
    },
    /// A date parameter.
    Date(Prefix, DateRange),
    /// A number parameter: the prefix, and the value's implied precision range `[low, high)`.
    Number(Prefix, f64, f64),
    /// A quantity parameter: prefix, precision range `[low, high)`, optional system and code.
    Quantity {
        /// The comparison.
        prefix: Prefix,
        /// Lower bound of the value's implied precision.
        low: f64,
        /// Upper bound (exclusive) of the value's implied precision.
        high: f64,
        /// Quantity.system, when given.
        system: Option<String>,
        /// Quantity.code (or unit), when given.
        code: Option<String>,
    },
    /// A uri parameter.
    Uri(UriMatch, String),
}

/// One parameter of the query: its conditions are ORed; `negated` (`:not`) inverts the whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The parameter code.
    pub param: String,
    /// The parameter's type.
    pub kind: SearchParamType,
    /// True for `:not`: the resource matches when no value matches any condition.
    pub negated: bool,
    /// The alternatives (comma-separated values).
    pub any_of: Vec<Condition>,
}

/// What to sort by.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The parameter code (`_id`, `_lastUpdated` or a search parameter).
    pub param: String,
    /// The parameter's type.
    pub kind: SearchParamType,
    /// Descending when the code was prefixed with `-`.
    pub descending: bool,
}

/// An `_include` or `_revinclude` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type holding the reference.
    pub source_type: String,
    /// The reference parameter, or `*` for all of them.
    pub param: String,
    /// Only references to this type, when given.
    pub target_type: Option<String>,
}

/// `_summary` values the server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// `_summary=count`: only the total.
    Count,
    /// `_summary=text`: text, id, meta and mandatory top-level elements.
    Text,
    /// `_summary=data`: everything but the narrative.
    Data,
    /// `_summary=false`: everything.
    False,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The resource type searched; `None` for a search across all types.
    pub resource_type: Option<String>,
    /// Conditions, ANDed.
    pub filters: Vec<Filter>,
    /// Sort order; empty means by `_lastUpdated` descending then id.
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: usize,
    /// Index of the first result of the page.
    pub offset: usize,
    /// `_summary` mode, when given.
    pub summary: Option<Summary>,
    /// `_elements`: top-level elements to keep, when given.
    pub elements: Option<Vec<String>>,
    /// `_include`s.
    pub includes: Vec<Include>,
    /// `_revinclude`s.
    pub revincludes: Vec<Include>,
    /// Parameters that were ignored (lenient handling), as warnings for the response.
    pub warnings: Vec<Issue>,
}

impl SearchQuery {
    /// A query matching every resource of `resource_type` (or every resource when `None`).
    pub fn all(resource_type: Option<&str>) -> SearchQuery {
        SearchQuery {
            resource_type: resource_type.map(str::to_string),
            filters: Vec::new(),
            sort: Vec::new(),
            count: DEFAULT_PAGE_SIZE,
            offset: 0,
            summary: None,
            elements: None,
            includes: Vec::new(),
            revincludes: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// How to treat parameters the server does not know or support (`Prefer: handling=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Refuse the search.
    Strict,
    /// Ignore the parameter and say so in the response.
    Lenient,
}

/// Parameters that shape the result rather than filter it; never treated as unknown.
const IGNORED_RESULT_PARAMS: &[&str] = &["_format", "_pretty"];

/// Parses the query parameters of a search on `resource_type` (or of a system search).
/// Unknown or unsupported parameters are refused or ignored per `handling`; invalid values are
/// always refused.
pub fn parse_search(
    resource_type: Option<&str>,
    params: &[(String, String)],
    handling: Handling,
) -> Result<SearchQuery, Vec<Issue>> {
    let mut query = SearchQuery::all(resource_type);
    let mut errors = Vec::new();
    let unknown = |query: &mut SearchQuery, errors: &mut Vec<Issue>, issue: Issue| match handling {
        Handling::Strict => errors.push(issue),
        Handling::Lenient => query.warnings.push(Issue {
            severity: crate::outcome::IssueSeverity::Warning,
            diagnostics: format!("{} (ignored: Prefer handling=lenient)", issue.diagnostics),
            ..issue
        }),
    };

    for (raw_name, raw_value) in params {
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        let result = match name {
            "_count" => parse_usize(raw_name, raw_value).map(|n| query.count = n.clamp(0, MAX_PAGE_SIZE)),
            "_offset" => parse_usize(raw_name, raw_value).map(|n| query.offset = n),
            "_sort" => parse_sort(resource_type, raw_value).map(|s| query.sort = s),
            "_summary" => parse_summary(raw_value).map(|summary| query.summary = Some(summary)),
            "_elements" => {
                query.elements =
                    Some(raw_value.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect());
                Ok(())
            }
            "_total" => Ok(()),
            "_include" | "_revinclude" => {
                // `:iterate` is refused rather than silently done one level deep.
                if modifier.is_some() {
                    Err(Issue::error(IssueType::NotSupported, format!("{raw_name} is not supported"))
                        .at(raw_name.clone()))
                } else {
                    parse_include(raw_value).map(|inc| {
                        if name == "_include" {
                            query.includes.push(inc)
                        } else {
                            query.revincludes.push(inc)
                        }
                    })
                }
            }
            n if IGNORED_RESULT_PARAMS.contains(&n) => Ok(()),
            _ => match parse_filter(resource_type, raw_name, name, modifier, raw_value) {
                Ok(filter) => {
                    query.filters.push(filter);
                    Ok(())
                }
                Err(FilterError::Unknown(issue)) => {
                    unknown(&mut query, &mut errors, issue);
                    Ok(())
                }
                Err(FilterError::Invalid(issue)) => Err(issue),
            },
        };
        if let Err(issue) = result {
            errors.push(issue);
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors)
    }
}

enum FilterError {
    /// The parameter or modifier is unknown or unsupported: refused or ignored per handling.
    Unknown(Issue),
    /// The value is invalid: always refused.
    Invalid(Issue),
}

fn parse_summary(value: &str) -> Result<Summary, Issue> {
    match value {
        "count" => Ok(Summary::Count),
        "text" => Ok(Summary::Text),
        "data" => Ok(Summary::Data),
        "false" => Ok(Summary::False),
        "true" => {
            Err(Issue::error(IssueType::NotSupported, "_summary=true is not supported; use _elements").at("_summary"))
        }
        other => Err(Issue::error(IssueType::Value, format!("'{other}' is not a valid _summary value")).at("_summary")),
    }
}

fn parse_usize(name: &str, value: &str) -> Result<usize, Issue> {
    value.parse().map_err(|_| {
        Issue::error(IssueType::Value, format!("{name} must be a non-negative integer, not '{value}'")).at(name)
    })
}

fn param_kind(resource_type: Option<&str>, code: &str) -> Option<SearchParamType> {
    match code {
        "_id" => Some(SearchParamType::Token),
        "_lastUpdated" => Some(SearchParamType::Date),
        "_source" => Some(SearchParamType::Uri),
        _ => match resource_type {
            Some(t) => definitions().search_param(t, code).map(|p| p.kind),
            // A system search knows only the parameters common to every resource.
            None => definitions()
                .search_param("Patient", code)
                .filter(|p| p.base.iter().any(|b| b == "Resource"))
                .map(|p| p.kind),
        },
    }
}

fn parse_sort(resource_type: Option<&str>, value: &str) -> Result<Vec<SortKey>, Issue> {
    let mut keys = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (descending, code) = match part.strip_prefix('-') {
            Some(code) => (true, code),
            None => (false, part),
        };
        let kind = param_kind(resource_type, code)
            .filter(|k| {
                !matches!(k, SearchParamType::Composite | SearchParamType::Special | SearchParamType::Reference)
            })
            .ok_or_else(|| Issue::error(IssueType::NotSupported, format!("cannot sort by '{code}'")).at("_sort"))?;
        keys.push(SortKey { param: code.to_string(), kind, descending });
    }
    Ok(keys)
}

fn parse_include(value: &str) -> Result<Include, Issue> {
    let mut parts = value.split(':');
    let source_type = parts.next().unwrap_or_default();
    let param = parts.next();
    let target_type = parts.next();
    let defs = definitions();
    let error = |msg: String| Err(Issue::error(IssueType::Value, msg).at("_include"));
    if source_type == "*" && param.is_none() {
        return Ok(Include { source_type: "*".into(), param: "*".into(), target_type: None });
    }
    if !defs.is_resource_type(source_type) {
        return error(format!("'{value}': '{source_type}' is not a resource type"));
    }
    let Some(param) = param else {
        return error(format!("'{value}' must be of the form Type:param[:TargetType]"));
    };
    if param != "*" {
        match defs.search_param(source_type, param) {
            Some(p) if p.kind == SearchParamType::Reference => {}
            _ => return error(format!("'{value}': '{param}' is not a reference parameter of {source_type}")),
        }
    }
    if let Some(t) = target_type {
        if !defs.is_resource_type(t) {
            return error(format!("'{value}': '{t}' is not a resource type"));
        }
    }
    Ok(Include {
        source_type: source_type.to_string(),
        param: param.to_string(),
        target_type: target_type.map(str::to_string),
    })
}

/// Splits on an unescaped `separator`, removing FHIR's backslash escapes (`\,` `\|` `\$` `\\`).
fn split_escaped(value: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) if next == separator => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            }
        } else if c == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_filter(
    resource_type: Option<&str>,
    raw_name: &str,
    name: &str,
    modifier: Option<&str>,
    raw_value: &str,
) -> Result<Filter, FilterError> {
    let location = raw_name.to_string();
    let unknown = |msg: String| FilterError::Unknown(Issue::error(IssueType::NotSupported, msg).at(location.clone()));
    let invalid = |msg: String| FilterError::Invalid(Issue::error(IssueType::Value, msg).at(location.clone()));

    if name.contains('.') || name == "_has" {
        return Err(unknown(format!("chained and reverse-chained search ('{raw_name}') is not supported")));
    }
    let kind = match param_kind(resource_type, name) {
        Some(kind) => kind,
        None => {
            let scope = resource_type.unwrap_or("a search across all types");
            return Err(FilterError::Unknown(
                Issue::error(IssueType::NotFound, format!("unknown search parameter '{name}' for {scope}"))
                    .at(location.clone()),
            ));
        }
    };
    if !kind.is_supported() || matches!(name, "_text" | "_content" | "_query" | "_list" | "_filter") {
        return Err(unknown(format!("search parameter '{name}' ({}) is not supported", kind.code())));
    }

    if modifier == Some("missing") {
        return match raw_value.as_str_bool() {
            Some(missing) => {
                Ok(Filter { param: name.to_string(), kind, negated: false, any_of: vec![Condition::Missing(missing)] })
            }
            None => Err(invalid(format!("{raw_name} must be true or false, not '{raw_value}'"))),
        };
    }

    let negated = modifier == Some("not");
    let allowed: &[&str] = match kind {
        SearchParamType::String => &["exact", "contains"],
        SearchParamType::Token => &["not"],
        SearchParamType::Uri => &["below", "above"],
        _ => &[],
    };
    let type_modifier = match (kind, modifier) {
        (SearchParamType::Reference, Some(m)) if definitions().is_resource_type(m) => Some(m),
        _ => None,
    };
    if let Some(m) = modifier {
        if !allowed.contains(&m) && type_modifier.is_none() {
            return Err(unknown(format!("modifier ':{m}' is not supported on {} parameter '{name}'", kind.code())));
        }
    }

    let mut any_of = Vec::new();
    for value in split_escaped(raw_value, ',') {
        if value.is_empty() {
            continue;
        }
        let condition = match (name, kind) {
            ("_id", _) => Condition::Id(unescape(&value)),
            ("_lastUpdated", _) => {
                let (prefix, rest) = split_prefix(&value);
                Condition::LastUpdated(prefix, parse_date_range(rest).map_err(|e| invalid(e.to_string()))?)
            }
            ("_source", _) => Condition::Custodian(unescape(&value)),
            (_, SearchParamType::String) => {
                let text = unescape(&value);
                match modifier {
                    Some("exact") => Condition::String(StringMatch::Exact(text)),
                    Some("contains") => Condition::String(StringMatch::Contains(normalize_for_search(&text))),
                    _ => Condition::String(StringMatch::Prefix(normalize_for_search(&text))),
                }
            }
            (_, SearchParamType::Token) => {
                let parts = split_escaped(&value, '|');
                match parts.as_slice() {
                    [code] => Condition::Token { system: TokenSystem::Any, code: Some(code.clone()) },
                    [system, code] if system.is_empty() && code.is_empty() => {
                        return Err(invalid(format!("'{value}' is not a valid token: '|' alone")))
                    }
                    [system, code] if system.is_empty() => {
                        Condition::Token { system: TokenSystem::None, code: Some(code.clone()) }
                    }
                    [system, code] if code.is_empty() => {
                        Condition::Token { system: TokenSystem::Is(system.clone()), code: None }
                    }
                    [system, code] => {
                        Condition::Token { system: TokenSystem::Is(system.clone()), code: Some(code.clone()) }
                    }
                    _ => {
                        return Err(invalid(format!(
                            "'{value}' is not a valid token: expected code, system|code, |code or system|"
                        )))
                    }
                }
            }
            (_, SearchParamType::Reference) => parse_reference(&unescape(&value), type_modifier).map_err(invalid)?,
            (_, SearchParamType::Date) => {
                let (prefix, rest) = split_prefix(&value);
                Condition::Date(prefix, parse_date_range(rest).map_err(|e| invalid(e.to_string()))?)
            }
            (_, SearchParamType::Number) => {
                let (prefix, rest) = split_prefix(&value);
                let (low, high) = precision_range(rest).ok_or_else(|| invalid(format!("'{rest}' is not a number")))?;
                Condition::Number(prefix, low, high)
            }
            (_, SearchParamType::Quantity) => {
                let (prefix, rest) = split_prefix(&value);
                let parts = split_escaped(rest, '|');
                let (number, system, code) = match parts.as_slice() {
                    [n] => (n.as_str(), None, None),
                    [n, s, c] => (
                        n.as_str(),
                        Some(s.clone()).filter(|s| !s.is_empty()),
                        Some(c.clone()).filter(|c| !c.is_empty()),
                    ),
                    _ => {
                        return Err(invalid(format!(
                            "'{value}' is not a valid quantity: expected [prefix]number[|system|code]"
                        )))
                    }
                };
                let (low, high) =
                    precision_range(number).ok_or_else(|| invalid(format!("'{number}' is not a number")))?;
                Condition::Quantity { prefix, low, high, system, code }
            }
            (_, SearchParamType::Uri) => {
                let mode = match modifier {
                    Some("below") => UriMatch::Below,
                    Some("above") => UriMatch::Above,
                    _ => UriMatch::Exact,
                };
                Condition::Uri(mode, unescape(&value))
            }
            (_, SearchParamType::Composite | SearchParamType::Special) => unreachable_kind(kind),
        };
        any_of.push(condition);
    }
    if any_of.is_empty() {
        return Err(invalid(format!("search parameter '{raw_name}' has no value")));
    }
    Ok(Filter { param: name.to_string(), kind, negated, any_of })
}

/// Composite and special parameters are refused before values are parsed; this keeps the match
/// exhaustive without a panic path.
fn unreachable_kind(kind: SearchParamType) -> Condition {
    Condition::Uri(UriMatch::Exact, format!("unsupported:{}", kind.code()))
}

trait StrBool {
    fn as_str_bool(&self) -> Option<bool>;
}

impl StrBool for str {
    fn as_str_bool(&self) -> Option<bool> {
        match self {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

fn parse_reference(value: &str, type_modifier: Option<&str>) -> Result<Condition, String> {
    let defs = definitions();
    if value.contains("://") || value.starts_with("urn:") {
        // An absolute URL: match it as written, and by Type/id when it ends in one.
        let segments: Vec<&str> = value.trim_end_matches('/').rsplit('/').collect();
        let (target_type, target_id) = match segments.as_slice() {
            [id, ty, ..] if defs.is_resource_type(ty) => (Some(ty.to_string()), Some(id.to_string())),
            _ => (None, None),
        };
        return Ok(Condition::Reference { target_type, target_id, url: Some(value.to_string()) });
    }
    let (target_type, target_id) = match value.split_once('/') {
        Some((ty, rest)) => {
            if !defs.is_resource_type(ty) {
                return Err(format!("'{value}' is not a valid reference: '{ty}' is not a resource type"));
            }
            let id = rest.split('/').next().unwrap_or_default();
            (Some(ty.to_string()), id.to_string())
        }
        None => (type_modifier.map(str::to_string), value.to_string()),
    };
    if !is_valid_id(&target_id) {
        return Err(format!("'{value}' is not a valid reference: '{target_id}' is not a valid id"));
    }
    Ok(Condition::Reference { target_type, target_id: Some(target_id), url: None })
}

/// Whether `id` is a valid FHIR resource id: 1–64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn split_prefix(value: &str) -> (Prefix, &str) {
    let prefix = match value.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, value),
    };
    (prefix, &value[2..])
}

/// The range `[low, high)` a decimal stands for given its written precision: "100" is
/// [99.5, 100.5), "1.50" is [1.495, 1.505). Exponent forms keep the precision of the mantissa.
fn precision_range(text: &str) -> Option<(f64, f64)> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    let half_step = 0.5 * 10f64.powi(exponent - decimals);
    Some((value - half_step, value + half_step))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(resource_type: &str, pairs: &[(&str, &str)]) -> Result<SearchQuery, Vec<Issue>> {
        parse_search(Some(resource_type), &params(pairs), Handling::Strict)
    }

    #[test]
    fn parses_each_parameter_type() {
        let q = parse(
            "Patient",
            &[
                ("family", "Smyth"),
                ("birthdate", "ge1971-03"),
                ("identifier", "https://fhir.nhs.uk/Id/nhs-number|9434765919"),
                ("organization", "Organization/gp-1"),
            ],
        )
        .unwrap();
        assert_eq!(q.filters.len(), 4);
        assert_eq!(q.filters[0].any_of, vec![Condition::String(StringMatch::Prefix("smyth".into()))]);
        assert!(matches!(q.filters[1].any_of[0], Condition::Date(Prefix::Ge, _)));
        assert_eq!(
            q.filters[2].any_of[0],
            Condition::Token {
                system: TokenSystem::Is("https://fhir.nhs.uk/Id/nhs-number".into()),
                code: Some("9434765919".into())
            }
        );
        assert_eq!(
            q.filters[3].any_of[0],
            Condition::Reference {
                target_type: Some("Organization".into()),
                target_id: Some("gp-1".into()),
                url: None
            }
        );
        let q = parse("Observation", &[("value-quantity", "gt5.40|http://unitsofmeasure.org|mmol/L")]).unwrap();
        match &q.filters[0].any_of[0] {
            Condition::Quantity { prefix, low, high, system, code } => {
                assert_eq!(*prefix, Prefix::Gt);
                assert!((low - 5.395).abs() < 1e-9 && (high - 5.405).abs() < 1e-9);
                assert_eq!(system.as_deref(), Some("http://unitsofmeasure.org"));
                assert_eq!(code.as_deref(), Some("mmol/L"));
            }
            other => panic!("expected a quantity, got {other:?}"),
        }
    }

    #[test]
    fn commas_are_alternatives_and_escapes_are_honoured() {
        let q = parse("Patient", &[("family", "smith,jones"), ("identifier", r"a\|b|c\,d")]).unwrap();
        assert_eq!(q.filters[0].any_of.len(), 2);
        assert_eq!(
            q.filters[1].any_of,
            vec![Condition::Token { system: TokenSystem::Is("a|b".into()), code: Some("c,d".into()) }]
        );
    }

    #[test]
    fn refuses_invalid_values_whatever_the_handling() {
        for (name, value) in [
            ("birthdate", "1971-13-01"),
            ("birthdate", "yesterday"),
            ("_count", "-1"),
            ("general-practitioner", "Nonsense/1"),
            ("identifier", "|"),
        ] {
            let errors = parse_search(Some("Patient"), &params(&[(name, value)]), Handling::Lenient).unwrap_err();
            assert_eq!(errors[0].expression, vec![name.to_string()], "{name}={value}");
        }
    }

    #[test]
    fn unknown_parameters_follow_the_handling_preference() {
        let strict = parse("Patient", &[("shoe-size", "9")]).unwrap_err();
        assert_eq!(strict[0].code, IssueType::NotFound);
        let lenient =
            parse_search(Some("Patient"), &params(&[("shoe-size", "9"), ("name", "x")]), Handling::Lenient).unwrap();
        assert_eq!(lenient.filters.len(), 1);
        assert_eq!(lenient.warnings.len(), 1);
        assert!(parse("Patient", &[("name:sounds-like", "x")]).is_err());
        assert!(parse("Patient", &[("general-practitioner.name", "x")]).is_err());
    }

    #[test]
    fn reads_result_parameters() {
        let q = parse(
            "Observation",
            &[
                ("_count", "5000"),
                ("_offset", "40"),
                ("_sort", "-date,_id"),
                ("_include", "Observation:subject:Patient"),
                ("_summary", "count"),
            ],
        )
        .unwrap();
        assert_eq!(q.count, MAX_PAGE_SIZE);
        assert_eq!(q.offset, 40);
        assert_eq!(q.sort.len(), 2);
        assert!(q.sort[0].descending);
        assert_eq!(q.includes[0].target_type.as_deref(), Some("Patient"));
        assert_eq!(q.summary, Some(Summary::Count));
        assert!(parse("Observation", &[("_include", "Observation:status")]).is_err());
    }

    #[test]
    fn number_precision_follows_written_digits() {
        assert_eq!(precision_range("100"), Some((99.5, 100.5)));
        // R4 §3.1.1.5.1: 1e2 is 100 to one significant figure, [50, 150).
        let (low, high) = precision_range("1e2").unwrap();
        assert!((low - 50.0).abs() < 1e-9 && (high - 150.0).abs() < 1e-9);
        assert_eq!(precision_range("abc"), None);
    }
}
