//! ADT events read from realistic messages of every accepted version, their refusals, and the
//! FHIR resources they map to.

use carecircle_hl7::fhir::{identifier_system, patient_identifiers, to_encounter, to_patient, NHS_NUMBER_SYSTEM};
use carecircle_hl7::{
    parse_message, AckCode, AdtError, AdtEvent, AdtEventType, AdtOptions, ErrorCode, LocalTime, Version,
};
use serde_json::{json, Value};

use crate::fixtures::{adt, EVENTS, VERSIONS};

fn read(text: &str) -> Result<AdtEvent, AdtError> {
    AdtEvent::from_message(&parse_message(text.as_bytes()).unwrap(), &AdtOptions::default())
}

fn assert_valid_fhir(resource: &Value) {
    let issues = carecircle_fhir::validate::validate_resource(resource);
    assert!(issues.is_empty(), "{issues:?} in {resource:#}");
}

#[test]
fn every_event_in_every_version_is_read_and_mapped() {
    let visit_system = "urn:carecircle:hl7v2:RXX01:RXX";
    for version in VERSIONS {
        for event_code in EVENTS {
            let context = format!("{event_code} v{version}");
            let event = read(&adt(version, event_code)).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_eq!(event.event.code(), event_code, "{context}");
            assert_eq!(Some(event.version), Version::from_code(version), "{context}");
            assert_eq!(event.control_id, format!("MSG-{event_code}-{version}"));
            assert_eq!(event.sending_facility.namespace_id, "RXX01");
            assert_eq!(event.patient.identifiers.len(), 2, "{context}");
            let identifiers = patient_identifiers(&event);
            assert_eq!(identifiers[0]["system"], NHS_NUMBER_SYSTEM);
            assert_eq!(identifiers[0]["value"], "9434765919");
            assert_eq!(identifiers[1]["system"], "urn:carecircle:hl7v2:RXX01:RXX");
            assert_eq!(event.occurred_time.is_some(), version != "2.3", "{context}");

            let encounter = to_encounter(&event, "Patient/p1", "Organization/rxx");
            if event.event == AdtEventType::Merge {
                assert_eq!(encounter, None);
                assert_eq!(event.prior_identifiers.len(), 1);
                assert_eq!(event.prior_identifiers[0].id, "RXX999999");
                continue;
            }
            let encounter = encounter.unwrap_or_else(|| panic!("{context}: no encounter"));
            assert_valid_fhir(&encounter);
            let expected_status = match event_code {
                "A01" | "A02" | "A08" | "A13" => "in-progress",
                "A03" => "finished",
                "A04" => "arrived",
                "A11" => "entered-in-error",
                _ => unreachable!(),
            };
            assert_eq!(encounter["status"], expected_status, "{context}");
            assert_eq!(encounter["identifier"][0]["system"], visit_system, "{context}");
            assert_eq!(encounter["identifier"][0]["value"], "V00042", "{context}");
            assert_eq!(encounter["subject"]["reference"], "Patient/p1");
            assert_eq!(encounter["serviceProvider"]["reference"], "Organization/rxx");
            assert_eq!(encounter["class"]["code"], if event_code == "A04" { "EMER" } else { "IMP" }, "{context}");
            assert_eq!(encounter["period"]["start"], "2024-03-01T10:00:00Z", "{context}");
            let end = if event_code == "A03" { json!("2024-03-05T14:00:00Z") } else { Value::Null };
            assert_eq!(encounter["period"]["end"], end, "{context}");
            let locations = encounter["location"].as_array().unwrap();
            let current = locations.last().unwrap();
            let expected_location =
                if event_code == "A04" { "ED, MAJORS, CUB4 (RXX01)" } else { "WARD1, BAY2, BED3 (RXX01)" };
            assert_eq!(current["location"]["display"], expected_location, "{context}");
            assert_eq!(current["status"], if event_code == "A03" { "completed" } else { "active" }, "{context}");
            if event_code == "A02" {
                assert_eq!(locations.len(), 2);
                assert_eq!(locations[0]["location"]["display"], "AMU, BAY1, BED7 (RXX01)");
                assert_eq!(locations[0]["status"], "completed");
            }
        }
    }
}

#[test]
fn patient_resource_from_pid_is_valid_fhir() {
    let event = read(&adt("2.4", "A01")).unwrap();
    let patient = to_patient(&event);
    assert_valid_fhir(&patient);
    assert_eq!(patient["name"][0]["family"], "SMITH");
    assert_eq!(patient["name"][0]["given"], json!(["JOHN", "PAUL"]));
    assert_eq!(patient["name"][0]["use"], "official");
    assert_eq!(patient["gender"], "male");
    assert_eq!(patient["birthDate"], "1970-01-01");
    assert_eq!(patient["address"][0]["postalCode"], "LS1 1AA");
    assert_eq!(patient["identifier"][1]["type"]["coding"][0]["code"], "MR");
}

#[test]
fn local_times_use_the_senders_offset_and_explicit_offsets_win() {
    let text = adt("2.5", "A01").replace("20240301100000", "20240701100000");
    let message = parse_message(text.as_bytes()).unwrap();
    let bst = AdtOptions { local_time: LocalTime::zone("Europe/London").unwrap() };
    let event = AdtEvent::from_message(&message, &bst).unwrap();
    let encounter = to_encounter(&event, "Patient/p", "Organization/o").unwrap();
    assert_eq!(encounter["period"]["start"], "2024-07-01T10:00:00+01:00");

    let explicit = text.replace("20240701100000", "20240701100000-0500");
    let event = AdtEvent::from_message(&parse_message(explicit.as_bytes()).unwrap(), &bst).unwrap();
    let encounter = to_encounter(&event, "Patient/p", "Organization/o").unwrap();
    assert_eq!(encounter["period"]["start"], "2024-07-01T10:00:00-05:00");
}

#[test]
fn update_with_discharge_time_finishes_and_cancel_discharge_reopens() {
    let a08 = adt("2.5.1", "A08").replace("|20240301100000\r", "|20240301100000|20240302090000\r");
    let event = read(&a08).unwrap();
    assert_eq!(to_encounter(&event, "Patient/p", "Organization/o").unwrap()["status"], "finished");
    let a13 = adt("2.5.1", "A13").replace("|20240301100000\r", "|20240301100000|20240302090000\r");
    let encounter = to_encounter(&read(&a13).unwrap(), "Patient/p", "Organization/o").unwrap();
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(encounter["period"].get("end"), None);
}

#[test]
fn identifier_systems_prefer_nhs_number_then_oids_then_facility_scope() {
    let event = read(&adt("2.5", "A01").replace(
        "9434765919^^^NHS^NH~RXX123456^^^RXX^MR",
        "9434765919^^^&2.16.840.1.113883.2.1.4.1&ISO~55^^^LAB&1.2.3&ISO^MR~77^^^^PI~88~99^^^A B/C^MR",
    ))
    .unwrap();
    let systems: Vec<String> =
        event.patient.identifiers.iter().map(|id| identifier_system(id, &event.sending_facility)).collect();
    assert_eq!(
        systems,
        [
            NHS_NUMBER_SYSTEM,
            "urn:oid:1.2.3",
            "urn:carecircle:hl7v2:RXX01:PI",
            "urn:carecircle:hl7v2:RXX01:id",
            "urn:carecircle:hl7v2:RXX01:A%20B%2FC",
        ]
    );
}

/// Each broken message, the acknowledgement code and HL7 error code it must get, and where.
#[test]
fn refusals_are_typed_and_located() {
    let base = adt("2.5", "A01");
    let a40 = adt("2.4", "A40");
    let cases: Vec<(&str, String, AckCode, ErrorCode, Option<&str>)> = vec![
        (
            "not ADT",
            base.replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"),
            AckCode::Reject,
            ErrorCode::UnsupportedMessageType,
            Some("MSH-9.1"),
        ),
        (
            "A05",
            base.replace("ADT^A01^ADT_A01", "ADT^A05^ADT_A05"),
            AckCode::Reject,
            ErrorCode::UnsupportedEventCode,
            Some("MSH-9.2"),
        ),
        ("v2.6", base.replace("|P|2.5|", "|P|2.6|"), AckCode::Reject, ErrorCode::UnsupportedVersionId, Some("MSH-12")),
        ("v2.2", base.replace("|P|2.5|", "|P|2.2|"), AckCode::Reject, ErrorCode::UnsupportedVersionId, Some("MSH-12")),
        (
            "processing id",
            base.replace("|P|2.5|", "|X|2.5|"),
            AckCode::Reject,
            ErrorCode::UnsupportedProcessingId,
            Some("MSH-11"),
        ),
        (
            "no processing id",
            base.replace("|P|2.5|", "||2.5|"),
            AckCode::Reject,
            ErrorCode::RequiredFieldMissing,
            Some("MSH-11"),
        ),
        (
            "no control id",
            base.replace("|MSG-A01-2.5|", "||"),
            AckCode::Reject,
            ErrorCode::RequiredFieldMissing,
            Some("MSH-10"),
        ),
        (
            "no facility",
            base.replace("|RXX01^2.16.840.1.113883.2.1.3.2.4.18.48^ISO|", "||"),
            AckCode::Reject,
            ErrorCode::RequiredFieldMissing,
            Some("MSH-4"),
        ),
        (
            "no PID",
            base.split('\r').filter(|l| !l.starts_with("PID")).collect::<Vec<_>>().join("\r"),
            AckCode::Error,
            ErrorCode::SegmentSequenceError,
            None,
        ),
        (
            "no PV1",
            base.split('\r').filter(|l| !l.starts_with("PV1")).collect::<Vec<_>>().join("\r"),
            AckCode::Error,
            ErrorCode::SegmentSequenceError,
            None,
        ),
        (
            "empty PID-3",
            base.replace("9434765919^^^NHS^NH~RXX123456^^^RXX^MR", "^^^NHS^NH~\"\""),
            AckCode::Error,
            ErrorCode::RequiredFieldMissing,
            Some("PID-3"),
        ),
        (
            "empty PV1-2",
            base.replace("PV1|1|I|", "PV1|1||"),
            AckCode::Error,
            ErrorCode::RequiredFieldMissing,
            Some("PV1-2"),
        ),
        (
            "bad PV1-44",
            base.replace("|20240301100000\r", "|2024-03-01\r"),
            AckCode::Error,
            ErrorCode::DataTypeError,
            Some("PV1-44"),
        ),
        (
            "bad birth date",
            base.replace("|19700101|", "|19700231|"),
            AckCode::Error,
            ErrorCode::DataTypeError,
            Some("PID-7"),
        ),
        (
            "bad EVN-2",
            base.replace("EVN|A01|20240301101500", "EVN|A01|yesterday"),
            AckCode::Error,
            ErrorCode::DataTypeError,
            Some("EVN-2"),
        ),
        (
            "A40 without MRG",
            a40.replace("MRG|RXX999999^^^RXX^MR\r", ""),
            AckCode::Error,
            ErrorCode::SegmentSequenceError,
            None,
        ),
        (
            "A40 empty MRG-1",
            a40.replace("MRG|RXX999999^^^RXX^MR", "MRG|"),
            AckCode::Error,
            ErrorCode::RequiredFieldMissing,
            Some("MRG-1"),
        ),
        (
            "A40 two pairs",
            format!("{a40}PID|2||123^^^RXX^MR\rMRG|456^^^RXX^MR\r"),
            AckCode::Error,
            ErrorCode::SegmentSequenceError,
            None,
        ),
    ];
    for (name, text, ack_code, error_code, location) in cases {
        let error = read(&text).expect_err(name);
        let rejection = error.to_rejection();
        assert_eq!(rejection.ack_code, ack_code, "{name}: {error}");
        assert_eq!(rejection.error_code, error_code, "{name}: {error}");
        assert_eq!(rejection.location.map(|l| l.to_string()).as_deref(), location, "{name}: {error}");
        assert!(!rejection.reason.is_empty());
    }
}

#[test]
fn event_code_falls_back_to_evn_1() {
    let text = adt("2.3", "A03").replace("ADT^A03", "ADT");
    assert_eq!(read(&text).unwrap().event, AdtEventType::Discharge);
}

/// The FHIR resources of one admission's life (v2.5.1), as reviewed JSON.
#[test]
fn encounter_and_patient_snapshots() {
    let mut resources = serde_json::Map::new();
    for event_code in ["A01", "A02", "A03", "A04", "A08", "A11", "A13"] {
        let event = read(&adt("2.5.1", event_code)).unwrap();
        resources.insert(event_code.into(), to_encounter(&event, "Patient/p1", "Organization/rxx").unwrap());
    }
    resources.insert("Patient".into(), to_patient(&read(&adt("2.5.1", "A01")).unwrap()));
    insta::assert_json_snapshot!(Value::Object(resources));
}

/// Messages as engines really send them: LF endings, trailing delimiters, extra segments,
/// ISO 8859-1 names, escaped delimiters in values, empty components.
#[test]
fn messages_from_the_wild() {
    // v2.3 A08 from an old PAS: LF line ends, ISO 8859-1, no MSH-9.3, PD1 and Z segments.
    let mut a08 = b"MSH|^~\\&|OLDPAS|RYY|||20230101120000||ADT^A08|X1|P|2.3|||||\n\
EVN|A08|20230101120000|||\n\
PID|||123456^^^RYY^MR^||O'BRIEN^SE"
        .to_vec();
    a08.push(0xC1); // Á in ISO 8859-1
    a08.extend_from_slice(
        b"N^^^^||19450507|F|||FLAT 3\\T\\4^^CORK^^^IRL||\n\
PD1|||GP PRACTICE^^Y12345\n\
PV1||O|CLINIC A^^^RYY||||||||||||||||OP778899|||||||||||||||||||||||||||\n\
ZPI|whatever|the|engine|adds\n",
    );
    let message = parse_message(&a08).unwrap();
    let event = AdtEvent::from_message(&message, &AdtOptions::default()).unwrap();
    assert_eq!(event.event, AdtEventType::Update);
    assert_eq!(event.patient.names[0].family, "O'BRIEN");
    assert_eq!(event.patient.names[0].given, ["SE\u{c1}N"]);
    assert_eq!(event.patient.addresses[0].lines, ["FLAT 3&4"]);
    let encounter = to_encounter(&event, "Patient/p", "Organization/o").unwrap();
    assert_valid_fhir(&encounter);
    assert_eq!(encounter["class"]["code"], "AMB");
    // PV1-19 without an authority: scoped by the sending facility.
    assert_eq!(encounter["identifier"][0]["system"], "urn:carecircle:hl7v2:RYY:id");
    assert_eq!(encounter["identifier"][0]["value"], "OP778899");
    assert_eq!(encounter["location"][0]["location"]["display"], "CLINIC A (RYY)");

    // v2.5.1 A03 with CRLF, a repeated PV1-45, offsets, and ED patient class.
    let pv1 = crate::fixtures::segment(
        "PV1",
        &[
            (1, "1"),
            (2, "E"),
            (3, "ED^^^RXX01"),
            (19, "ED-ATT-5^^^RXX01^VN"),
            (44, "20240301180000+0000"),
            (45, "20240301225500+0000~20240301225900+0000"),
        ],
    );
    let a03 = format!(
        "MSH|^~\\&|EDIS|RXX01^^|CC|CC|20240301230000+0000||ADT^A03^ADT_A03|ED-99|P|2.5.1\r\n\
EVN||20240301230000+0000\r\n\
PID|1||9434765919^^^NHS^NH^^20200101||DOE^JANE^^^MS||19900101|F\r\n\
{pv1}|\r\n"
    );
    let event = read(&a03).unwrap();
    let encounter = to_encounter(&event, "Patient/p", "Organization/o").unwrap();
    assert_valid_fhir(&encounter);
    assert_eq!(encounter["status"], "finished");
    assert_eq!(encounter["class"]["code"], "EMER");
    assert_eq!(encounter["period"], json!({ "start": "2024-03-01T18:00:00Z", "end": "2024-03-01T22:55:00Z" }));
    assert_eq!(encounter["identifier"][0]["system"], "urn:carecircle:hl7v2:RXX01:RXX01");
    assert_eq!(encounter["identifier"][0]["value"], "ED-ATT-5");
}
