//! Response Bundles: searchset (with paging links, included resources and notes), history and
//! `$everything`, and the `_summary` / `_elements` shaping of returned resources.

use carecircle_fhir::date::format_instant;
use carecircle_fhir::outcome::operation_outcome;
use carecircle_fhir::search::{SearchQuery, Summary};
use carecircle_record::{new_id, SearchResult};
use carecircle_store::{now_millis, HistoryQuery, Page, StoredResource};
use serde_json::{json, Map, Value};

fn encode(params: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

/// A link to `path` with `params`, replacing any `_count`/`_offset` with the given ones.
fn page_link(base: &str, path: &str, params: &[(String, String)], count: usize, offset: usize) -> String {
    let mut kept: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != "_count" && k != "_offset").cloned().collect();
    kept.push(("_count".into(), count.to_string()));
    kept.push(("_offset".into(), offset.to_string()));
    format!("{base}{path}?{}", encode(&kept))
}

fn paging_links(
    base: &str,
    path: &str,
    params: &[(String, String)],
    count: usize,
    offset: usize,
    total: usize,
) -> Vec<Value> {
    let mut links = vec![json!({"relation": "self", "url": page_link(base, path, params, count, offset)})];
    if count > 0 {
        links.push(json!({"relation": "first", "url": page_link(base, path, params, count, 0)}));
        if offset > 0 {
            links.push(json!({"relation": "previous", "url": page_link(base, path, params, count, offset.saturating_sub(count))}));
        }
        if offset + count < total {
            links.push(json!({"relation": "next", "url": page_link(base, path, params, count, offset + count)}));
        }
    }
    links
}

fn bundle(kind: &str, total: Option<usize>, links: Vec<Value>, entries: Vec<Value>) -> Value {
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert("id".into(), json!(new_id()));
    bundle.insert("meta".into(), json!({"lastUpdated": format_instant(now_millis())}));
    bundle.insert("type".into(), json!(kind));
    if let Some(total) = total {
        bundle.insert("total".into(), json!(total));
    }
    bundle.insert("link".into(), Value::Array(links));
    if !entries.is_empty() {
        bundle.insert("entry".into(), Value::Array(entries));
    }
    Value::Object(bundle)
}

/// Applies `_summary=text|data` and `_elements` to a resource (R4 §3.1.1.5.9–10), marking
/// reduced resources with the `SUBSETTED` tag.
fn shape(mut body: Value, query: &SearchQuery) -> Value {
    let Some(object) = body.as_object_mut() else { return body };
    let keep: Option<Vec<String>> = match (query.summary, &query.elements) {
        (Some(Summary::Text), _) => Some(vec!["text".into()]),
        (_, Some(elements)) => Some(elements.clone()),
        _ => None,
    };
    let subsetted = match (query.summary, keep) {
        (Some(Summary::Data), _) => object.remove("text").is_some(),
        (_, Some(keep)) => {
            let before = object.len();
            object.retain(|key, _| {
                matches!(key.as_str(), "resourceType" | "id" | "meta") || keep.iter().any(|k| k == key)
            });
            object.len() < before
        }
        _ => false,
    };
    if subsetted {
        let meta = object.entry("meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let tags = meta.entry("tag").or_insert_with(|| json!([]));
            if let Some(tags) = tags.as_array_mut() {
                tags.push(
                    json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}),
                );
            }
        }
    }
    body
}

fn entry(base: &str, stored: &StoredResource, body: Value, mode: &str) -> Value {
    json!({
        "fullUrl": format!("{base}/{}/{}", stored.resource_type, stored.id),
        "resource": body,
        "search": {"mode": mode}
    })
}

/// The searchset Bundle of a search.
pub fn searchset_bundle(base: &str, path: &str, params: &[(String, String)], result: &SearchResult) -> Value {
    let query = &result.query;
    let mut entries = Vec::new();
    for stored in &result.page.entries {
        if let Some(body) = stored.json() {
            entries.push(entry(base, stored, shape(body, query), "match"));
        }
    }
    for stored in &result.included {
        if let Some(body) = stored.json() {
            entries.push(entry(base, stored, shape(body, query), "include"));
        }
    }
    if !query.warnings.is_empty() {
        entries.push(json!({"resource": operation_outcome(&query.warnings), "search": {"mode": "outcome"}}));
    }
    let links = paging_links(base, path, params, query.count, query.offset, result.page.total);
    bundle("searchset", Some(result.page.total), links, entries)
}

/// The history Bundle of a page of versions.
pub fn history_bundle(base: &str, path: &str, params: &[(String, String)], query: &HistoryQuery, page: &Page) -> Value {
    let entries = page
        .entries
        .iter()
        .map(|stored| {
            let url = format!("{}/{}", stored.resource_type, stored.id);
            let (method, status) = if stored.deleted {
                ("DELETE", "204 No Content")
            } else if stored.version == 1 {
                ("POST", "201 Created")
            } else {
                ("PUT", "200 OK")
            };
            let mut entry = Map::new();
            entry.insert("fullUrl".into(), json!(format!("{base}/{url}")));
            if let Some(body) = stored.json() {
                entry.insert("resource".into(), body);
            }
            entry.insert("request".into(), json!({"method": method, "url": if method == "POST" { stored.resource_type.clone() } else { url }}));
            entry.insert(
                "response".into(),
                json!({"status": status, "etag": format!("W/\"{}\"", stored.version), "lastModified": format_instant(stored.last_updated)}),
            );
            Value::Object(entry)
        })
        .collect();
    bundle(
        "history",
        Some(page.total),
        paging_links(base, path, params, query.count, query.offset, page.total),
        entries,
    )
}

/// The searchset Bundle of `Patient/$everything`.
pub fn everything_bundle(base: &str, path: &str, count: usize, offset: usize, page: &Page) -> Value {
    let entries =
        page.entries.iter().filter_map(|stored| stored.json().map(|body| entry(base, stored, body, "match"))).collect();
    bundle("searchset", Some(page.total), paging_links(base, path, &[], count, offset, page.total), entries)
}

/// A 403 unless the token's scopes allow every entry of a batch or transaction Bundle (each
/// entry's method on the type its URL names). Malformed entries are left to the Bundle processor,
/// which reports them in place.
pub fn require_entry_scopes(
    principal: &carecircle_record::Principal,
    bundle: &Value,
) -> Result<(), crate::error::ApiError> {
    use carecircle_auth::Interaction;
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else { return Ok(()) };
    for entry in entries {
        let method = entry.pointer("/request/method").and_then(Value::as_str).unwrap_or_default();
        let url = entry.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
        let path = url.split('?').next().unwrap_or_default().trim_start_matches('/');
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let resource_type = segments.next();
        let has_id = segments.next().is_some();
        let interaction = match method {
            "GET" | "HEAD" if has_id => Interaction::Read,
            "GET" | "HEAD" => Interaction::Search,
            "POST" => Interaction::Create,
            "PUT" | "PATCH" => Interaction::Update,
            "DELETE" => Interaction::Delete,
            _ => continue,
        };
        crate::auth::require_scope(
            principal,
            resource_type.filter(|t| !t.starts_with('_') && !t.starts_with('$')),
            interaction,
        )?;
    }
    Ok(())
}

/// Tells the caller that the access decision withheld entries, without saying which: an
/// `OperationOutcome` entry with the `suppressed` issue, and no `total` when it is no longer exact.
pub fn mark_withheld(bundle: &mut Value, withheld: usize, total_known: bool) {
    if withheld == 0 {
        return;
    }
    if !total_known {
        if let Some(object) = bundle.as_object_mut() {
            object.remove("total");
        }
    }
    let issue = carecircle_fhir::Issue {
        severity: carecircle_fhir::outcome::IssueSeverity::Information,
        code: carecircle_fhir::IssueType::Suppressed,
        diagnostics: "some matching entries were withheld because access to them is not permitted".into(),
        expression: Vec::new(),
    };
    let outcome = json!({"resource": operation_outcome(&[issue]), "search": {"mode": "outcome"}});
    if let Some(object) = bundle.as_object_mut() {
        let entries = object.entry("entry").or_insert_with(|| json!([]));
        if let Some(entries) = entries.as_array_mut() {
            entries.push(outcome);
        }
    }
}

/// A query string from its pairs, for the audit trail.
pub fn encode_pairs(params: &[(String, String)]) -> String {
    encode(params)
}
