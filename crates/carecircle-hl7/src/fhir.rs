//! ADT events as FHIR R4: the Encounter a visit event creates or updates, and the identifier
//! systems under which HL7 v2 identifiers are looked up in the person index.
//!
//! Identifier systems are deterministic, so the same visit number from the same sender always
//! yields the same `Encounter.identifier`, and a later A02/A03/A08/A11/A13 finds the Encounter
//! its A01/A04 created.

use serde_json::{json, Map, Value};

use crate::adt::{AdtEvent, AdtEventType};
use crate::datatypes::{ExtendedId, HierarchicDesignator};

/// The system of NHS numbers.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// The OID HL7 UK assigns to the NHS number.
const NHS_NUMBER_OID: &str = "2.16.840.1.113883.2.1.4.1";
/// The code system of `Encounter.class`.
pub const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const NULL_FLAVOR_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";
const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// Percent-encodes everything but unreserved URI characters, so any namespace id makes a valid,
/// unambiguous URN segment.
fn urn_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// The FHIR identifier system for an HL7 v2 identifier from a sender:
/// - the NHS number (type `NH`, authority `NHS`, or the NHS number OID) → [`NHS_NUMBER_SYSTEM`];
/// - an authority with an OID → `urn:oid:{oid}`;
/// - otherwise a system scoped by the sending facility, so two partners' local `MRN`s never
///   collide: `urn:carecircle:hl7v2:{facility}:{authority or type code}`.
pub fn identifier_system(identifier: &ExtendedId, sending_facility: &HierarchicDesignator) -> String {
    let authority = &identifier.assigning_authority;
    let is_nhs_number = identifier.type_code.eq_ignore_ascii_case("NH")
        || authority.namespace_id.eq_ignore_ascii_case("NHS")
        || authority.universal_id == NHS_NUMBER_OID;
    if is_nhs_number {
        return NHS_NUMBER_SYSTEM.to_owned();
    }
    if let Some(oid) = authority.oid() {
        return format!("urn:oid:{oid}");
    }
    let scope = if authority.is_empty() {
        if identifier.type_code.is_empty() {
            "id"
        } else {
            identifier.type_code.as_str()
        }
    } else {
        authority.key()
    };
    format!("urn:carecircle:hl7v2:{}:{}", urn_segment(sending_facility.key()), urn_segment(scope))
}

/// One HL7 identifier as a FHIR `Identifier` (system, value and, when given, the v2-0203 type).
pub fn to_fhir_identifier(identifier: &ExtendedId, sending_facility: &HierarchicDesignator) -> Value {
    let mut out = Map::new();
    if !identifier.type_code.is_empty() {
        out.insert(
            "type".into(),
            json!({ "coding": [{ "system": IDENTIFIER_TYPE_SYSTEM, "code": identifier.type_code }] }),
        );
    }
    out.insert("system".into(), Value::String(identifier_system(identifier, sending_facility)));
    out.insert("value".into(), Value::String(identifier.id.clone()));
    Value::Object(out)
}

/// The patient's PID-3 identifiers as FHIR `Identifier`s, for the person index lookup.
pub fn patient_identifiers(event: &AdtEvent) -> Vec<Value> {
    event.patient.identifiers.iter().map(|id| to_fhir_identifier(id, &event.sending_facility)).collect()
}

/// The identifier of the visit's Encounter (from PV1-19), when the message carries one.
pub fn visit_identifier(event: &AdtEvent) -> Option<Value> {
    let visit_number = event.visit.as_ref()?.visit_number.as_ref()?;
    // A visit number names the visit, whatever CX-5 says, and is the Encounter's business key.
    Some(json!({
        "use": "official",
        "system": identifier_system(visit_number, &event.sending_facility),
        "value": visit_number.id,
    }))
}

/// The Encounter status an event leaves the visit in.
pub fn encounter_status(event: &AdtEvent) -> &'static str {
    let discharged = event.visit.as_ref().is_some_and(|v| v.discharge_time.is_some());
    match event.event {
        AdtEventType::Admit | AdtEventType::Transfer | AdtEventType::CancelDischarge => "in-progress",
        AdtEventType::Register => "arrived",
        AdtEventType::Discharge => "finished",
        AdtEventType::CancelAdmit => "entered-in-error",
        AdtEventType::Update if discharged => "finished",
        AdtEventType::Update => "in-progress",
        AdtEventType::Merge => "unknown",
    }
}

/// `Encounter.class` from PV1-2 (HL7 table 0004) as a v3 ActCode.
fn encounter_class(patient_class: &str) -> Value {
    let (system, code, display) = match patient_class {
        "E" => (ACT_CODE_SYSTEM, "EMER", "emergency"),
        "I" | "B" => (ACT_CODE_SYSTEM, "IMP", "inpatient encounter"),
        "O" | "R" | "C" => (ACT_CODE_SYSTEM, "AMB", "ambulatory"),
        "P" => (ACT_CODE_SYSTEM, "PRENC", "pre-admission"),
        "N" => (NULL_FLAVOR_SYSTEM, "NA", "not applicable"),
        _ => (NULL_FLAVOR_SYSTEM, "UNK", "unknown"),
    };
    json!({ "system": system, "code": code, "display": display })
}

/// The FHIR R4 Encounter for a visit event, or `None` for events without a visit (A40).
///
/// - `identifier`: the visit number (see [`visit_identifier`]), so updates find it;
/// - `status`: see [`encounter_status`] (A01/A02/A13 in-progress, A04 arrived, A03 finished,
///   A11 entered-in-error, A08 finished when a discharge time is given);
/// - `class`: PV1-2 as v3 ActCode EMER/IMP/AMB/PRENC;
/// - `subject` and `serviceProvider`: the given references (`Patient/…`, `Organization/…`);
/// - `location`: PV1-3 (active, or completed after a discharge) and for A02 PV1-6 (completed),
///   as display-only references;
/// - `period`: PV1-44 (else EVN-6/EVN-2 for A01/A04) to PV1-45 (else EVN-6/EVN-2 for A03);
///   A13 never carries an end.
pub fn to_encounter(event: &AdtEvent, patient_reference: &str, organization_reference: &str) -> Option<Value> {
    let visit = event.visit.as_ref()?;
    let status = encounter_status(event);
    let mut encounter = Map::new();
    encounter.insert("resourceType".into(), Value::String("Encounter".into()));
    if let Some(identifier) = visit_identifier(event) {
        encounter.insert("identifier".into(), Value::Array(vec![identifier]));
    }
    encounter.insert("status".into(), Value::String(status.into()));
    encounter.insert("class".into(), encounter_class(&visit.patient_class));
    encounter.insert("subject".into(), json!({ "reference": patient_reference }));

    let event_time = event.occurred_time.or(event.recorded_time);
    let start = visit.admit_time.or(match event.event {
        AdtEventType::Admit | AdtEventType::Register => event_time,
        _ => None,
    });
    let end = match event.event {
        AdtEventType::CancelDischarge | AdtEventType::CancelAdmit => None,
        AdtEventType::Discharge => visit.discharge_time.or(event_time),
        _ => visit.discharge_time,
    };
    let mut period = Map::new();
    if let Some(start) = start {
        period.insert("start".into(), Value::String(start.to_fhir_date_time()));
    }
    if let Some(end) = end {
        period.insert("end".into(), Value::String(end.to_fhir_date_time()));
    }
    if !period.is_empty() {
        encounter.insert("period".into(), Value::Object(period));
    }

    let mut locations = Vec::new();
    if event.event == AdtEventType::Transfer {
        if let Some(prior) = &visit.prior_location {
            locations.push(json!({ "location": { "display": prior.display() }, "status": "completed" }));
        }
    }
    if let Some(current) = &visit.location {
        let location_status = if status == "finished" { "completed" } else { "active" };
        locations.push(json!({ "location": { "display": current.display() }, "status": location_status }));
    }
    if !locations.is_empty() {
        encounter.insert("location".into(), Value::Array(locations));
    }
    encounter.insert("serviceProvider".into(), json!({ "reference": organization_reference }));
    Some(Value::Object(encounter))
}

/// A FHIR R4 Patient built from PID, for a person the index does not know yet: identifiers,
/// names, gender, birth date and addresses.
pub fn to_patient(event: &AdtEvent) -> Value {
    let patient = &event.patient;
    let mut out = Map::new();
    out.insert("resourceType".into(), Value::String("Patient".into()));
    out.insert("identifier".into(), Value::Array(patient_identifiers(event)));
    let names: Vec<Value> = patient
        .names
        .iter()
        .map(|n| {
            let mut name = Map::new();
            if n.name_type == "L" {
                name.insert("use".into(), Value::String("official".into()));
            }
            if !n.family.is_empty() {
                name.insert("family".into(), Value::String(n.family.clone()));
            }
            if !n.given.is_empty() {
                name.insert("given".into(), json!(n.given));
            }
            if !n.prefix.is_empty() {
                name.insert("prefix".into(), json!([n.prefix]));
            }
            if !n.suffix.is_empty() {
                name.insert("suffix".into(), json!([n.suffix]));
            }
            Value::Object(name)
        })
        .collect();
    if !names.is_empty() {
        out.insert("name".into(), Value::Array(names));
    }
    let gender = match patient.sex.as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" | "A" => Some("other"),
        "U" | "N" => Some("unknown"),
        _ => None,
    };
    if let Some(gender) = gender {
        out.insert("gender".into(), Value::String(gender.into()));
    }
    if let Some(birth_date) = &patient.birth_date {
        out.insert("birthDate".into(), Value::String(birth_date.to_fhir_date()));
    }
    let addresses: Vec<Value> = patient
        .addresses
        .iter()
        .map(|a| {
            let mut address = Map::new();
            if !a.lines.is_empty() {
                address.insert("line".into(), json!(a.lines));
            }
            for (key, value) in
                [("city", &a.city), ("district", &a.district), ("postalCode", &a.postal_code), ("country", &a.country)]
            {
                if !value.is_empty() {
                    address.insert(key.into(), Value::String(value.clone()));
                }
            }
            Value::Object(address)
        })
        .filter(|a| a.as_object().is_some_and(|o| !o.is_empty()))
        .collect();
    if !addresses.is_empty() {
        out.insert("address".into(), Value::Array(addresses));
    }
    Value::Object(out)
}
