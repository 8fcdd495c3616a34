//! Profile parsing: good and bad Contracts, Consents, Organizations and DPIAs, with located errors.

use carecircle_access::codes::SensitivityLabel;
use carecircle_access::demo_support::{
    dpia_document_reference, AgreementSpec, ClauseSpec, ConsentSpec, ProvisionSpec, RecordedBy,
};
use carecircle_access::{Agreement, ConsentRecord, Dpia, Organisation, ProfileError, Purpose, Sector};
use carecircle_demo::well_known as wk;
use serde_json::{json, Value};

use crate::fixture::agreement_specs;

/// One edit that breaks a resource.
type Edit = Box<dyn FnOnce(&mut Value)>;

fn contract() -> Value {
    AgreementSpec::active(
        "dsa-p",
        "Profile test",
        &[wk::ORG_HOSPITAL, wk::ORG_MH_TRUST],
        "2026-01-01",
        None,
        vec![
            ClauseSpec::new("care", Purpose::Treat, &[wk::ORG_HOSPITAL], &["Condition"])
                .labels(&[SensitivityLabel::MentalHealth, SensitivityLabel::Restricted]),
            ClauseSpec::new("research", Purpose::Research, &[wk::ORG_HOSPITAL], &["Encounter"])
                .disclosers(&[wk::ORG_MH_TRUST]),
        ],
    )
    .to_contract()
}

fn contract_error(edit: impl FnOnce(&mut Value)) -> ProfileError {
    let mut c = contract();
    edit(&mut c);
    Agreement::from_contract(&c).expect_err("the edit breaks the profile")
}

#[test]
fn a_good_contract_parses_into_its_clauses() {
    let a = Agreement::from_contract(&contract()).expect("valid");
    assert_eq!(a.parties, vec![wk::ORG_HOSPITAL, wk::ORG_MH_TRUST]);
    assert_eq!(a.clauses.len(), 2);
    let care = &a.clauses[0];
    assert_eq!(care.purpose, Purpose::Treat);
    assert_eq!(care.disclosers, vec![wk::ORG_HOSPITAL, wk::ORG_MH_TRUST]);
    assert_eq!(care.labels.to_vec(), vec![SensitivityLabel::MentalHealth, SensitivityLabel::Restricted]);
    assert_eq!(care.lawful_basis.iter().map(|b| b.code.as_str()).collect::<Vec<_>>(), vec!["6(1)(e)", "9(2)(h)"]);
    assert_eq!(care.retention.as_ref().map(|r| (r.value, r.unit.as_str())), Some((8.0, "a")));
    assert_eq!(a.clauses[1].disclosers, vec![wk::ORG_MH_TRUST]);
    assert_eq!(a.signatories.len(), 2);
    assert_eq!(a.dpias, vec!["dpia-dsa-p"]);
    for spec in agreement_specs() {
        Agreement::from_contract(&spec.to_contract()).expect("fixture agreements parse");
    }
}

#[test]
fn bad_contracts_are_located() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("wrong type", Box::new(|c| c["resourceType"] = json!("Consent")), "Contract"),
        (
            "no status",
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("status"));
            }),
            "Contract.status",
        ),
        ("unknown status", Box::new(|c| c["status"] = json!("amended")), "Contract.status"),
        (
            "no period",
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("applies"));
            }),
            "Contract.applies",
        ),
        ("end before start", Box::new(|c| c["applies"]["end"] = json!("2025-01-01")), "Contract.applies.end"),
        ("bad date", Box::new(|c| c["applies"]["start"] = json!("2026-13-01")), "Contract.applies.start"),
        (
            "one party",
            Box::new(|c| {
                if let Some(a) = c["extension"].as_array_mut() {
                    a.truncate(1)
                }
            }),
            "Contract.extension",
        ),
        (
            "party not an organisation",
            Box::new(|c| c["extension"][1]["valueReference"]["reference"] = json!("Practitioner/x")),
            "Contract.extension[1].valueReference.reference",
        ),
        ("no clauses", Box::new(|c| c["term"] = json!([])), "Contract.term"),
        (
            "clause without id",
            Box::new(|c| {
                c["term"][1].as_object_mut().map(|o| o.remove("id"));
            }),
            "Contract.term[1].id",
        ),
        ("duplicate clause id", Box::new(|c| c["term"][1]["id"] = json!("care")), "Contract.term[1].id"),
        (
            "unknown purpose",
            Box::new(|c| c["term"][0]["action"][0]["intent"]["coding"][0]["code"] = json!("COVERAGE")),
            "Contract.term[0].action[0].intent",
        ),
        (
            "recipient not a party",
            Box::new(|c| {
                c["term"][0]["action"][0]["subject"][0]["reference"][0]["reference"] =
                    json!("Organization/org-northvale-police")
            }),
            "Contract.term[0].action[0].subject[0].reference[0]",
        ),
        ("no data categories", Box::new(|c| c["term"][0]["asset"] = json!([])), "Contract.term[0].asset"),
        (
            "bad lawful basis code",
            Box::new(|c| c["term"][1]["action"][0]["reasonCode"][0]["coding"][0]["code"] = json!("6(1)(z)")),
            "Contract.term[1].action[0].reasonCode[0].coding[0].code",
        ),
        (
            "no Art 9 condition on an active agreement",
            Box::new(|c| {
                if let Some(a) = c["term"][1]["action"][0]["reasonCode"].as_array_mut() {
                    a.truncate(1)
                }
            }),
            "Contract.term[1].action[0].reasonCode",
        ),
        (
            "bad sensitivity category",
            Box::new(|c| c["term"][0]["securityLabel"][0]["category"][0]["code"] = json!("XYZ")),
            "Contract.term[0].securityLabel[0].category[0]",
        ),
        (
            "bad retention",
            Box::new(|c| c["term"][0]["extension"][0]["valueDuration"]["code"] = json!("h")),
            "Contract.term[0].extension[0].valueDuration",
        ),
        (
            "signer not a party",
            Box::new(|c| c["signer"][1]["party"]["reference"] = json!("Organization/org-northvale-police")),
            "Contract.signer[1].party",
        ),
        (
            "signature by an organisation",
            Box::new(|c| c["signer"][0]["signature"][0]["who"]["reference"] = json!("Organization/org-x")),
            "Contract.signer[0].signature[0].who.reference",
        ),
        (
            "supporting info not a DPIA",
            Box::new(|c| c["supportingInfo"][0]["reference"] = json!("Binary/b1")),
            "Contract.supportingInfo[0].reference",
        ),
    ];
    for (name, edit, expression) in cases {
        let err = contract_error(edit);
        assert!(err.has_problem_at(expression), "{name}: expected a problem at {expression}, got {err}");
    }
}

fn consent_spec() -> ConsentSpec {
    ConsentSpec::new(
        "c-1",
        "pat-vale-mh-trust-joe",
        wk::ORG_MH_TRUST,
        "2026-06-18T11:00:00Z",
        ProvisionSpec::deny()
            .except(ProvisionSpec::permit().sectors(&[Sector::Acute]).purposes(&[Purpose::Treat]))
            .except(
                ProvisionSpec::permit()
                    .organisations(&[wk::ORG_GP_ASHGROVE])
                    .resource_types(&["Condition"])
                    .labels(&[SensitivityLabel::MentalHealth]),
            ),
    )
}

#[test]
fn a_good_consent_parses_with_its_provisions() {
    let c = ConsentRecord::from_resource(&consent_spec().to_resource()).expect("valid");
    assert_eq!(c.patient, "Patient/pat-vale-mh-trust-joe");
    assert_eq!(c.version, "1");
    assert_eq!(c.provision.children.len(), 2);
    assert_eq!(c.provision.children[0].sectors, vec![Sector::Acute]);
    assert_eq!(c.provision.children[1].path, "Consent.provision.provision[1]");
    assert!(c.recorded_by.is_none());
    let staff = consent_spec().recorded_by_staff("Practitioner/prac-vale-mh-trust-01", "doc-form-1");
    let c = ConsentRecord::from_resource(&staff.to_resource()).expect("valid");
    assert_eq!(c.recorded_by.as_deref(), Some("Practitioner/prac-vale-mh-trust-01"));
    assert_eq!(c.evidence.as_deref(), Some("DocumentReference/doc-form-1"));
    let mut carer = consent_spec();
    carer.recorded_by = RecordedBy::Staff {
        staff: "PractitionerRole/role-vale-mh-trust-01".to_string(),
        evidence: "doc-lpa".to_string(),
        representative: Some("rp-joe-sister".to_string()),
    };
    let c = ConsentRecord::from_resource(&carer.to_resource()).expect("valid");
    assert_eq!(c.performers, vec!["RelatedPerson/rp-joe-sister"]);
}

#[test]
fn bad_consents_are_located() {
    let staff = || consent_spec().recorded_by_staff("Practitioner/prac-vale-mh-trust-01", "doc-form-1").to_resource();
    let cases: Vec<(&str, Value, Edit, &str)> = vec![
        (
            "wrong scope",
            consent_spec().to_resource(),
            Box::new(|c| c["scope"]["coding"][0]["code"] = json!("research")),
            "Consent.scope",
        ),
        ("no category", consent_spec().to_resource(), Box::new(|c| c["category"] = json!([])), "Consent.category"),
        (
            "no patient",
            consent_spec().to_resource(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("patient"));
            }),
            "Consent.patient",
        ),
        (
            "no dateTime",
            consent_spec().to_resource(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("dateTime"));
            }),
            "Consent.dateTime",
        ),
        ("unknown status", consent_spec().to_resource(), Box::new(|c| c["status"] = json!("paused")), "Consent.status"),
        (
            "no organisation",
            consent_spec().to_resource(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("organization"));
            }),
            "Consent.organization",
        ),
        (
            "no performer",
            consent_spec().to_resource(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("performer"));
            }),
            "Consent.performer",
        ),
        (
            "staff as performer",
            consent_spec().to_resource(),
            Box::new(|c| c["performer"][0]["reference"] = json!("Practitioner/p1")),
            "Consent.performer[0].reference",
        ),
        (
            "staff-recorded without evidence",
            staff(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("sourceReference"));
            }),
            "Consent.sourceReference",
        ),
        (
            "evidence not a DocumentReference",
            staff(),
            Box::new(|c| c["sourceReference"]["reference"] = json!("Binary/b1")),
            "Consent.sourceReference.reference",
        ),
        (
            "recorder not staff",
            staff(),
            Box::new(|c| c["extension"][0]["valueReference"]["reference"] = json!("Patient/p1")),
            "Consent.extension[0].valueReference",
        ),
        (
            "representative without a staff recorder",
            consent_spec().to_resource(),
            Box::new(|c| c["performer"][0]["reference"] = json!("RelatedPerson/rp1")),
            "Consent.extension",
        ),
        (
            "no provision",
            consent_spec().to_resource(),
            Box::new(|c| {
                c.as_object_mut().map(|o| o.remove("provision"));
            }),
            "Consent.provision",
        ),
        (
            "root without type",
            consent_spec().to_resource(),
            Box::new(|c| {
                c["provision"].as_object_mut().map(|o| o.remove("type"));
            }),
            "Consent.provision.type",
        ),
        (
            "nested provision not the opposite",
            consent_spec().to_resource(),
            Box::new(|c| c["provision"]["provision"][1]["type"] = json!("deny")),
            "Consent.provision.provision[1].type",
        ),
        (
            "unknown purpose",
            consent_spec().to_resource(),
            Box::new(|c| c["provision"]["provision"][0]["purpose"][0]["code"] = json!("MARKT")),
            "Consent.provision.provision[0].purpose[0]",
        ),
        (
            "unknown sector",
            consent_spec().to_resource(),
            Box::new(|c| {
                c["provision"]["provision"][0]["actor"][0]["reference"]["identifier"]["value"] = json!("retail")
            }),
            "Consent.provision.provision[0].actor[0].reference.identifier",
        ),
        (
            "practitioner actor",
            consent_spec().to_resource(),
            Box::new(|c| {
                c["provision"]["provision"][1]["actor"][0]["reference"]["reference"] = json!("Practitioner/p1")
            }),
            "Consent.provision.provision[1].actor[0].reference.reference",
        ),
        (
            "bad class",
            consent_spec().to_resource(),
            Box::new(|c| c["provision"]["provision"][1]["class"][0]["system"] = json!("http://example.org")),
            "Consent.provision.provision[1].class[0]",
        ),
        (
            "bad label",
            consent_spec().to_resource(),
            Box::new(|c| c["provision"]["provision"][1]["securityLabel"][0]["code"] = json!("XYZ")),
            "Consent.provision.provision[1].securityLabel[0]",
        ),
    ];
    for (name, mut resource, edit, expression) in cases {
        edit(&mut resource);
        let err = ConsentRecord::from_resource(&resource).expect_err(name);
        assert!(err.has_problem_at(expression), "{name}: expected a problem at {expression}, got {err}");
    }
}

#[test]
fn demo_organisations_carry_their_sector() {
    let orgs = crate::fixture::organisations();
    assert_eq!(orgs.len(), 14);
    let crisis = orgs.iter().find(|o| o.id == wk::ORG_CRISIS_TEAM).expect("crisis team");
    assert_eq!(crisis.sector, Sector::MentalHealth);
    assert_eq!(crisis.partner_id(), wk::ORG_MH_TRUST);
    let police = orgs.iter().find(|o| o.id == wk::ORG_POLICE).expect("police");
    assert_eq!((police.sector, police.partner_id()), (Sector::Police, wk::ORG_POLICE));
}

#[test]
fn bad_organisations_are_located() {
    let no_sector = json!({ "resourceType": "Organization", "id": "o1", "name": "X", "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov" }] }] });
    assert!(Organisation::from_resource(&no_sector).expect_err("no sector").has_problem_at("Organization.type"));
    let bad_sector = json!({ "resourceType": "Organization", "id": "o1", "type": [{ "coding": [{ "system": carecircle_access::codes::SECTOR_SYSTEM, "code": "retail" }] }] });
    assert!(Organisation::from_resource(&bad_sector)
        .expect_err("bad sector")
        .has_problem_at("Organization.type[0].coding[0].code"));
    let bad_parent = json!({ "resourceType": "Organization", "id": "o1", "type": [{ "coding": [{ "system": carecircle_access::codes::SECTOR_SYSTEM, "code": "police" }] }], "partOf": { "reference": "Patient/p" } });
    assert!(Organisation::from_resource(&bad_parent)
        .expect_err("bad partOf")
        .has_problem_at("Organization.partOf.reference"));
}

#[test]
fn dpias_are_located() {
    let good = dpia_document_reference("dpia-1", &["dsa-1"], "2025-11-01", "DPIA");
    Dpia::from_document_reference(&good).expect("valid");
    let mut bad = good.clone();
    bad["type"]["coding"][0]["code"] = json!("minutes");
    bad["context"]["related"][0]["reference"] = json!("Patient/p1");
    let err = Dpia::from_document_reference(&bad).expect_err("bad");
    assert!(err.has_problem_at("DocumentReference.type"), "{err}");
    assert!(err.has_problem_at("DocumentReference.context.related[0].reference"), "{err}");
}
