//! ADT events: the supported admit/discharge/transfer messages read into one domain type,
//! with every refusal typed and located for the acknowledgement.

use std::fmt;

use thiserror::Error;

use crate::ack::{AckCode, ErrorCode, Rejection};
use crate::datatypes::{Address, ExtendedId, HierarchicDesignator, LocalTime, PersonLocation, PersonName, Timestamp};
use crate::message::{Location, Message, Segment};

/// The ADT trigger events carecircle accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdtEventType {
    /// A01: admit (inpatient admission started).
    Admit,
    /// A02: transfer to another location.
    Transfer,
    /// A03: discharge (the visit ended).
    Discharge,
    /// A04: register an outpatient or emergency attendance.
    Register,
    /// A08: update patient or visit information.
    Update,
    /// A11: cancel an admission or registration.
    CancelAdmit,
    /// A13: cancel a discharge (the visit goes on).
    CancelDischarge,
    /// A40: merge patient identifiers (MRG-1 into PID-3).
    Merge,
}

impl AdtEventType {
    /// Reads a trigger event code (`A01`…); `None` for unsupported events.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "A01" => AdtEventType::Admit,
            "A02" => AdtEventType::Transfer,
            "A03" => AdtEventType::Discharge,
            "A04" => AdtEventType::Register,
            "A08" => AdtEventType::Update,
            "A11" => AdtEventType::CancelAdmit,
            "A13" => AdtEventType::CancelDischarge,
            "A40" => AdtEventType::Merge,
            _ => return None,
        })
    }

    /// The trigger event code (`A01`…).
    pub fn code(self) -> &'static str {
        match self {
            AdtEventType::Admit => "A01",
            AdtEventType::Transfer => "A02",
            AdtEventType::Discharge => "A03",
            AdtEventType::Register => "A04",
            AdtEventType::Update => "A08",
            AdtEventType::CancelAdmit => "A11",
            AdtEventType::CancelDischarge => "A13",
            AdtEventType::Merge => "A40",
        }
    }

    /// Whether the message must carry a PV1 segment (every event but the A40 merge).
    pub fn has_visit(self) -> bool {
        self != AdtEventType::Merge
    }
}

impl fmt::Display for AdtEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The HL7 v2 versions accepted (MSH-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 2.3
    V2_3,
    /// 2.3.1
    V2_3_1,
    /// 2.4
    V2_4,
    /// 2.5
    V2_5,
    /// 2.5.1
    V2_5_1,
}

impl Version {
    /// Reads MSH-12.1; `None` for versions outside 2.3 to 2.5.1.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "2.3" => Version::V2_3,
            "2.3.1" => Version::V2_3_1,
            "2.4" => Version::V2_4,
            "2.5" => Version::V2_5,
            "2.5.1" => Version::V2_5_1,
            _ => return None,
        })
    }
}

/// The patient as PID describes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientDetails {
    /// PID-3: every identifier the sender knows the patient by (at least one).
    pub identifiers: Vec<ExtendedId>,
    /// PID-5.
    pub names: Vec<PersonName>,
    /// PID-7.
    pub birth_date: Option<Timestamp>,
    /// PID-8, HL7 table 0001 (`M`, `F`, `O`, `U`, `A`, `N`).
    pub sex: String,
    /// PID-11.
    pub addresses: Vec<Address>,
}

/// The visit as PV1 describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visit {
    /// PV1-2, HL7 table 0004 (`E` emergency, `I` inpatient, `O` outpatient, …).
    pub patient_class: String,
    /// PV1-3, where the patient is (or was, after a discharge).
    pub location: Option<PersonLocation>,
    /// PV1-6, where the patient was before a transfer.
    pub prior_location: Option<PersonLocation>,
    /// PV1-19, the visit number that lets later messages find the same Encounter.
    pub visit_number: Option<ExtendedId>,
    /// PV1-44.
    pub admit_time: Option<Timestamp>,
    /// PV1-45 (first repetition).
    pub discharge_time: Option<Timestamp>,
}

/// One ADT message, read: what happened, who sent it, to whom, and the visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtEvent {
    /// The trigger event.
    pub event: AdtEventType,
    /// MSH-12.
    pub version: Version,
    /// MSH-10, the sender's message control id (echoed in MSA-2).
    pub control_id: String,
    /// MSH-11.1: `P` production, `T` training, `D` debugging.
    pub processing_id: String,
    /// MSH-3.
    pub sending_application: HierarchicDesignator,
    /// MSH-4, mapped to a partner organisation by the caller.
    pub sending_facility: HierarchicDesignator,
    /// MSH-7.
    pub message_time: Option<Timestamp>,
    /// EVN-2, when the event was recorded.
    pub recorded_time: Option<Timestamp>,
    /// EVN-6, when the event happened (v2.3.1 and later).
    pub occurred_time: Option<Timestamp>,
    /// PID.
    pub patient: PatientDetails,
    /// PV1, for every event but A40.
    pub visit: Option<Visit>,
    /// MRG-1, the identifiers being merged into PID-3 (A40 only).
    pub prior_identifiers: Vec<ExtendedId>,
}

/// How to read ADT messages from one sender.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdtOptions {
    /// How timestamps written without an offset are read (most feeds send local time, so this
    /// is the sender's time zone, e.g. `LocalTime::zone("Europe/London")`); UTC by default.
    pub local_time: LocalTime,
}

/// Why a parsed message is not an ADT event carecircle can process.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdtError {
    /// MSH-9.1 is not `ADT`.
    #[error("message type `{0}` is not supported: only ADT is accepted")]
    UnsupportedMessageType(String),
    /// MSH-9.2 (or EVN-1) is not one of A01, A02, A03, A04, A08, A11, A13, A40.
    #[error("event `{0}` is not supported: A01, A02, A03, A04, A08, A11, A13 and A40 are accepted")]
    UnsupportedEvent(String),
    /// MSH-12 is outside 2.3 to 2.5.1.
    #[error("HL7 version `{0}` is not supported: 2.3 to 2.5.1 are accepted")]
    UnsupportedVersion(String),
    /// MSH-11 is not P, T or D.
    #[error("processing id `{0}` is not supported: P, T or D are accepted")]
    UnsupportedProcessingId(String),
    /// A header field the acknowledgement or the custodian depends on is empty.
    #[error("{location} ({name}) is required")]
    MissingHeaderField {
        /// Where.
        location: Location,
        /// What the field is.
        name: &'static str,
    },
    /// A segment the event requires is absent.
    #[error("the {0} segment is required")]
    MissingSegment(&'static str),
    /// A required field of the body is empty.
    #[error("{location} ({name}) is required")]
    MissingField {
        /// Where.
        location: Location,
        /// What the field is.
        name: &'static str,
    },
    /// A field holds a value of the wrong form.
    #[error("{location} ({name}): {reason}")]
    InvalidField {
        /// Where.
        location: Location,
        /// What the field is.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The message carries a structure carecircle does not process (e.g. several merges in one A40).
    #[error("{0}")]
    UnsupportedStructure(String),
}

impl AdtError {
    /// The acknowledgement this error calls for: `AR` when the message cannot be taken at all
    /// (type, event, version, processing id, header), `AE` when its content is wrong.
    pub fn to_rejection(&self) -> Rejection {
        let (ack_code, error_code, location) = match self {
            AdtError::UnsupportedMessageType(_) => {
                (AckCode::Reject, ErrorCode::UnsupportedMessageType, Some(Location::component("MSH", 1, 9, 1)))
            }
            AdtError::UnsupportedEvent(_) => {
                (AckCode::Reject, ErrorCode::UnsupportedEventCode, Some(Location::component("MSH", 1, 9, 2)))
            }
            AdtError::UnsupportedVersion(_) => {
                (AckCode::Reject, ErrorCode::UnsupportedVersionId, Some(Location::field("MSH", 1, 12)))
            }
            AdtError::UnsupportedProcessingId(_) => {
                (AckCode::Reject, ErrorCode::UnsupportedProcessingId, Some(Location::field("MSH", 1, 11)))
            }
            AdtError::MissingHeaderField { location, .. } => {
                (AckCode::Reject, ErrorCode::RequiredFieldMissing, Some(location.clone()))
            }
            AdtError::MissingSegment(_) => (AckCode::Error, ErrorCode::SegmentSequenceError, None),
            AdtError::MissingField { location, .. } => {
                (AckCode::Error, ErrorCode::RequiredFieldMissing, Some(location.clone()))
            }
            AdtError::InvalidField { location, .. } => {
                (AckCode::Error, ErrorCode::DataTypeError, Some(location.clone()))
            }
            AdtError::UnsupportedStructure(_) => (AckCode::Error, ErrorCode::SegmentSequenceError, None),
        };
        Rejection { ack_code, error_code, location, reason: self.to_string() }
    }
}

impl AdtEvent {
    /// Reads a parsed message as an ADT event, checking what carecircle needs: the header
    /// (type, event, version, processing id, control id, sending facility), PID with at least
    /// one identifier in PID-3, PV1 with a patient class for visit events, MRG-1 for A40, and
    /// the form of every timestamp used.
    pub fn from_message(message: &Message, options: &AdtOptions) -> Result<Self, AdtError> {
        let msh = message.header();
        let offset = &options.local_time;
        let message_type = msh.field(9).map_or("", |f| f.component(1)).trim();
        if message_type != "ADT" {
            return Err(AdtError::UnsupportedMessageType(message_type.to_owned()));
        }
        let mut event_code = msh.field(9).map_or("", |f| f.component(2)).trim();
        if event_code.is_empty() {
            event_code = message.segment("EVN").map_or("", |evn| evn.value(1)).trim();
        }
        let event = AdtEventType::from_code(event_code).ok_or_else(|| AdtError::UnsupportedEvent(event_code.into()))?;
        let version_code = msh.field(12).map_or("", |f| f.component(1)).trim();
        let version =
            Version::from_code(version_code).ok_or_else(|| AdtError::UnsupportedVersion(version_code.into()))?;
        let control_id = required_header(msh, 10, "message control id")?;
        let processing_id = msh.field(11).map_or("", |f| f.component(1)).trim().to_owned();
        if !["P", "T", "D"].contains(&processing_id.as_str()) {
            if processing_id.is_empty() {
                return Err(AdtError::MissingHeaderField {
                    location: Location::field("MSH", 1, 11),
                    name: "processing id",
                });
            }
            return Err(AdtError::UnsupportedProcessingId(processing_id));
        }
        let sending_facility = HierarchicDesignator::from_repetition(msh.field(4).and_then(|f| f.first()));
        if sending_facility.is_empty() {
            return Err(AdtError::MissingHeaderField {
                location: Location::field("MSH", 1, 4),
                name: "sending facility",
            });
        }
        let sending_application = HierarchicDesignator::from_repetition(msh.field(3).and_then(|f| f.first()));
        let message_time = timestamp(msh, 1, 7, "date/time of message", offset)?;
        let (recorded_time, occurred_time) = match message.segment("EVN") {
            Some(evn) => {
                (timestamp(evn, 1, 2, "recorded date/time", offset)?, timestamp(evn, 1, 6, "event occurred", offset)?)
            }
            None => (None, None),
        };

        let pids: Vec<&Segment> = message.segments_with_id("PID").collect();
        let pid = *pids.first().ok_or(AdtError::MissingSegment("PID"))?;
        let patient = read_patient(pid, offset)?;

        let visit = match (event.has_visit(), message.segment("PV1")) {
            (true, Some(pv1)) => Some(read_visit(pv1, offset)?),
            (true, None) => return Err(AdtError::MissingSegment("PV1")),
            (false, _) => None,
        };

        let mut prior_identifiers = Vec::new();
        if event == AdtEventType::Merge {
            if pids.len() > 1 {
                return Err(AdtError::UnsupportedStructure(
                    "one PID/MRG pair per A40 is processed; send each merge as its own message".into(),
                ));
            }
            let mrg = message.segment("MRG").ok_or(AdtError::MissingSegment("MRG"))?;
            prior_identifiers = mrg
                .field(1)
                .map(|f| f.repetitions.iter().filter_map(ExtendedId::from_repetition).collect())
                .unwrap_or_default();
            if prior_identifiers.is_empty() {
                return Err(AdtError::MissingField {
                    location: Location::field("MRG", 1, 1),
                    name: "prior patient identifier list",
                });
            }
        }

        Ok(AdtEvent {
            event,
            version,
            control_id,
            processing_id,
            sending_application,
            sending_facility,
            message_time,
            recorded_time,
            occurred_time,
            patient,
            visit,
            prior_identifiers,
        })
    }
}

fn required_header(msh: &Segment, field: usize, name: &'static str) -> Result<String, AdtError> {
    let value = msh.value(field).trim();
    if value.is_empty() {
        return Err(AdtError::MissingHeaderField { location: Location::field("MSH", 1, field), name });
    }
    Ok(value.to_owned())
}

/// Reads an optional timestamp field (its first component: TS is `time^precision` before 2.6).
fn timestamp(
    segment: &Segment,
    sequence: usize,
    field: usize,
    name: &'static str,
    offset: &LocalTime,
) -> Result<Option<Timestamp>, AdtError> {
    let text = segment.value(field).trim();
    if text.is_empty() || text == "\"\"" {
        return Ok(None);
    }
    Timestamp::parse(text, offset).map(Some).map_err(|e| AdtError::InvalidField {
        location: Location::field(&segment.id, sequence, field),
        name,
        reason: e.to_string(),
    })
}

fn read_patient(pid: &Segment, offset: &LocalTime) -> Result<PatientDetails, AdtError> {
    let repetitions = |n| pid.field(n).map(|f| f.repetitions.as_slice()).unwrap_or_default();
    let identifiers: Vec<ExtendedId> = repetitions(3).iter().filter_map(ExtendedId::from_repetition).collect();
    if identifiers.is_empty() {
        return Err(AdtError::MissingField { location: Location::field("PID", 1, 3), name: "patient identifier list" });
    }
    Ok(PatientDetails {
        identifiers,
        names: repetitions(5).iter().filter_map(PersonName::from_repetition).collect(),
        birth_date: timestamp(pid, 1, 7, "date/time of birth", offset)?,
        sex: pid.value(8).trim().to_owned(),
        addresses: repetitions(11).iter().filter_map(Address::from_repetition).collect(),
    })
}

fn read_visit(pv1: &Segment, offset: &LocalTime) -> Result<Visit, AdtError> {
    let patient_class = pv1.value(2).trim().to_owned();
    if patient_class.is_empty() || patient_class == "\"\"" {
        return Err(AdtError::MissingField { location: Location::field("PV1", 1, 2), name: "patient class" });
    }
    let first = |n| pv1.field(n).and_then(|f| f.first());
    Ok(Visit {
        patient_class,
        location: first(3).and_then(PersonLocation::from_repetition),
        prior_location: first(6).and_then(PersonLocation::from_repetition),
        visit_number: first(19).and_then(ExtendedId::from_repetition),
        admit_time: timestamp(pv1, 1, 44, "admit date/time", offset)?,
        discharge_time: timestamp(pv1, 1, 45, "discharge date/time", offset)?,
    })
}
