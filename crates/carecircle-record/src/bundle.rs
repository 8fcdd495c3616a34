//! `batch` and `transaction` Bundles (R4 §3.1.0.11). A transaction is validated whole, has its
//! `urn:uuid:` (and other `fullUrl`) references rewritten to the ids the server assigns, and is
//! written in one atomic store call: any failure leaves nothing stored. A batch runs each entry
//! on its own and reports each result.

use std::collections::{HashMap, HashSet};

use carecircle_fhir::date::format_instant;
use carecircle_fhir::search::Handling;
use carecircle_fhir::{definitions, outcome::operation_outcome, Issue, IssueType};
use carecircle_store::{StoreError, StoredResource, WriteEffect, WriteOp, WriteOutcome};
use serde_json::{json, Map, Value};

use crate::{new_id, parse_query_string, prepare, Caller, Created, Record, RecordError};

/// The kinds of Bundle the server processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// Entries processed independently.
    Batch,
    /// Entries processed all or nothing.
    Transaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // Declared in R4's transaction processing order.
    Delete,
    Post,
    Put,
    Get,
}

/// The target of an entry's `request.url`.
#[derive(Debug, Clone)]
struct Target {
    resource_type: String,
    id: Option<String>,
    version: Option<String>,
    query: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    method: Method,
    target: Target,
    full_url: Option<String>,
    resource: Option<Value>,
    if_match: Option<i64>,
    if_none_exist: Option<String>,
}

fn at(index: usize, rest: &str) -> String {
    format!("Bundle.entry[{index}]{rest}")
}

fn entry_issue(index: usize, rest: &str, code: IssueType, message: impl Into<String>) -> Issue {
    Issue::error(code, message).at(at(index, rest))
}

/// Parses `request.url`: relative (`Patient`, `Patient/1`, `Patient/1/_history/2`, `Patient?x=y`)
/// or absolute (everything before the first resource-type segment is dropped).
fn parse_target(url: &str) -> Option<Target> {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (url, None),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().position(|s| definitions().is_resource_type(s))?;
    let segments = &segments[start..];
    let target = |id: Option<&str>, version: Option<&str>| Target {
        resource_type: segments[0].to_string(),
        id: id.map(str::to_string),
        version: version.map(str::to_string),
        query: query.clone(),
    };
    match segments {
        [_] => Some(target(None, None)),
        [_, id] => Some(target(Some(id), None)),
        [_, id, "_history", version] => Some(target(Some(id), Some(version))),
        _ => None,
    }
}

fn parse_etag(value: &str) -> Option<i64> {
    value.trim().trim_start_matches("W/").trim_matches('"').parse().ok()
}

fn parse_entries(bundle: &Value) -> Result<Vec<Entry>, RecordError> {
    let entries = match bundle.get("entry") {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(RecordError::invalid(
                Issue::error(IssueType::Structure, "Bundle.entry must be an array").at("Bundle.entry"),
            ))
        }
    };
    let mut parsed = Vec::new();
    let mut issues = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let request = &entry["request"];
        let method = match request["method"].as_str() {
            Some("GET") | Some("HEAD") => Method::Get,
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("DELETE") => Method::Delete,
            Some(other) => {
                issues.push(entry_issue(
                    index,
                    ".request.method",
                    IssueType::NotSupported,
                    format!("method '{other}' is not supported in a Bundle"),
                ));
                continue;
            }
            None => {
                issues.push(entry_issue(
                    index,
                    ".request.method",
                    IssueType::Required,
                    "every entry needs request.method",
                ));
                continue;
            }
        };
        let Some(url) = request["url"].as_str() else {
            issues.push(entry_issue(index, ".request.url", IssueType::Required, "every entry needs request.url"));
            continue;
        };
        let Some(target) = parse_target(url) else {
            issues.push(entry_issue(
                index,
                ".request.url",
                IssueType::Value,
                format!("'{url}' does not name a resource type, resource or version"),
            ));
            continue;
        };
        let resource = entry.get("resource").cloned();
        if matches!(method, Method::Post | Method::Put) && resource.is_none() {
            issues.push(entry_issue(index, ".resource", IssueType::Required, "POST and PUT entries need a resource"));
            continue;
        }
        let if_match = match request["ifMatch"].as_str() {
            Some(tag) => match parse_etag(tag) {
                Some(v) => Some(v),
                None => {
                    issues.push(entry_issue(
                        index,
                        ".request.ifMatch",
                        IssueType::Value,
                        format!("'{tag}' is not an ETag such as W/\"3\""),
                    ));
                    continue;
                }
            },
            None => None,
        };
        parsed.push(Entry {
            index,
            method,
            target,
            full_url: entry["fullUrl"].as_str().map(str::to_string),
            resource,
            if_match,
            if_none_exist: request["ifNoneExist"].as_str().map(str::to_string),
        });
    }
    if issues.is_empty() {
        Ok(parsed)
    } else {
        Err(RecordError::Invalid(issues))
    }
}

/// Entry point from [`Record::process_bundle`].
pub(crate) async fn process(record: &Record, caller: &Caller, bundle: Value) -> Result<Value, RecordError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(RecordError::invalid(
            Issue::error(IssueType::Invalid, "POST to the base URL takes a Bundle").at("resourceType"),
        ));
    }
    let kind = match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => BundleKind::Batch,
        Some("transaction") => BundleKind::Transaction,
        other => {
            return Err(RecordError::invalid(
                Issue::error(
                    IssueType::Value,
                    format!("Bundle.type {} cannot be processed; only batch and transaction can (store other Bundles with POST /Bundle)", other.unwrap_or("(missing)")),
                )
                .at("Bundle.type"),
            ))
        }
    };
    let entries = parse_entries(&bundle)?;
    match kind {
        BundleKind::Batch => Ok(batch(record, caller, entries).await),
        BundleKind::Transaction => transaction(record, caller, entries).await,
    }
}

fn response_entry(status: &str, stored: Option<&StoredResource>, with_resource: bool) -> Value {
    let mut response = Map::new();
    response.insert("status".into(), json!(status));
    if let Some(stored) = stored {
        response.insert(
            "location".into(),
            json!(format!("{}/{}/_history/{}", stored.resource_type, stored.id, stored.version)),
        );
        response.insert("etag".into(), json!(format!("W/\"{}\"", stored.version)));
        response.insert("lastModified".into(), json!(format_instant(stored.last_updated)));
    }
    let mut entry = Map::new();
    if let (true, Some(body)) = (with_resource, stored.and_then(StoredResource::json)) {
        entry.insert("resource".into(), body);
    }
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}

fn write_status(outcome: &WriteOutcome) -> &'static str {
    match outcome.effect {
        WriteEffect::Created => "201 Created",
        WriteEffect::Updated => "200 OK",
        WriteEffect::Deleted | WriteEffect::Unchanged => "204 No Content",
    }
}

fn error_entry(error: &RecordError) -> Value {
    let status = match error {
        RecordError::Invalid(_) => "400 Bad Request",
        RecordError::NotFound(_) => "404 Not Found",
        RecordError::Gone(_) => "410 Gone",
        RecordError::PreconditionFailed(_) => "412 Precondition Failed",
        RecordError::NotSupported(_) => "501 Not Implemented",
        RecordError::Forbidden(_) => "403 Forbidden",
        RecordError::Internal(_) => "500 Internal Server Error",
    };
    json!({ "response": { "status": status, "outcome": operation_outcome(&error.issues()) } })
}

async fn run_get(record: &Record, target: &Target) -> Result<Value, RecordError> {
    match (&target.id, &target.version) {
        (Some(id), Some(version)) => {
            Ok(response_entry("200 OK", Some(&record.vread(&target.resource_type, id, version).await?), true))
        }
        (Some(id), None) => Ok(response_entry("200 OK", Some(&record.read(&target.resource_type, id).await?), true)),
        (None, _) => {
            let params = target.query.as_deref().map(parse_query_string).unwrap_or_default();
            let result = record.search(Some(&target.resource_type), &params, Handling::Strict).await?;
            let entries: Vec<Value> = result
                .page
                .entries
                .iter()
                .filter_map(|r| r.json().map(|body| json!({"fullUrl": format!("{}/{}", r.resource_type, r.id), "resource": body, "search": {"mode": "match"}})))
                .collect();
            Ok(json!({
                "resource": {"resourceType": "Bundle", "type": "searchset", "total": result.page.total, "entry": entries},
                "response": {"status": "200 OK"}
            }))
        }
    }
}

/// The store write of a batch entry that needs nothing but itself (a POST without a condition,
/// a PUT or DELETE of Type/id), checked; `None` for entries processed on their own.
fn independent_write(caller: &Caller, entry: &Entry) -> Option<Result<WriteOp, RecordError>> {
    let target = &entry.target;
    let body = || entry.resource.clone().unwrap_or(Value::Null);
    match (entry.method, &target.id) {
        (Method::Post, _) if entry.if_none_exist.is_none() => Some(
            prepare::validate_incoming(&entry.resource.clone().unwrap_or(Value::Null), &target.resource_type, None)
                .map(|()| prepare::put(caller, &target.resource_type, &new_id(), body(), Some(0))),
        ),
        (Method::Put, Some(id)) => Some(
            prepare::validate_incoming(
                entry.resource.as_ref().unwrap_or(&Value::Null),
                &target.resource_type,
                Some(id),
            )
            .map(|()| prepare::put(caller, &target.resource_type, id, body(), entry.if_match)),
        ),
        (Method::Delete, Some(id)) => {
            Some(prepare::check_type_and_id(&target.resource_type, id).map(|()| WriteOp::Delete {
                resource_type: target.resource_type.clone(),
                id: id.clone(),
                expected_version: entry.if_match,
            }))
        }
        _ => None,
    }
}

fn write_key(write: &WriteOp) -> (String, String) {
    match write {
        WriteOp::Put { resource_type, id, .. } | WriteOp::Delete { resource_type, id, .. } => {
            (resource_type.clone(), id.clone())
        }
    }
}

fn outcome_entry(outcome: &WriteOutcome) -> Value {
    let stored = matches!(outcome.effect, WriteEffect::Created | WriteEffect::Updated).then_some(&outcome.stored);
    response_entry(write_status(outcome), stored, false)
}

/// A batch: every entry succeeds or fails on its own. The independent writes are checked one by
/// one and then committed together (one transaction instead of one per entry); if that combined
/// write fails, each is retried alone so that one entry's failure never affects another.
async fn batch(record: &Record, caller: &Caller, entries: Vec<Entry>) -> Value {
    let mut responses: Vec<Option<Value>> = vec![None; entries.len()];
    let locate = |e: RecordError, entry: &Entry| {
        error_entry(&e.within(&at(entry.index, ".resource"), &entry.target.resource_type))
    };
    let mut grouped: Vec<(usize, WriteOp)> = Vec::new();
    let mut seen = HashSet::new();
    let mut alone: Vec<usize> = Vec::new();
    for (slot, entry) in entries.iter().enumerate() {
        match independent_write(caller, entry) {
            Some(Ok(write)) if seen.insert(write_key(&write)) => grouped.push((slot, write)),
            Some(Err(error)) => responses[slot] = Some(locate(error, entry)),
            _ => alone.push(slot),
        }
    }
    let writes: Vec<WriteOp> = grouped.iter().map(|(_, w)| w.clone()).collect();
    match record.store.apply(writes).await {
        Ok(outcomes) => {
            for ((slot, _), outcome) in grouped.iter().zip(&outcomes) {
                responses[*slot] = Some(outcome_entry(outcome));
            }
        }
        Err(_) => {
            for (slot, write) in grouped {
                responses[slot] = Some(match record.store.apply(vec![write]).await {
                    Ok(outcomes) => {
                        outcomes.first().map(outcome_entry).unwrap_or_else(|| json!({"response": {"status": "200 OK"}}))
                    }
                    Err(error) => locate(error.into(), &entries[slot]),
                });
            }
        }
    }
    // Reads, conditional creates and repeated targets run on their own, after the writes.
    for slot in alone {
        let entry = &entries[slot];
        let target = &entry.target;
        let result = match entry.method {
            Method::Get => run_get(record, target).await,
            Method::Post => {
                let body = entry.resource.clone().unwrap_or(Value::Null);
                record.create(caller, &target.resource_type, body, entry.if_none_exist.as_deref()).await.map(
                    |created| match created {
                        Created::New(stored) => response_entry("201 Created", Some(&stored), false),
                        Created::Existing(stored) => response_entry("200 OK", Some(&stored), false),
                    },
                )
            }
            Method::Put => match &target.id {
                Some(id) => record
                    .update(
                        caller,
                        &target.resource_type,
                        id,
                        entry.resource.clone().unwrap_or(Value::Null),
                        entry.if_match,
                    )
                    .await
                    .map(|o| response_entry(write_status(&o), Some(&o.stored), false)),
                None => Err(RecordError::NotSupported(Issue::error(
                    IssueType::NotSupported,
                    "PUT needs Type/id in a batch",
                ))),
            },
            Method::Delete => match &target.id {
                Some(id) => record.delete(&target.resource_type, id, entry.if_match).await.map(|o| outcome_entry(&o)),
                None => Err(RecordError::NotSupported(Issue::error(
                    IssueType::NotSupported,
                    "conditional delete is not supported",
                ))),
            },
        };
        responses[slot] = Some(result.unwrap_or_else(|e| locate(e, entry)));
    }
    let responses: Vec<Value> = responses
        .into_iter()
        .map(|r| r.unwrap_or_else(|| json!({"response": {"status": "500 Internal Server Error"}})))
        .collect();
    json!({ "resourceType": "Bundle", "id": new_id(), "type": "batch-response", "entry": responses })
}

/// Replaces every string equal to a key of `ids` (a `fullUrl`) by the reference it became.
fn rewrite_references(value: &mut Value, ids: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(reference) = ids.get(s.as_str()) {
                *s = reference.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, ids)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_references(v, ids)),
        _ => {}
    }
}

/// `urn:uuid:`/`urn:oid:` references left after rewriting point at nothing in the transaction.
fn unresolved_urns(value: &Value, path: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "reference" {
                    if let Some(s) = v.as_str().filter(|s| s.starts_with("urn:uuid:") || s.starts_with("urn:oid:")) {
                        found.push((format!("{path}.reference"), s.to_string()));
                    }
                }
                unresolved_urns(v, &format!("{path}.{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unresolved_urns(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

async fn transaction(record: &Record, caller: &Caller, mut entries: Vec<Entry>) -> Result<Value, RecordError> {
    // 1. Validate every entry; report every problem at once.
    let mut issues = Vec::new();
    for entry in &entries {
        let location = at(entry.index, ".resource");
        if let (Method::Post | Method::Put, Some(resource)) = (entry.method, &entry.resource) {
            let url_id = if entry.method == Method::Put { entry.target.id.as_deref() } else { None };
            let check = if entry.method == Method::Put && entry.target.id.is_none() {
                // Conditional update: the id comes from the match, not the URL.
                prepare::validate_incoming(resource, &entry.target.resource_type, None)
            } else {
                prepare::validate_incoming(resource, &entry.target.resource_type, url_id)
            };
            if let Err(error) = check {
                issues.extend(error.within(&location, &entry.target.resource_type).issues());
            }
        }
        if entry.method == Method::Delete && entry.target.id.is_none() {
            issues.push(entry_issue(
                entry.index,
                ".request.url",
                IssueType::NotSupported,
                "conditional delete is not supported",
            ));
        }
        if entry.target.version.is_some() && entry.method != Method::Get {
            issues.push(entry_issue(entry.index, ".request.url", IssueType::Invalid, "only GET may name a version"));
        }
    }
    if !issues.is_empty() {
        return Err(RecordError::Invalid(issues));
    }

    // 2. Decide each write's id (conditional creates and updates search now) and map fullUrls.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut decided: Vec<Option<(String, Option<StoredResource>)>> = vec![None; entries.len()];
    for (slot, entry) in entries.iter().enumerate() {
        let resource_type = entry.target.resource_type.clone();
        let located = |e: RecordError| e.within(&at(entry.index, ".request"), &resource_type);
        let choice = match entry.method {
            Method::Post => match &entry.if_none_exist {
                Some(condition) => {
                    match record.conditional_match(&resource_type, condition, "ifNoneExist").await.map_err(located)? {
                        Some(existing) => Some((existing.id.clone(), Some(existing))),
                        None => Some((new_id(), None)),
                    }
                }
                None => Some((new_id(), None)),
            },
            Method::Put => match (&entry.target.id, &entry.target.query) {
                (Some(id), _) => Some((id.clone(), None)),
                (None, Some(condition)) => {
                    match record.conditional_match(&resource_type, condition, "request.url").await.map_err(located)? {
                        Some(existing) => Some((existing.id, None)),
                        None => Some((
                            entry
                                .resource
                                .as_ref()
                                .and_then(|r| r["id"].as_str())
                                .map(str::to_string)
                                .unwrap_or_else(new_id),
                            None,
                        )),
                    }
                }
                (None, None) => {
                    return Err(RecordError::invalid(entry_issue(
                        entry.index,
                        ".request.url",
                        IssueType::Invalid,
                        "PUT needs Type/id or a conditional query",
                    )))
                }
            },
            Method::Delete => entry.target.id.clone().map(|id| (id, None)),
            Method::Get => None,
        };
        if let (Some((id, _)), Some(full_url)) = (&choice, &entry.full_url) {
            ids.insert(full_url.clone(), format!("{resource_type}/{id}"));
        }
        decided[slot] = choice;
    }

    // 3. Rewrite references, refuse what still dangles, and refuse two writes to one resource.
    let mut seen = HashSet::new();
    for (slot, entry) in entries.iter_mut().enumerate() {
        if let Some(resource) = &mut entry.resource {
            rewrite_references(resource, &ids);
            let mut dangling = Vec::new();
            unresolved_urns(resource, &at(entry.index, ".resource"), &mut dangling);
            for (path, urn) in dangling {
                issues.push(
                    Issue::error(
                        IssueType::NotFound,
                        format!("reference '{urn}' matches no entry's fullUrl in this transaction"),
                    )
                    .at(path),
                );
            }
        }
        if let (Some((id, None)), Method::Post | Method::Put | Method::Delete) = (&decided[slot], entry.method) {
            if !seen.insert((entry.target.resource_type.clone(), id.clone())) {
                issues.push(entry_issue(
                    entry.index,
                    ".request.url",
                    IssueType::Invalid,
                    format!("{}/{id} is written by more than one entry", entry.target.resource_type),
                ));
            }
        }
    }
    if !issues.is_empty() {
        return Err(RecordError::Invalid(issues));
    }

    // 4. One atomic write, in R4 order: DELETE, POST, PUT.
    let mut order: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].method != Method::Get).collect();
    order.sort_by_key(|&i| entries[i].method);
    let mut writes = Vec::new();
    let mut written_slots = Vec::new();
    for &slot in &order {
        let entry = &entries[slot];
        let Some((id, existing)) = &decided[slot] else { continue };
        if existing.is_some() {
            continue; // conditional create matched: nothing to write
        }
        let resource_type = &entry.target.resource_type;
        let write = match entry.method {
            Method::Delete => WriteOp::Delete {
                resource_type: resource_type.clone(),
                id: id.clone(),
                expected_version: entry.if_match,
            },
            Method::Post => {
                prepare::put(caller, resource_type, id, entry.resource.clone().unwrap_or(Value::Null), Some(0))
            }
            _ => prepare::put(caller, resource_type, id, entry.resource.clone().unwrap_or(Value::Null), entry.if_match),
        };
        writes.push(write);
        written_slots.push(slot);
    }
    let outcomes = match record.store.apply(writes).await {
        Ok(outcomes) => outcomes,
        Err(StoreError::VersionConflict { resource_type, id, expected, current }) => {
            let slot = written_slots.iter().copied().find(|&s| {
                entries[s].target.resource_type == resource_type && decided[s].as_ref().is_some_and(|(d, _)| *d == id)
            });
            let error = RecordError::from(StoreError::VersionConflict {
                resource_type: resource_type.clone(),
                id,
                expected,
                current,
            });
            return Err(match slot {
                Some(s) => error.within(&at(entries[s].index, ".request"), &resource_type),
                None => error,
            });
        }
        Err(other) => return Err(other.into()),
    };
    let mut responses: Vec<Option<Value>> = vec![None; entries.len()];
    for (slot, outcome) in written_slots.iter().zip(&outcomes) {
        let stored = (outcome.effect != WriteEffect::Deleted && outcome.effect != WriteEffect::Unchanged)
            .then_some(&outcome.stored);
        responses[*slot] = Some(response_entry(write_status(outcome), stored, false));
    }
    for (slot, choice) in decided.iter().enumerate() {
        if let Some((_, Some(existing))) = choice {
            responses[slot] = Some(response_entry("200 OK", Some(existing), false));
        }
    }
    // 5. Reads run after the writes, so they see them.
    for (slot, entry) in entries.iter().enumerate() {
        if entry.method == Method::Get {
            responses[slot] = Some(run_get(record, &entry.target).await.unwrap_or_else(|e| error_entry(&e)));
        }
    }
    Ok(json!({
        "resourceType": "Bundle",
        "id": new_id(),
        "type": "transaction-response",
        "entry": responses.into_iter().map(|r| r.unwrap_or_else(|| json!({"response": {"status": "200 OK"}}))).collect::<Vec<_>>()
    }))
}
