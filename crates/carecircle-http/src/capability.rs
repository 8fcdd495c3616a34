//! The CapabilityStatement: built from the same definitions and the same support rules the
//! server runs on, so it lists exactly what is supported.

use carecircle_fhir::definitions::{definitions, SearchParamType};
use serde_json::{json, Value};

/// Search parameters whose type is supported but which the server still does not run.
const UNSUPPORTED_PARAMS: &[&str] = &["_text", "_content", "_query", "_list", "_filter"];

/// The server's CapabilityStatement.
pub fn capability_statement(base_url: &str) -> Value {
    let defs = definitions();
    let resources: Vec<Value> = defs
        .resource_types()
        .map(|resource_type| {
            let params = defs.search_params(resource_type);
            let search_params: Vec<Value> = params
                .iter()
                .filter(|p| p.kind.is_supported() && !UNSUPPORTED_PARAMS.contains(&p.code.as_str()))
                .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.code()}))
                .collect();
            let mut includes: Vec<String> = params
                .iter()
                .filter(|p| p.kind == SearchParamType::Reference)
                .map(|p| format!("{resource_type}:{}", p.code))
                .collect();
            includes.push("*".into());
            let interactions: Vec<Value> = ["read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"]
                .iter()
                .map(|code| json!({"code": code}))
                .collect();
            let mut resource = json!({
                "type": resource_type,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{resource_type}"),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
                "searchInclude": includes,
                "searchRevInclude": ["*"],
                "searchParam": search_params,
            });
            if resource_type == "Patient" {
                resource["operation"] = json!([
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                    {"name": "care-team", "definition": format!("{base_url}/OperationDefinition/Patient-care-team"),
                     "documentation": "Who else is working with this person: one CareTeam from the explicit CareTeams and partner lists the caller may see"}
                ]);
            }
            if resource_type == "Organization" {
                resource["operation"] = json!([{
                    "name": "custodian-export",
                    "definition": format!("{base_url}/OperationDefinition/Organization-custodian-export"),
                    "documentation": "Every resource this organisation is custodian of, as NDJSON"
                }]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "carecircle",
        "kind": "instance",
        "software": {"name": "carecircle", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "carecircle shared care record", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Writes record their custodian from the X-Custodian header (Organization/{id}). Searches refuse unknown parameters unless Prefer: handling=lenient. _source filters by custodian.",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "search-system"}, {"code": "history-system"}],
            "searchParam": [
                {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
                {"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"},
                {"name": "_source", "definition": "http://hl7.org/fhir/SearchParameter/Resource-source", "type": "uri",
                 "documentation": "The custodian organisation, Organization/{id}"},
                {"name": "_tag", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag", "type": "token"},
                {"name": "_profile", "definition": "http://hl7.org/fhir/SearchParameter/Resource-profile", "type": "uri"},
                {"name": "_security", "definition": "http://hl7.org/fhir/SearchParameter/Resource-security", "type": "token"}
            ]
        }]
    })
}
