//! HL7 v2 for carecircle: a robust message parser and serialiser, original-mode
//! acknowledgements, and ADT events (A01, A02, A03, A04, A08, A11, A13, A40; versions 2.3 to
//! 2.5.1) mapped to FHIR R4. Pure: no I/O, no async runtime.
//!
//! The flow a receiver follows for one message:
//! 1. [`parse_message`] the bytes; on error answer [`Rejection::from_parse_error`].
//! 2. [`AdtEvent::from_message`]; on error answer [`AdtError::to_rejection`].
//! 3. Map [`AdtEvent::sending_facility`] to a partner, find the patient by
//!    [`fhir::patient_identifiers`], write [`fhir::to_encounter`] durably.
//! 4. Answer [`build_ack`] with `Ok(())` only once the write is durable.

#![forbid(unsafe_code)]

mod ack;
mod adt;
mod datatypes;
mod delimiters;
pub mod fhir;
mod message;

pub use ack::{build_ack, parse_ack, AckCode, AckHeader, AckParseError, AckSummary, ErrorCode, Rejection};
pub use adt::{AdtError, AdtEvent, AdtEventType, AdtOptions, PatientDetails, Version, Visit};
pub use datatypes::{
    Address, ExtendedId, HierarchicDesignator, LocalTime, PersonLocation, PersonName, Precision, Timestamp,
    TimestampError, UnknownTimeZone,
};
pub use delimiters::{DelimiterError, Delimiters};
pub use message::{
    parse_header, parse_message, Component, Field, Location, Message, ParseError, Repetition, Segment, MAX_ELEMENTS,
};
