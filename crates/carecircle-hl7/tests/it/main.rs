//! Integration tests of carecircle-hl7: realistic ADT messages in every accepted version,
//! acknowledgements, FHIR mapping, and property tests of the parser.

mod ack;
mod adt;
mod fixtures;
mod properties;
