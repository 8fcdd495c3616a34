//! FHIR date, dateTime and instant values as closed ranges of UTC milliseconds.
//!
//! A FHIR date is as precise as it is written: "2021" is the whole year, "2021-03-04" the whole
//! day. Search compares ranges (R4 §3.1.1.5.7), so every value becomes the first and last
//! millisecond it covers. Values without a time zone are taken as UTC (the server's zone).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A closed range of instants in milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// The first millisecond the value covers.
    pub start: i64,
    /// The last millisecond the value covers (inclusive).
    pub end: i64,
}

impl DateRange {
    /// A range open at both ends: covers every instant.
    pub const UNBOUNDED: DateRange = DateRange { start: i64::MIN, end: i64::MAX };

    /// The range covering both `self` and `other`.
    pub fn union(self, other: DateRange) -> DateRange {
        DateRange { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Why a date could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid FHIR date, dateTime or instant (expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|(+|-)hh:mm])")]
pub struct DateError {
    /// The text that was rejected.
    pub value: String,
}

/// Parses a FHIR date, dateTime or instant (also the search form without seconds) into the range
/// of milliseconds it covers.
pub fn parse_date_range(value: &str) -> Result<DateRange, DateError> {
    parse_inner(value.trim()).ok_or_else(|| DateError { value: value.to_string() })
}

/// Milliseconds since the epoch of an `OffsetDateTime`.
pub fn to_millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats milliseconds since the epoch as a FHIR `instant` in UTC with millisecond precision.
pub fn format_instant(millis: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

fn digits(s: &str, len: usize) -> Option<u32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_inner(value: &str) -> Option<DateRange> {
    let (date_part, time_part) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let mut pieces = date_part.split('-');
    let year = digits(pieces.next()?, 4)? as i32;
    let month = pieces.next().map(|m| digits(m, 2)).map_or(Some(None), |m| m.map(Some))?;
    let day = pieces.next().map(|d| digits(d, 2)).map_or(Some(None), |d| d.map(Some))?;
    if pieces.next().is_some() {
        return None;
    }
    match (month, day, time_part) {
        (None, None, None) => {
            let start = Date::from_calendar_date(year, Month::January, 1).ok()?;
            let end = Date::from_calendar_date(year, Month::December, 31).ok()?;
            Some(whole_days(start, end))
        }
        (Some(m), None, None) => {
            let month = Month::try_from(m as u8).ok()?;
            let start = Date::from_calendar_date(year, month, 1).ok()?;
            let end = Date::from_calendar_date(year, month, time::util::days_in_month(month, year)).ok()?;
            Some(whole_days(start, end))
        }
        (Some(m), Some(d), None) => {
            let date = Date::from_calendar_date(year, Month::try_from(m as u8).ok()?, d as u8).ok()?;
            Some(whole_days(date, date))
        }
        (Some(m), Some(d), Some(t)) => {
            let date = Date::from_calendar_date(year, Month::try_from(m as u8).ok()?, d as u8).ok()?;
            parse_time(date, t)
        }
        _ => None,
    }
}

fn whole_days(first: Date, last: Date) -> DateRange {
    let start = PrimitiveDateTime::new(first, Time::MIDNIGHT).assume_utc();
    let end = PrimitiveDateTime::new(last, Time::MIDNIGHT).assume_utc();
    DateRange { start: to_millis(start), end: to_millis(end) + 86_400_000 - 1 }
}

fn parse_time(date: Date, text: &str) -> Option<DateRange> {
    // Split off the zone: 'Z', '+hh:mm' or '-hh:mm'.
    let (clock, offset) = if let Some(clock) = text.strip_suffix('Z') {
        (clock, UtcOffset::UTC)
    } else if let Some(pos) = text.rfind(['+', '-']) {
        let (clock, zone) = text.split_at(pos);
        let sign: i8 = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        let offset = UtcOffset::from_hms(sign * digits(h, 2)? as i8, sign * digits(m, 2)? as i8, 0).ok()?;
        (clock, offset)
    } else {
        (text, UtcOffset::UTC)
    };
    let mut parts = clock.split(':');
    let hour = digits(parts.next()?, 2)? as u8;
    let minute = digits(parts.next()?, 2)? as u8;
    let (second, millis, precision_ms) = match parts.next() {
        None => (0u8, 0u16, 60_000i64),
        Some(sec) => {
            let (whole, fraction) = match sec.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (sec, None),
            };
            let second = digits(whole, 2)? as u8;
            match fraction {
                None => (second, 0, 1_000),
                Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                    let padded: String = f.chars().chain("000".chars()).take(3).collect();
                    let precision = if f.len() >= 3 { 1 } else { 10i64.pow(3 - f.len() as u32) };
                    (second, padded.parse().ok()?, precision)
                }
                Some(_) => return None,
            }
        }
    };
    if parts.next().is_some() {
        return None;
    }
    // FHIR allows a leap second of 60 in instants; fold it into the last millisecond of the minute.
    let (second, millis) = if second == 60 { (59, 999) } else { (second, millis) };
    let time = Time::from_hms_milli(hour, minute, second, millis).ok()?;
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    let start = to_millis(at);
    Some(DateRange { start, end: start + precision_ms - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> (String, String) {
        let r = parse_date_range(value).unwrap();
        (format_instant(r.start), format_instant(r.end))
    }

    #[test]
    fn partial_dates_cover_their_whole_period() {
        assert_eq!(range("2021"), ("2021-01-01T00:00:00.000Z".into(), "2021-12-31T23:59:59.999Z".into()));
        assert_eq!(range("2024-02"), ("2024-02-01T00:00:00.000Z".into(), "2024-02-29T23:59:59.999Z".into()));
        assert_eq!(range("1971-03-14"), ("1971-03-14T00:00:00.000Z".into(), "1971-03-14T23:59:59.999Z".into()));
    }

    #[test]
    fn times_honour_zone_and_precision() {
        assert_eq!(
            range("2015-02-07T13:28:17-05:00"),
            ("2015-02-07T18:28:17.000Z".into(), "2015-02-07T18:28:17.999Z".into())
        );
        assert_eq!(range("2015-02-07T13:28Z"), ("2015-02-07T13:28:00.000Z".into(), "2015-02-07T13:28:59.999Z".into()));
        assert_eq!(range("2015-02-07T13:28:17.239+02:00").0, "2015-02-07T11:28:17.239Z");
        assert_eq!(range("2015-02-07T13:28:17.2Z").1, "2015-02-07T13:28:17.299Z");
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "21",
            "2021-13",
            "2021-02-30",
            "2021-1-01",
            "2021-01-01T25:00Z",
            "2021-01-01T10",
            "tomorrow",
            "2021-01-01T10:00+5",
        ] {
            assert!(parse_date_range(bad).is_err(), "{bad} should be rejected");
        }
    }
}
