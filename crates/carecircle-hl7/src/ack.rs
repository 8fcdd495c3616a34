//! Original-mode acknowledgements: `ACK` messages with MSA (`AA`, `AE`, `AR`) and, when the
//! message was not processed, an ERR segment in the style of the incoming message's version.

use std::fmt;

use thiserror::Error;
use time::OffsetDateTime;

use crate::message::{parse_header, parse_message, Field, Location, Message, ParseError, Repetition, Segment};

/// MSA-1, the acknowledgement code (HL7 table 0008, original mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: processed and stored.
    Accept,
    /// `AE`: not processed because of an error in its content or in processing; the sender
    /// should correct it or send it again.
    Error,
    /// `AR`: rejected for its type, version, processing id or header; sending it again as it
    /// is will not help.
    Reject,
}

impl AckCode {
    /// The two-letter code.
    pub fn code(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }

    /// Reads an original-mode or enhanced-mode code (`CA`/`CE`/`CR` are read as their
    /// original-mode equivalents).
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "AA" | "CA" => Some(AckCode::Accept),
            "AE" | "CE" => Some(AckCode::Error),
            "AR" | "CR" => Some(AckCode::Reject),
            _ => None,
        }
    }
}

impl fmt::Display for AckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An HL7 error condition code (HL7 table 0357), for ERR-3 (v2.5) and ERR-1.4 (v2.3/2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 100: a segment is missing or out of order.
    SegmentSequenceError,
    /// 101: a required field is empty.
    RequiredFieldMissing,
    /// 102: a field's value has the wrong form.
    DataTypeError,
    /// 103: a coded value is not in its table.
    TableValueNotFound,
    /// 200: the message type is not supported.
    UnsupportedMessageType,
    /// 201: the trigger event is not supported.
    UnsupportedEventCode,
    /// 202: the processing id is not supported.
    UnsupportedProcessingId,
    /// 203: the version is not supported.
    UnsupportedVersionId,
    /// 204: a referenced key (e.g. the patient) is unknown.
    UnknownKeyIdentifier,
    /// 205: a key that must be new already exists.
    DuplicateKeyIdentifier,
    /// 206: the record is locked by another process.
    ApplicationRecordLocked,
    /// 207: the receiver failed internally (storage unavailable, …).
    ApplicationInternalError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::DuplicateKeyIdentifier => 205,
            ErrorCode::ApplicationRecordLocked => 206,
            ErrorCode::ApplicationInternalError => 207,
        }
    }

    /// The code's text in table 0357.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::DuplicateKeyIdentifier => "Duplicate key identifier",
            ErrorCode::ApplicationRecordLocked => "Application record locked",
            ErrorCode::ApplicationInternalError => "Application internal error",
        }
    }
}

/// Why a message was not processed: what to answer (`AE` or `AR`), the table 0357 code, where,
/// and a sentence for the sender's integration engineer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `AE` or `AR` (an `Accept` here is answered as `AE`).
    pub ack_code: AckCode,
    /// The HL7 error code.
    pub error_code: ErrorCode,
    /// Where in the message, when known.
    pub location: Option<Location>,
    /// A plain sentence; it must not carry personal data from the message.
    pub reason: String,
}

impl Rejection {
    /// The rejection for a message that could not be parsed.
    pub fn from_parse_error(error: &ParseError) -> Self {
        let ack_code = match error {
            ParseError::Empty | ParseError::MissingHeader | ParseError::Delimiters(_) | ParseError::TooManyElements => {
                AckCode::Reject
            }
            ParseError::InvalidSegmentId { .. } => AckCode::Error,
        };
        let error_code = match error {
            ParseError::InvalidSegmentId { .. } => ErrorCode::SegmentSequenceError,
            ParseError::Delimiters(_) => ErrorCode::DataTypeError,
            ParseError::Empty | ParseError::MissingHeader => ErrorCode::RequiredFieldMissing,
            ParseError::TooManyElements => ErrorCode::ApplicationInternalError,
        };
        let reason = match error {
            // The segment text may hold personal data: report only its position.
            ParseError::InvalidSegmentId { segment_number, .. } => {
                format!("segment {segment_number} has an invalid segment id")
            }
            other => other.to_string(),
        };
        Rejection { ack_code, error_code, location: error.location(), reason }
    }

    /// The `AE` answer for a failure of the receiver itself (e.g. storage unavailable).
    pub fn internal_error(reason: &str) -> Self {
        Rejection {
            ack_code: AckCode::Error,
            error_code: ErrorCode::ApplicationInternalError,
            location: None,
            reason: reason.to_owned(),
        }
    }
}

/// What an acknowledgement echoes from the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckHeader {
    /// MSH-3 of the original (becomes MSH-5 of the ACK).
    pub sending_application: Field,
    /// MSH-4 of the original (becomes MSH-6).
    pub sending_facility: Field,
    /// MSH-5 of the original (becomes MSH-3).
    pub receiving_application: Field,
    /// MSH-6 of the original (becomes MSH-4).
    pub receiving_facility: Field,
    /// MSH-9.2, the trigger event.
    pub trigger_event: String,
    /// MSH-10, echoed in MSA-2.
    pub control_id: String,
    /// MSH-11, echoed.
    pub processing_id: Field,
    /// MSH-12.1, echoed; it also chooses the ERR style.
    pub version: String,
}

impl AckHeader {
    /// Takes what the acknowledgement needs from a parsed message.
    pub fn from_message(message: &Message) -> Self {
        let msh = message.header();
        let field = |n| msh.field(n).cloned().unwrap_or_default();
        AckHeader {
            sending_application: field(3),
            sending_facility: field(4),
            receiving_application: field(5),
            receiving_facility: field(6),
            trigger_event: msh.field(9).map_or("", |f| f.component(2)).trim().to_owned(),
            control_id: msh.value(10).trim().to_owned(),
            processing_id: field(11),
            version: msh.field(12).map_or("", |f| f.component(1)).trim().to_owned(),
        }
    }

    /// Salvages what it can from raw bytes: the whole message, else its first segment, else
    /// nothing (the ACK then has empty routing fields, as the standard allows for garbage).
    pub fn from_raw(raw: &[u8]) -> Self {
        match parse_message(raw).or_else(|_| parse_header(raw)) {
            Ok(message) => AckHeader::from_message(&message),
            Err(_) => AckHeader::default(),
        }
    }

    /// Whether the version predates v2.5 (ERR-1 only; MSA-3 carries the text).
    fn is_before_2_5(&self) -> bool {
        let mut parts = self.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        major == 2 && minor < 5 && !self.version.is_empty()
    }
}

/// Builds the acknowledgement of one message: MSH (sender and receiver swapped, same
/// processing id and version), MSA with the original control id, and for a rejection an ERR
/// segment: ERR-1 (v2.3/2.4 style: `segment^sequence^field^code&text&HL70357`) always, and from
/// v2.5 also ERR-2 location, ERR-3 code, ERR-4 severity and ERR-8 the reason. Before v2.5 the
/// reason goes to MSA-3. Segments end with CR; the result is ready for MLLP framing.
pub fn build_ack(
    header: &AckHeader,
    outcome: Result<(), &Rejection>,
    ack_control_id: &str,
    now: OffsetDateTime,
) -> String {
    let mut ack = Message::new(crate::Delimiters::default());
    let version = if header.version.is_empty() { "2.5" } else { header.version.as_str() };
    let message_type = match (header.trigger_event.as_str(), version) {
        ("", _) => Field::text("ACK"),
        (event, "2.3") => Field::from_components(&["ACK", event]),
        (event, _) => Field::from_components(&["ACK", event, "ACK"]),
    };
    let processing_id = if header.processing_id.is_empty() { Field::text("P") } else { header.processing_id.clone() };
    let msh = &mut ack.segments[0];
    msh.set_field(3, header.receiving_application.clone());
    msh.set_field(4, header.receiving_facility.clone());
    msh.set_field(5, header.sending_application.clone());
    msh.set_field(6, header.sending_facility.clone());
    msh.set_field(7, Field::text(&format_timestamp(now)));
    msh.set_field(9, message_type);
    msh.set_field(10, Field::text(ack_control_id));
    msh.set_field(11, processing_id);
    msh.set_field(12, Field::text(version));

    let mut msa = Segment::new("MSA");
    let ack_code = match outcome {
        Ok(()) => AckCode::Accept,
        Err(rejection) if rejection.ack_code == AckCode::Accept => AckCode::Error,
        Err(rejection) => rejection.ack_code,
    };
    msa.set_field(1, Field::text(ack_code.code()));
    msa.set_field(2, Field::text(&header.control_id));
    let before_2_5 = header.is_before_2_5();
    if let (Err(rejection), true) = (outcome, before_2_5) {
        msa.set_field(3, Field::text(&rejection.reason));
    }
    ack.segments.push(msa);

    if let Err(rejection) = outcome {
        let mut err = Segment::new("ERR");
        let code = rejection.error_code.code().to_string();
        let location = rejection.location.as_ref();
        let (segment_id, sequence, field_number) = match location {
            Some(l) => (l.segment.clone(), l.sequence.to_string(), l.field.to_string()),
            None => (String::new(), String::new(), String::new()),
        };
        // ERR-1 (ELD): segment id ^ sequence ^ field position ^ code (CE in subcomponents).
        let mut eld = Repetition::from_components(&[&segment_id, &sequence, &field_number]);
        eld.components.push(crate::message::Component {
            subcomponents: vec![code.clone(), rejection.error_code.text().to_owned(), "HL70357".to_owned()],
        });
        err.set_field(1, Field { repetitions: vec![eld] });
        if !before_2_5 {
            if let Some(l) = location {
                // ERL: segment ^ sequence ^ field ^ repetition ^ component, trailing parts omitted.
                let mut parts = vec![segment_id.clone(), sequence.clone(), field_number.clone()];
                if l.repetition.is_some() || l.component.is_some() {
                    parts.push(l.repetition.unwrap_or(1).to_string());
                }
                parts.extend(l.component.map(|c| c.to_string()));
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                err.set_field(2, Field::from_components(&parts));
            }
            err.set_field(3, Field::from_components(&[&code, rejection.error_code.text(), "HL70357"]));
            err.set_field(4, Field::text("E"));
            err.set_field(8, Field::text(&rejection.reason));
        }
        ack.segments.push(err);
    }
    ack.serialise()
}

/// `YYYYMMDDHHMMSS+ZZZZ`, the HL7 DTM form.
fn format_timestamp(now: OffsetDateTime) -> String {
    let (oh, om, _) = now.offset().as_hms();
    let sign = if now.offset().is_negative() { '-' } else { '+' };
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{sign}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        oh.unsigned_abs(),
        om.unsigned_abs()
    )
}

/// Why bytes are not a readable acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckParseError {
    /// The bytes are not an HL7 message.
    #[error("not an HL7 message: {0}")]
    Parse(#[from] ParseError),
    /// There is no MSA segment, or MSA-1 is not an acknowledgement code.
    #[error("no MSA segment with an acknowledgement code")]
    MissingMsa,
}

/// The parts of a received acknowledgement a sender acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSummary {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-2, the control id of the message acknowledged.
    pub control_id: String,
    /// ERR-3.1 (v2.5) or ERR-1.4.1 (v2.3/2.4), when present.
    pub error_code: Option<String>,
    /// ERR-8, else MSA-3, when present.
    pub text: Option<String>,
}

/// Reads an acknowledgement (used by MLLP clients and tests).
pub fn parse_ack(raw: &[u8]) -> Result<AckSummary, AckParseError> {
    let message = parse_message(raw)?;
    let msa = message.segment("MSA").ok_or(AckParseError::MissingMsa)?;
    let code = AckCode::from_code(msa.value(1).trim()).ok_or(AckParseError::MissingMsa)?;
    let err = message.segment("ERR");
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let error_code =
        err.and_then(|e| non_empty(e.value(3)).or_else(|| non_empty(e.field(1)?.first()?.get(4)?.subcomponent(1))));
    let text = err.and_then(|e| non_empty(e.value(8))).or_else(|| non_empty(msa.value(3)));
    Ok(AckSummary { code, control_id: msa.value(2).to_owned(), error_code, text })
}
