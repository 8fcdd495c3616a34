//! The domain type of linkage: one partner's record of a person, as read from its list.

use serde::{Deserialize, Serialize};

/// Which record this is: the partner (source) and the partner's own identifier for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// The partner or list the record came from (e.g. `gp-north`).
    pub source: String,
    /// The partner's identifier of the record.
    pub local_id: String,
}

impl RecordKey {
    /// A key from its two parts.
    pub fn new(source: impl Into<String>, local_id: impl Into<String>) -> Self {
        RecordKey { source: source.into(), local_id: local_id.into() }
    }
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.source, self.local_id)
    }
}

/// A calendar date of birth, always a real date (day/month swaps are resolved when parsing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BirthDate {
    /// Year, e.g. 1971.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day of month 1–31.
    pub day: u32,
}

impl BirthDate {
    /// A date if the three parts form a real calendar date.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Self> {
        chrono::NaiveDate::from_ymd_opt(year, month, day).map(|_| BirthDate { year, month, day })
    }

    /// Days since 1 January of year 0 (for "within a day" comparisons).
    pub fn day_number(&self) -> i64 {
        chrono::NaiveDate::from_ymd_opt(self.year, self.month, self.day)
            .map(|date| i64::from(chrono::Datelike::num_days_from_ce(&date)))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for BirthDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Recorded sex, when the partner records one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Recorded, but neither female nor male.
    Other,
}

impl Sex {
    /// Reads the usual spellings (`F`, `female`, `M`, `male`, `1`/`2` as in NHS data
    /// dictionaries); `None` for blank or unknown values.
    pub fn parse(text: &str) -> Option<Sex> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f" | "female" | "woman" | "girl" | "2" => Some(Sex::Female),
            "m" | "male" | "man" | "boy" | "1" => Some(Sex::Male),
            "o" | "other" | "x" | "9" => Some(Sex::Other),
            _ => None,
        }
    }
}

/// One partner's record of a person. Text fields are kept as the partner sent them (trimmed,
/// blanks as `None`); normalisation happens in `features`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The partner or list the record came from.
    pub source: String,
    /// The partner's identifier of the record.
    pub local_id: String,
    /// Given names, possibly several ("Mary Ann") or an initial ("J.").
    pub given_names: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Date of birth, if known and parseable.
    pub birth_date: Option<BirthDate>,
    /// Recorded sex.
    pub sex: Option<Sex>,
    /// House number or name.
    pub house_number: Option<String>,
    /// Street address (without the house number when the partner keeps it apart).
    pub address: Option<String>,
    /// Town or city.
    pub city: Option<String>,
    /// Postcode as written.
    pub postcode: Option<String>,
    /// County, state or region.
    pub region: Option<String>,
    /// Telephone number as written.
    pub phone: Option<String>,
    /// National identifier (NHS number in England and Wales), as written.
    pub national_id: Option<String>,
    /// Whether the partner verified the national identifier (e.g. traced against the spine).
    pub national_id_verified: bool,
    /// The partner's key worker for this person, if the list names one.
    pub key_worker: Option<String>,
    /// How to reach that key worker.
    pub key_worker_contact: Option<String>,
}

impl SourceRecord {
    /// The record's key.
    pub fn key(&self) -> RecordKey {
        RecordKey::new(self.source.clone(), self.local_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates_must_be_real() {
        assert!(BirthDate::new(1971, 2, 30).is_none());
        assert_eq!(BirthDate::new(2000, 2, 29).map(|d| d.to_string()), Some("2000-02-29".into()));
        let a = BirthDate::new(1971, 3, 14).unwrap();
        let b = BirthDate::new(1971, 3, 15).unwrap();
        assert_eq!(b.day_number() - a.day_number(), 1);
    }

    #[test]
    fn sex_reads_common_spellings() {
        assert_eq!(Sex::parse(" Female "), Some(Sex::Female));
        assert_eq!(Sex::parse("M"), Some(Sex::Male));
        assert_eq!(Sex::parse("unknown"), None);
    }
}
