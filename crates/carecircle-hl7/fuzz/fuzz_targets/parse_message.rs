//! Fuzzes the HL7 v2 parser and everything a receiver does after it: parsing must never panic,
//! a parsed message must serialise to text that parses back to the same message, and ADT
//! reading, FHIR mapping and acknowledgement building must never panic.

#![no_main]

use carecircle_hl7::{build_ack, fhir, parse_message, AckHeader, AdtEvent, AdtOptions, Rejection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let header = AckHeader::from_raw(data);
    match parse_message(data) {
        Ok(message) => {
            let reparsed = parse_message(message.serialise().as_bytes());
            assert_eq!(reparsed.as_ref(), Ok(&message), "serialise then parse must round-trip");
            match AdtEvent::from_message(&message, &AdtOptions::default()) {
                Ok(event) => {
                    let _ = fhir::to_encounter(&event, "Patient/p", "Organization/o");
                    let _ = fhir::to_patient(&event);
                    let _ = build_ack(&header, Ok(()), "1", now);
                }
                Err(error) => {
                    let _ = build_ack(&header, Err(&error.to_rejection()), "1", now);
                }
            }
        }
        Err(error) => {
            let _ = build_ack(&header, Err(&Rejection::from_parse_error(&error)), "1", now);
        }
    }
});
