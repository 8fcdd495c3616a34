//! Checks on incoming resources and their preparation for the store: the custodian recorded in
//! `meta.source`, the search index extracted.

use carecircle_fhir::search::is_valid_id;
use carecircle_fhir::validate::validate_resource;
use carecircle_fhir::{definitions, extract_index, Issue, IssueType};
use carecircle_store::WriteOp;
use serde_json::Value;

use crate::{Caller, RecordError};

/// Refuses an unknown resource type.
pub(crate) fn check_type(resource_type: &str) -> Result<(), RecordError> {
    if definitions().is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(RecordError::NotFound(Issue::error(
            IssueType::NotSupported,
            format!("'{resource_type}' is not an R4 resource type"),
        )))
    }
}

/// Refuses an unknown resource type or an invalid id.
pub(crate) fn check_type_and_id(resource_type: &str, id: &str) -> Result<(), RecordError> {
    check_type(resource_type)?;
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(RecordError::invalid(
            Issue::error(IssueType::Value, format!("'{id}' is not a valid id (1-64 of A-Z, a-z, 0-9, '-' and '.')"))
                .at(format!("{resource_type}.id")),
        ))
    }
}

/// Checks a resource sent for create (`url_id` `None`) or update: a JSON object, of the type
/// in the URL, with the URL's id (update), structurally valid R4. Every problem is reported.
pub fn validate_incoming(body: &Value, url_type: &str, url_id: Option<&str>) -> Result<(), RecordError> {
    check_type(url_type)?;
    let Some(object) = body.as_object() else {
        return Err(RecordError::invalid(Issue::error(
            IssueType::Structure,
            "the body must be a JSON object holding a FHIR resource",
        )));
    };
    let resource_type = match object.get("resourceType") {
        None => {
            return Err(RecordError::invalid(
                Issue::error(IssueType::Required, "the resource has no resourceType").at("resourceType"),
            ))
        }
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(RecordError::invalid(
                Issue::error(IssueType::Structure, "resourceType must be a string").at("resourceType"),
            ))
        }
    };
    if !definitions().is_resource_type(resource_type) {
        return Err(RecordError::invalid(
            Issue::error(IssueType::Value, format!("'{resource_type}' is not an R4 resource type")).at("resourceType"),
        ));
    }
    if resource_type != url_type {
        return Err(RecordError::invalid(
            Issue::error(
                IssueType::Invalid,
                format!("the resource is a {resource_type} but the URL is for {url_type}"),
            )
            .at(format!("{resource_type}.resourceType")),
        ));
    }
    let mut issues = Vec::new();
    match (url_id, object.get("id")) {
        (Some(url_id), Some(Value::String(body_id))) if body_id != url_id => issues.push(
            Issue::error(
                IssueType::Invalid,
                format!("the resource id '{body_id}' differs from the id '{url_id}' in the URL"),
            )
            .at(format!("{resource_type}.id")),
        ),
        (Some(_), None) => issues.push(
            Issue::error(IssueType::Required, "an update must carry the id of the URL in the resource")
                .at(format!("{resource_type}.id")),
        ),
        _ => {}
    }
    issues.extend(validate_resource(body));
    if issues.is_empty() {
        Ok(())
    } else {
        Err(RecordError::Invalid(issues))
    }
}

/// Checks a custodian given as `Organization/{id}` and returns it.
pub fn custodian_reference(value: &str) -> Result<String, Issue> {
    match value.split_once('/') {
        Some(("Organization", id)) if is_valid_id(id) => Ok(value.to_string()),
        _ => Err(Issue::error(IssueType::Value, format!("the custodian must be 'Organization/{{id}}', not '{value}'"))),
    }
}

/// The store write for a validated resource: `id` set, `meta.source` naming the custodian, the
/// search index extracted.
pub(crate) fn put(
    caller: &Caller,
    resource_type: &str,
    id: &str,
    mut body: Value,
    expected_version: Option<i64>,
) -> WriteOp {
    if let Some(object) = body.as_object_mut() {
        object.insert("id".into(), Value::String(id.to_string()));
        let meta = object.entry("meta").or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("source".into(), Value::String(caller.custodian.clone()));
        }
    }
    let index = extract_index(&body);
    WriteOp::Put {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        resource: body,
        index,
        custodian: Some(caller.custodian.clone()),
        expected_version,
    }
}
