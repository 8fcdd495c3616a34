//! Acknowledgements: sender and receiver swapped, control id echoed, ERR in the style of the
//! incoming version, and an answer even for garbage.

use carecircle_hl7::{
    build_ack, parse_ack, parse_message, AckCode, AckHeader, AdtEvent, AdtOptions, ErrorCode, Location, Rejection,
};
use time::macros::datetime;

use crate::fixtures::adt;

const NOW: time::OffsetDateTime = datetime!(2024-03-01 10:15:03 +00:00);

#[test]
fn accept_swaps_sender_and_receiver_and_echoes_the_control_id() {
    let message = parse_message(adt("2.5.1", "A01").as_bytes()).unwrap();
    let ack = build_ack(&AckHeader::from_message(&message), Ok(()), "ACK-1", NOW);
    assert_eq!(
        ack,
        "MSH|^~\\&|CARECIRCLE|CC|PAS|RXX01^2.16.840.1.113883.2.1.3.2.4.18.48^ISO|20240301101503+0000||ACK^A01^ACK|ACK-1|P|2.5.1\r\
MSA|AA|MSG-A01-2.5.1\r"
    );
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!((summary.code, summary.control_id.as_str()), (AckCode::Accept, "MSG-A01-2.5.1"));
    assert_eq!((summary.error_code, summary.text), (None, None));
}

#[test]
fn v2_5_error_has_err_2_3_4_and_8() {
    let text = adt("2.5", "A01").replace("PV1|1|I|", "PV1|1||");
    let message = parse_message(text.as_bytes()).unwrap();
    let rejection = AdtEvent::from_message(&message, &AdtOptions::default()).unwrap_err().to_rejection();
    let ack = build_ack(&AckHeader::from_message(&message), Err(&rejection), "ACK-2", NOW);
    let lines: Vec<&str> = ack.split('\r').collect();
    assert_eq!(lines[1], "MSA|AE|MSG-A01-2.5");
    assert_eq!(
        lines[2],
        "ERR|PV1^1^2^101&Required field missing&HL70357|PV1^1^2|101^Required field missing^HL70357|E||||PV1-2 (patient class) is required"
    );
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!(summary.code, AckCode::Error);
    assert_eq!(summary.error_code.as_deref(), Some("101"));
    assert_eq!(summary.text.as_deref(), Some("PV1-2 (patient class) is required"));
}

#[test]
fn v2_3_error_uses_err_1_and_msa_3() {
    let text = adt("2.3", "A01").replace("ADT^A01", "ADT^A05");
    let message = parse_message(text.as_bytes()).unwrap();
    let rejection = AdtEvent::from_message(&message, &AdtOptions::default()).unwrap_err().to_rejection();
    let ack = build_ack(&AckHeader::from_message(&message), Err(&rejection), "ACK-3", NOW);
    let lines: Vec<&str> = ack.split('\r').collect();
    assert!(lines[0].ends_with("|ACK^A05|ACK-3|P|2.3"), "{}", lines[0]);
    assert!(lines[1].starts_with("MSA|AR|MSG-A01-2.3|event `A05` is not supported"), "{}", lines[1]);
    assert_eq!(lines[2], "ERR|MSH^1^9^201&Unsupported event code&HL70357");
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!((summary.code, summary.error_code.as_deref()), (AckCode::Reject, Some("201")));
    assert!(summary.text.unwrap().contains("A05"));
}

#[test]
fn internal_errors_answer_ae_207() {
    let message = parse_message(adt("2.4", "A03").as_bytes()).unwrap();
    let rejection = Rejection::internal_error("storage unavailable, send again");
    let ack = build_ack(&AckHeader::from_message(&message), Err(&rejection), "ACK-4", NOW);
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!((summary.code, summary.error_code.as_deref()), (AckCode::Error, Some("207")));
    assert!(ack.contains("|ACK^A03^ACK|ACK-4|P|2.4\r"));
}

#[test]
fn garbage_is_rejected_with_whatever_header_can_be_salvaged() {
    // No MSH at all: an AR with empty routing and control id, still a valid ACK.
    let raw = b"hello, is this the hospital?";
    let error = parse_message(raw).unwrap_err();
    let rejection = Rejection::from_parse_error(&error);
    let ack = build_ack(&AckHeader::from_raw(raw), Err(&rejection), "ACK-5", NOW);
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!(summary.code, AckCode::Reject);
    assert_eq!(summary.control_id, "");

    // A good header and a broken body: the ACK still routes back and echoes the control id,
    // without the broken segment's content.
    let raw = format!("{}xx1|SECRET NAME\r", adt("2.5", "A01"));
    let error = parse_message(raw.as_bytes()).unwrap_err();
    let rejection = Rejection::from_parse_error(&error);
    assert_eq!(rejection.ack_code, AckCode::Error);
    assert_eq!(rejection.error_code, ErrorCode::SegmentSequenceError);
    let ack = build_ack(&AckHeader::from_raw(raw.as_bytes()), Err(&rejection), "ACK-6", NOW);
    assert!(!ack.contains("SECRET"));
    let summary = parse_ack(ack.as_bytes()).unwrap();
    assert_eq!((summary.code, summary.control_id.as_str()), (AckCode::Error, "MSG-A01-2.5"));
}

#[test]
fn reasons_with_delimiters_are_escaped() {
    let message = parse_message(adt("2.5", "A01").as_bytes()).unwrap();
    let rejection = Rejection {
        ack_code: AckCode::Error,
        error_code: ErrorCode::DataTypeError,
        location: Some(Location::component("PID", 1, 5, 1)),
        reason: "bad value `A|B^C`".into(),
    };
    let ack = build_ack(&AckHeader::from_message(&message), Err(&rejection), "ACK-7", NOW);
    assert!(ack.contains(r"bad value `A\F\B\S\C`"));
    assert!(ack.contains("|PID^1^5^1^1|"), "{ack}");
    assert_eq!(parse_ack(ack.as_bytes()).unwrap().text.as_deref(), Some("bad value `A|B^C`"));
}
