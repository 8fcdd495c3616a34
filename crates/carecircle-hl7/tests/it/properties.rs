//! Property tests: serialising then parsing gives the message back for any delimiters and
//! values, parsing is idempotent, and no input makes the parser or the mapping panic.

use carecircle_hl7::{
    build_ack, fhir, parse_message, AckHeader, AdtEvent, AdtOptions, Component, Delimiters, Field, Message, Rejection,
    Repetition, Segment,
};
use proptest::prelude::*;
use time::macros::datetime;

fn delimiters() -> impl Strategy<Value = Delimiters> {
    let pool: Vec<char> = "|^~\\&#*!@$%+=/:;?<>".chars().collect();
    (proptest::sample::subsequence(pool, 6).prop_shuffle(), any::<bool>())
        .prop_map(|(chars, truncation)| Delimiters {
            field: chars[0],
            component: chars[1],
            repetition: chars[2],
            escape: chars[3],
            subcomponent: chars[4],
            truncation: truncation.then_some(chars[5]),
        })
        .prop_filter("valid", |d| Delimiters::from_msh(d.field, &d.encoding_characters()).is_ok())
}

/// Values full of characters that must be escaped: every delimiter candidate, CR, LF, escape
/// look-alikes and non-ASCII text.
fn value() -> impl Strategy<Value = String> {
    "([a-zA-Z0-9 ]|[|^~\\\\&#*!@$%+=/:;?<>]|\r|\n|\\\\X0D\\\\|\\\\F\\\\|é|ß|漢){0,8}"
}

fn field() -> impl Strategy<Value = Field> {
    let component = prop::collection::vec(value(), 1..3).prop_map(|subcomponents| Component { subcomponents });
    let repetition = prop::collection::vec(component, 1..4).prop_map(|components| Repetition { components });
    prop::collection::vec(repetition, 1..3).prop_map(|repetitions| Field { repetitions })
}

fn segment() -> impl Strategy<Value = Segment> {
    ("[A-Z][A-Z0-9]{2}", prop::collection::vec(field(), 0..5))
        .prop_filter("MSH only first", |(id, _)| id != "MSH")
        .prop_map(|(id, fields)| Segment { id, fields })
}

fn message() -> impl Strategy<Value = Message> {
    (delimiters(), prop::collection::vec(field(), 0..6), prop::collection::vec(segment(), 0..4)).prop_map(
        |(delimiters, header_fields, segments)| {
            let mut message = Message::new(delimiters);
            message.segments[0].fields.extend(header_fields);
            message.segments.extend(segments);
            message
        },
    )
}

/// Runs everything a receiver does with a message; none of it may panic.
fn process(bytes: &[u8]) {
    let now = datetime!(2024-01-01 00:00 UTC);
    let header = AckHeader::from_raw(bytes);
    match parse_message(bytes) {
        Ok(message) => {
            let reparsed = parse_message(message.serialise().as_bytes()).expect("a serialised message parses");
            assert_eq!(reparsed, message, "parsing is idempotent");
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
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn serialise_then_parse_round_trips(message in message()) {
        let text = message.serialise();
        prop_assert_eq!(parse_message(text.as_bytes()).unwrap(), message);
    }

    #[test]
    fn escape_round_trips(d in delimiters(), text in value()) {
        prop_assert_eq!(d.unescape(&d.escape(&text)), text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        process(&bytes);
    }

    #[test]
    fn header_prefixed_noise_never_panics(body in "(MSH|PID|PV1|EVN|MRG|[|^~\\\\&\r\n]|[A-Z0-9]|\\\\X[0-9A-F]{0,3}\\\\?){0,80}") {
        process(format!("MSH|^~\\&|APP|FAC|||20240101||ADT^A01|1|P|2.5\r{body}").as_bytes());
    }

    #[test]
    fn mutated_real_messages_never_panic(
        event in proptest::sample::select(crate::fixtures::EVENTS.to_vec()),
        cut in 0usize..2000,
        insert in "[|^~\\\\&\r]{0,3}",
    ) {
        let text = crate::fixtures::adt("2.5", event);
        let cut = cut.min(text.len());
        process(format!("{}{insert}{}", &text[..cut], &text[cut..]).as_bytes());
        process(&text.as_bytes()[..cut]);
    }
}
