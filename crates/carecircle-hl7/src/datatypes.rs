//! Typed readings of the HL7 v2 composite data types ADT needs: HD, CX, XPN, XAD, PL and TS/DTM.

use std::fmt;

use thiserror::Error;
use time::{Date, Month, Time, UtcOffset};

use crate::message::{Component, Repetition};

/// Treats the HL7 explicit null `""` ("delete this value") as empty: carecircle never deletes on
/// an ADT message, so both mean "no value here".
fn clean(value: &str) -> String {
    if value == "\"\"" {
        String::new()
    } else {
        value.trim().to_owned()
    }
}

/// HD: a hierarchic designator naming an application, facility or assigning authority.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HierarchicDesignator {
    /// HD-1, a local name (`RXX01`).
    pub namespace_id: String,
    /// HD-2, a universal id (often an OID).
    pub universal_id: String,
    /// HD-3, the universal id's type (`ISO`, `DNS`, …).
    pub universal_id_type: String,
}

impl HierarchicDesignator {
    /// Reads an HD held in the components of a field repetition (MSH-3, MSH-4).
    pub fn from_repetition(repetition: Option<&Repetition>) -> Self {
        let c = |n| clean(repetition.map_or("", |r| r.component(n)));
        HierarchicDesignator { namespace_id: c(1), universal_id: c(2), universal_id_type: c(3) }
    }

    /// Reads an HD held in the subcomponents of one component (CX-4, PL-4).
    pub fn from_component(component: Option<&Component>) -> Self {
        let s = |n| clean(component.map_or("", |c| c.subcomponent(n)));
        HierarchicDesignator { namespace_id: s(1), universal_id: s(2), universal_id_type: s(3) }
    }

    /// Whether neither a namespace id nor a universal id is given.
    pub fn is_empty(&self) -> bool {
        self.namespace_id.is_empty() && self.universal_id.is_empty()
    }

    /// The universal id when it is an OID (type `ISO`), for `urn:oid:` systems.
    pub fn oid(&self) -> Option<&str> {
        let is_oid = self.universal_id_type.eq_ignore_ascii_case("ISO")
            && !self.universal_id.is_empty()
            && self.universal_id.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        is_oid.then_some(self.universal_id.as_str())
    }

    /// A stable key for this designator: the namespace id, else the universal id.
    pub fn key(&self) -> &str {
        if self.namespace_id.is_empty() {
            &self.universal_id
        } else {
            &self.namespace_id
        }
    }
}

impl fmt::Display for HierarchicDesignator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// CX: an identifier with its assigning authority and type (PID-3, PV1-19, MRG-1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedId {
    /// CX-1, the identifier itself.
    pub id: String,
    /// CX-4, the authority that assigned it (`NHS`, a trust's PAS).
    pub assigning_authority: HierarchicDesignator,
    /// CX-5, the identifier type code from HL7 table 0203 (`NH`, `MR`, `VN`, …).
    pub type_code: String,
    /// CX-6, the facility where it was assigned.
    pub assigning_facility: HierarchicDesignator,
}

impl ExtendedId {
    /// Reads one CX repetition; `None` when its identifier is empty.
    pub fn from_repetition(repetition: &Repetition) -> Option<Self> {
        let id = clean(repetition.component(1));
        if id.is_empty() {
            return None;
        }
        Some(ExtendedId {
            id,
            assigning_authority: HierarchicDesignator::from_component(repetition.get(4)),
            type_code: clean(repetition.component(5)),
            assigning_facility: HierarchicDesignator::from_component(repetition.get(6)),
        })
    }
}

/// XPN: a person's name (PID-5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonName {
    /// XPN-1.1, the surname.
    pub family: String,
    /// XPN-2 and XPN-3: given name, then second and further given names.
    pub given: Vec<String>,
    /// XPN-4, e.g. `JR`.
    pub suffix: String,
    /// XPN-5, e.g. `MRS`.
    pub prefix: String,
    /// XPN-7, the name type code from HL7 table 0200 (`L` legal, `A` alias, …).
    pub name_type: String,
}

impl PersonName {
    /// Reads one XPN repetition; `None` when it holds no name.
    pub fn from_repetition(repetition: &Repetition) -> Option<Self> {
        let name = PersonName {
            family: clean(repetition.get(1).map_or("", |c| c.subcomponent(1))),
            given: [2, 3]
                .into_iter()
                .flat_map(|n| clean(repetition.component(n)).split(' ').map(str::to_owned).collect::<Vec<_>>())
                .filter(|g| !g.is_empty())
                .collect(),
            suffix: clean(repetition.component(4)),
            prefix: clean(repetition.component(5)),
            name_type: clean(repetition.component(7)),
        };
        (!name.family.is_empty() || !name.given.is_empty()).then_some(name)
    }
}

/// XAD: a postal address (PID-11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// XAD-1.1 and XAD-2: street lines.
    pub lines: Vec<String>,
    /// XAD-3.
    pub city: String,
    /// XAD-4, state or county.
    pub district: String,
    /// XAD-5.
    pub postal_code: String,
    /// XAD-6.
    pub country: String,
    /// XAD-7, the address type from HL7 table 0190 (`H` home, `M` mailing, …).
    pub address_type: String,
}

impl Address {
    /// Reads one XAD repetition; `None` when it is empty.
    pub fn from_repetition(repetition: &Repetition) -> Option<Self> {
        if repetition.is_empty() {
            return None;
        }
        let street = clean(repetition.get(1).map_or("", |c| c.subcomponent(1)));
        let other = clean(repetition.component(2));
        Some(Address {
            lines: [street, other].into_iter().filter(|l| !l.is_empty()).collect(),
            city: clean(repetition.component(3)),
            district: clean(repetition.component(4)),
            postal_code: clean(repetition.component(5)),
            country: clean(repetition.component(6)),
            address_type: clean(repetition.component(7)),
        })
    }
}

/// PL: a person location (PV1-3 assigned location, PV1-6 prior location).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonLocation {
    /// PL-1, the point of care (ward, clinic, department).
    pub point_of_care: String,
    /// PL-2.
    pub room: String,
    /// PL-3.
    pub bed: String,
    /// PL-4, the facility (hospital site).
    pub facility: HierarchicDesignator,
    /// PL-9, a free-text description.
    pub description: String,
}

impl PersonLocation {
    /// Reads one PL repetition; `None` when it names no place.
    pub fn from_repetition(repetition: &Repetition) -> Option<Self> {
        let location = PersonLocation {
            point_of_care: clean(repetition.component(1)),
            room: clean(repetition.component(2)),
            bed: clean(repetition.component(3)),
            facility: HierarchicDesignator::from_component(repetition.get(4)),
            description: clean(repetition.component(9)),
        };
        let empty = location.point_of_care.is_empty()
            && location.room.is_empty()
            && location.bed.is_empty()
            && location.facility.is_empty()
            && location.description.is_empty();
        (!empty).then_some(location)
    }

    /// A human-readable name: the description, else `ward, room, bed (facility)`.
    pub fn display(&self) -> String {
        if !self.description.is_empty() {
            return self.description.clone();
        }
        let parts: Vec<&str> = [&self.point_of_care, &self.room, &self.bed]
            .into_iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        let mut text = parts.join(", ");
        if !self.facility.is_empty() {
            if text.is_empty() {
                text = self.facility.key().to_owned();
            } else {
                text = format!("{text} ({})", self.facility.key());
            }
        }
        text
    }
}

/// How to read a timestamp written without a UTC offset: in a fixed offset, or in a time zone
/// (the sender's local time, with its daylight-saving rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime(LocalTimeRule);

#[derive(Debug, Clone, PartialEq, Eq)]
enum LocalTimeRule {
    Fixed(UtcOffset),
    Zone(jiff::tz::TimeZone),
}

/// The time zone name is not in the IANA database.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown time zone `{0}`")]
pub struct UnknownTimeZone(pub String);

impl Default for LocalTime {
    fn default() -> Self {
        LocalTime::UTC
    }
}

impl LocalTime {
    /// Local times are UTC.
    pub const UTC: LocalTime = LocalTime(LocalTimeRule::Fixed(UtcOffset::UTC));

    /// Local times are at a fixed offset from UTC.
    pub fn fixed(offset: UtcOffset) -> Self {
        LocalTime(LocalTimeRule::Fixed(offset))
    }

    /// Local times are in an IANA time zone (`Europe/London`), daylight saving included.
    pub fn zone(name: &str) -> Result<Self, UnknownTimeZone> {
        jiff::tz::TimeZone::get(name)
            .map(|zone| LocalTime(LocalTimeRule::Zone(zone)))
            .map_err(|_| UnknownTimeZone(name.to_owned()))
    }

    /// The UTC offset in force at a local date and time. A time that occurs twice (clocks going
    /// back) reads as the first, a time that does not occur (clocks going forward) with the
    /// offset from before the change: the instants RFC 5545 and Temporal's "compatible" pick.
    pub fn offset_at(&self, date: Date, time: Time) -> UtcOffset {
        match &self.0 {
            LocalTimeRule::Fixed(offset) => *offset,
            LocalTimeRule::Zone(zone) => {
                let civil = jiff::civil::DateTime::new(
                    i16::try_from(date.year()).unwrap_or(1970),
                    i8::try_from(u8::from(date.month())).unwrap_or(1),
                    i8::try_from(date.day()).unwrap_or(1),
                    i8::try_from(time.hour()).unwrap_or(0),
                    i8::try_from(time.minute()).unwrap_or(0),
                    i8::try_from(time.second()).unwrap_or(0),
                    0,
                );
                let offset_seconds = civil.map_or(0, |civil| match zone.to_ambiguous_zoned(civil).offset() {
                    jiff::tz::AmbiguousOffset::Unambiguous { offset } => offset.seconds(),
                    jiff::tz::AmbiguousOffset::Gap { before, .. } => before.seconds(),
                    jiff::tz::AmbiguousOffset::Fold { before, .. } => before.seconds(),
                });
                UtcOffset::from_whole_seconds(offset_seconds).unwrap_or(UtcOffset::UTC)
            }
        }
    }
}

/// How precisely an HL7 timestamp was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    /// `YYYY`.
    Year,
    /// `YYYYMM`.
    Month,
    /// `YYYYMMDD`.
    Day,
    /// `YYYYMMDDHH[MM[SS[.S…]]]`: a time of day (missing minutes and seconds read as zero).
    Time,
}

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")]
pub struct TimestampError {
    /// The offending text.
    pub text: String,
}

/// TS/DTM: a point in time with its precision (PID-7, PV1-44/45, EVN-2, MSH-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// The calendar date (month and day are 1 when not given).
    pub date: Date,
    /// The time of day (midnight when not given).
    pub time: Time,
    /// The UTC offset: the one written in the value, or the sender's assumed offset.
    pub offset: UtcOffset,
    /// Whether the offset was written in the value.
    pub offset_given: bool,
    /// How much of the value was given.
    pub precision: Precision,
}

impl Timestamp {
    /// Parses `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`; a value without an offset is
    /// read in `local_time` (the sending partner's local time).
    pub fn parse(text: &str, local_time: &LocalTime) -> Result<Self, TimestampError> {
        let error = || TimestampError { text: text.to_owned() };
        let (digits, offset) = match text.find(['+', '-']) {
            Some(at) => (&text[..at], Some(&text[at..])),
            None => (text, None),
        };
        let (main, fraction) = match digits.split_once('.') {
            Some((main, fraction)) => (main, Some(fraction)),
            None => (digits, None),
        };
        if !main.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&main.len()) {
            return Err(error());
        }
        let number = |range: std::ops::Range<usize>| main.get(range).and_then(|s| s.parse::<u16>().ok());
        let year = number(0..4).ok_or_else(error)?;
        let month = number(4..6).unwrap_or(1);
        let day = number(6..8).unwrap_or(1);
        let month = Month::try_from(u8::try_from(month).map_err(|_| error())?).map_err(|_| error())?;
        let date = Date::from_calendar_date(i32::from(year), month, u8::try_from(day).map_err(|_| error())?)
            .map_err(|_| error())?;
        let nanos = match fraction {
            Some(f) if !f.is_empty() && f.len() <= 4 && f.bytes().all(|b| b.is_ascii_digit()) && main.len() == 14 => {
                let padded = format!("{f:0<9}");
                padded.parse::<u32>().map_err(|_| error())?
            }
            Some(_) => return Err(error()),
            None => 0,
        };
        let hms = |range| number(range).map(u8::try_from).transpose().map_err(|_| error());
        let time =
            Time::from_hms_nano(hms(8..10)?.unwrap_or(0), hms(10..12)?.unwrap_or(0), hms(12..14)?.unwrap_or(0), nanos)
                .map_err(|_| error())?;
        let precision = match main.len() {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            _ => Precision::Time,
        };
        let (offset, offset_given) = match offset {
            Some(offset) => (parse_offset(offset).ok_or_else(error)?, true),
            None => (local_time.offset_at(date, time), false),
        };
        Ok(Timestamp { date, time, offset, offset_given, precision })
    }

    /// The FHIR `dateTime` for this value, at its precision (a time always carries seconds and
    /// an offset, as FHIR requires).
    pub fn to_fhir_date_time(&self) -> String {
        let (year, month, day) = (self.date.year(), u8::from(self.date.month()), self.date.day());
        match self.precision {
            Precision::Year => format!("{year:04}"),
            Precision::Month => format!("{year:04}-{month:02}"),
            Precision::Day => format!("{year:04}-{month:02}-{day:02}"),
            Precision::Time => {
                let (h, m, s) = (self.time.hour(), self.time.minute(), self.time.second());
                let millis = self.time.millisecond();
                let fraction = if millis > 0 { format!(".{millis:03}") } else { String::new() };
                let offset = if self.offset.is_utc() {
                    "Z".to_owned()
                } else {
                    let (oh, om, _) = self.offset.as_hms();
                    let sign = if self.offset.is_negative() { '-' } else { '+' };
                    format!("{sign}{:02}:{:02}", oh.unsigned_abs(), om.unsigned_abs())
                };
                format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}{offset}")
            }
        }
    }

    /// The FHIR `date` for this value (a birth date), at most day precision.
    pub fn to_fhir_date(&self) -> String {
        let (year, month, day) = (self.date.year(), u8::from(self.date.month()), self.date.day());
        match self.precision {
            Precision::Year => format!("{year:04}"),
            Precision::Month => format!("{year:04}-{month:02}"),
            Precision::Day | Precision::Time => format!("{year:04}-{month:02}-{day:02}"),
        }
    }
}

fn parse_offset(text: &str) -> Option<UtcOffset> {
    let sign: i8 = if text.starts_with('-') { -1 } else { 1 };
    let digits = text.get(1..)?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i8 = digits[..2].parse().ok()?;
    let minutes: i8 = digits[2..].parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;

    fn rep(text: &str) -> Repetition {
        let message = crate::parse_message(format!("MSH|^~\\&\rZZZ|{text}\r").as_bytes()).unwrap();
        message.segments[1].fields[0].repetitions[0].clone()
    }

    #[test]
    fn timestamps_at_each_precision() {
        let utc = &LocalTime::UTC;
        let cases = [
            ("1970", "1970"),
            ("197002", "1970-02"),
            ("19700215", "1970-02-15"),
            ("2024030110", "2024-03-01T10:00:00Z"),
            ("202403011015", "2024-03-01T10:15:00Z"),
            ("20240301101530.25", "2024-03-01T10:15:30.250Z"),
            ("20240701101530+0100", "2024-07-01T10:15:30+01:00"),
            ("20240701101530-0330", "2024-07-01T10:15:30-03:30"),
        ];
        for (hl7, fhir) in cases {
            assert_eq!(Timestamp::parse(hl7, utc).unwrap().to_fhir_date_time(), fhir, "{hl7}");
        }
        let bst = &LocalTime::fixed(UtcOffset::from_hms(1, 0, 0).unwrap());
        assert_eq!(Timestamp::parse("202407011015", bst).unwrap().to_fhir_date_time(), "2024-07-01T10:15:00+01:00");
        assert_eq!(Timestamp::parse("20240701101530+0100", utc).unwrap().to_fhir_date(), "2024-07-01");
    }

    #[test]
    fn invalid_timestamps_are_refused() {
        for text in ["", "19", "1970021", "19700230", "2024030125", "20240301101560", "abcd", "2024+01", "2024.5"] {
            assert!(Timestamp::parse(text, &LocalTime::UTC).is_err(), "{text}");
        }
    }

    #[test]
    fn local_times_follow_daylight_saving() {
        let london = LocalTime::zone("Europe/London").unwrap();
        let cases = [
            ("202401151000", "2024-01-15T10:00:00Z"),
            ("202407151000", "2024-07-15T10:00:00+01:00"),
            // 01:30 on 31 March 2024 does not exist in London: read with the offset before.
            ("202403310130", "2024-03-31T01:30:00Z"),
            // 01:30 on 27 October 2024 happens twice: the first (summer time) is taken.
            ("202410270130", "2024-10-27T01:30:00+01:00"),
            ("202407151000+0000", "2024-07-15T10:00:00Z"),
        ];
        for (hl7, fhir) in cases {
            assert_eq!(Timestamp::parse(hl7, &london).unwrap().to_fhir_date_time(), fhir, "{hl7}");
        }
        assert_eq!(LocalTime::zone("Mars/Olympus"), Err(UnknownTimeZone("Mars/Olympus".into())));
    }

    #[test]
    fn cx_with_authority_subcomponents() {
        let cx = ExtendedId::from_repetition(&rep("123^^^RXX&2.16.840.1.113883.2.1.4.1&ISO^MR^FAC")).unwrap();
        assert_eq!(cx.id, "123");
        assert_eq!(cx.assigning_authority.namespace_id, "RXX");
        assert_eq!(cx.assigning_authority.oid(), Some("2.16.840.1.113883.2.1.4.1"));
        assert_eq!(cx.type_code, "MR");
        assert_eq!(cx.assigning_facility.namespace_id, "FAC");
        assert_eq!(ExtendedId::from_repetition(&rep("\"\"^^^RXX")), None);
    }

    #[test]
    fn names_addresses_locations() {
        let name = PersonName::from_repetition(&rep("SMITH&VAN^ANNE^MARIE JO^JR^DR^^L")).unwrap();
        assert_eq!(name.family, "SMITH");
        assert_eq!(name.given, ["ANNE", "MARIE", "JO"]);
        assert_eq!((name.suffix.as_str(), name.prefix.as_str(), name.name_type.as_str()), ("JR", "DR", "L"));
        let address = Address::from_repetition(&rep("1 HIGH ST^FLAT 2^LEEDS^W YORKS^LS1 1AA^GBR^H")).unwrap();
        assert_eq!(address.lines, ["1 HIGH ST", "FLAT 2"]);
        assert_eq!(address.postal_code, "LS1 1AA");
        let location = PersonLocation::from_repetition(&rep("WARD1^BAY2^BED3^RXX01")).unwrap();
        assert_eq!(location.display(), "WARD1, BAY2, BED3 (RXX01)");
        assert_eq!(PersonLocation::from_repetition(&Field::text("").repetitions[0]), None);
    }
}
