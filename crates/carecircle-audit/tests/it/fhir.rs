//! AuditEvent rendering per IHE BALP.

use carecircle_audit::{AuditAction, AuditDecision, AuditEntity, AuditEntry, AuditOutcome};
use serde_json::json;

#[test]
fn a_patient_read_renders_as_balp_patient_read() {
    let entry = AuditEntry { seq: 42, record: super::read_record("dr-okafor", "p1") };
    let event = entry.to_audit_event();
    assert_eq!(
        event,
        json!({
            "resourceType": "AuditEvent",
            "id": "42",
            "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"]},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"},
            "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"}],
            "action": "R",
            "recorded": "2023-11-14T22:13:20.000Z",
            "outcome": "0",
            "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}],
            "agent": [
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
                    "role": [{"text": "gp"}],
                    "who": {"identifier": {"system": "urn:carecircle:user", "value": "dr-okafor"}, "type": "Practitioner"},
                    "requestor": true,
                    "purposeOfUse": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]
                },
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV", "display": "healthcare provider"}]},
                    "who": {"reference": "Organization/gp-1"},
                    "requestor": false
                },
                {
                    "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
                    "who": {"display": "127.0.0.1"},
                    "requestor": false,
                    "network": {"address": "127.0.0.1", "type": "2"}
                },
                {
                    "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}]},
                    "who": {"display": "carecircle"},
                    "requestor": false
                }
            ],
            "source": {
                "site": "carecircle",
                "observer": {"display": "carecircle"},
                "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
            },
            "entity": [
                {
                    "what": {"reference": "Patient/p1"},
                    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                    "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
                },
                {
                    "what": {"reference": "Observation/obs-1/_history/3"},
                    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
                    "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"}
                },
                {
                    "what": {"identifier": {"value": "req-1"}},
                    "type": {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "code": "XrequestId", "display": "X-Request-Id"}
                }
            ]
        })
    );
}

#[test]
fn a_search_is_a_patient_query_with_the_raw_query_in_base64() {
    let mut record = super::read_record("dr-okafor", "p1");
    record.action = AuditAction::Search;
    record.entity = Some(AuditEntity { resource_type: "Observation".into(), id: String::new(), version: None });
    record.query = Some("subject=Patient/p1&code=1234-5".into());
    let event = record.to_audit_event();
    assert_eq!(
        event["meta"]["profile"][0],
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery"
    );
    assert_eq!((event["action"].as_str(), event["subtype"][0]["code"].as_str()), (Some("E"), Some("search-type")));
    let query =
        event["entity"].as_array().expect("entities").iter().find(|e| e["role"]["code"] == "24").expect("query entity");
    assert_eq!(query["query"], "c3ViamVjdD1QYXRpZW50L3AxJmNvZGU9MTIzNC01");
    assert_eq!(query["description"], "subject=Patient/p1&code=1234-5");
}

#[test]
fn writes_use_the_crud_action_codes() {
    let cases = [
        (AuditAction::Create, "C", "create", "PatientCreate"),
        (AuditAction::Update, "U", "update", "PatientUpdate"),
        (AuditAction::Delete, "D", "delete", "PatientDelete"),
        (AuditAction::Vread, "R", "vread", "PatientRead"),
    ];
    for (action, code, subtype, profile) in cases {
        let mut record = super::read_record("u", "p1");
        record.action = action;
        let event = record.to_audit_event();
        assert_eq!(event["action"], code, "{action:?}");
        assert_eq!(event["subtype"][0]["code"], subtype, "{action:?}");
        assert!(event["meta"]["profile"][0].as_str().expect("profile").ends_with(profile), "{action:?}");
    }
}

#[test]
fn a_decision_is_an_authz_consent_security_alert() {
    let mut record = super::read_record("dr-okafor", "p1");
    record.action = AuditAction::Decision;
    record.outcome = AuditOutcome::MinorFailure;
    record.entity = Some(AuditEntity { resource_type: "Consent".into(), id: "c1".into(), version: None });
    record.decision = Some(AuditDecision { permit: false, policy_id: "dsa-7".into(), clause_ids: vec!["4.2".into()] });
    let event = record.to_audit_event();
    assert_eq!(
        event["type"],
        json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110113", "display": "Security Alert"})
    );
    assert_eq!(event["subtype"][0]["code"], "AuthZ-Consent");
    assert_eq!(event["subtype"][0]["system"], "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType");
    assert_eq!((event["action"].as_str(), event["outcome"].as_str()), (Some("E"), Some("4")));
    assert_eq!(event["outcomeDesc"], "deny by dsa-7 (4.2)");
    let entities = event["entity"].as_array().expect("entities");
    assert_eq!(entities[0]["what"]["reference"], "Patient/p1");
    let consent = entities.iter().find(|e| e["type"]["code"] == "Consent").expect("consent entity");
    assert_eq!(consent["what"]["reference"], "Consent/c1");
    assert_eq!(consent["detail"][1], json!({"type": "clause", "valueString": "4.2"}));
}

#[test]
fn break_glass_is_an_emergency_override_security_alert() {
    let mut record = super::read_record("paramedic-3", "p9");
    record.action = AuditAction::BreakGlass;
    record.break_glass = true;
    record.break_glass_reason = Some("unconscious patient".into());
    record.purpose_of_use = Some("ETREAT".into());
    let event = record.to_audit_event();
    assert_eq!(event["type"]["code"], "110113");
    assert_eq!(
        event["subtype"][0],
        json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110127", "display": "Emergency Override Started"})
    );
    assert_eq!(event["outcomeDesc"], "break-glass: unconscious patient");
    let purposes: Vec<&str> = event["purposeOfEvent"]
        .as_array()
        .expect("purposes")
        .iter()
        .filter_map(|p| p["coding"][0]["code"].as_str())
        .collect();
    assert_eq!(purposes, ["ETREAT", "BTG"]);

    // A read under break-glass stays a read, with the BTG purpose.
    let mut read = super::read_record("paramedic-3", "p9");
    read.break_glass = true;
    let event = read.to_audit_event();
    assert_eq!(event["type"]["code"], "rest");
    assert_eq!(event["agent"][0]["purposeOfUse"][1]["coding"][0]["code"], "BTG");
}
