//! The CPU cost of one ADT message without I/O: parse, read as an ADT event, map to a FHIR
//! Encounter and Patient, build the ACK. One thread.
//!
//! `cargo run --release -p carecircle-hl7 --example adt_cpu -- [MESSAGES]`

use std::time::Instant;

use carecircle_hl7::{build_ack, fhir, parse_message, AckHeader, AdtEvent, AdtOptions, LocalTime};

fn message(i: u64) -> String {
    format!(
        "MSH|^~\\&|PAS|RXX01|CARECIRCLE|CC|20240301101502||ADT^A01^ADT_A01|LOAD{i}|P|2.5.1\r\
EVN|A01|20240301101500|||JSMITH^SMITH^JANE|20240301095500\r\
PID|1||9{i:09}^^^NHS^NH~RXX{i}^^^RXX^MR||SMITH^JOHN^PAUL^^MR^^L||19700101|M|||1 HIGH ST^FLAT 2^LEEDS^^LS1 1AA^GBR^H||0113 496 0000^PRN^PH\r\
NK1|1|SMITH^MARY|SPO^Spouse\r\
PV1|1|I|WARD1^BAY2^BED3^RXX01||||C1234^JONES^ALAN^^^DR|||MED|||||||||V{i}^^^RXX^VN|||||||||||||||||||||||||20240301100000\r\
AL1|1|DA|PENICILLIN^Penicillin|SV|Anaphylaxis\r"
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(200_000);
    let messages: Vec<String> = (0..n).map(message).collect();
    let options = if std::env::var_os("UTC").is_some() {
        AdtOptions::default()
    } else {
        AdtOptions { local_time: LocalTime::zone("Europe/London")? }
    };
    let now = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut bytes = 0usize;
    for raw in &messages {
        let parsed = parse_message(raw.as_bytes())?;
        let event = AdtEvent::from_message(&parsed, &options)?;
        let encounter = fhir::to_encounter(&event, "Patient/p", "Organization/o");
        let patient = fhir::to_patient(&event);
        let ack = build_ack(&AckHeader::from_message(&parsed), Ok(()), "1", now);
        bytes += ack.len() + usize::from(encounter.is_some()) + usize::from(patient.is_object());
    }
    let elapsed = started.elapsed();
    println!(
        "{n} messages in {:.2} s: {:.1} µs per message, {:.0} messages/s on one thread ({bytes} bytes out)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
