//! Calendar arithmetic on civil dates, relative to the fixed reference date (never the wall clock).

use std::fmt;

/// A civil (proleptic Gregorian) date, stored as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(i64);

/// The fixed "today" of the demo partnership: 2026-11-01.
pub const REFERENCE_DATE: Date = Date::from_ymd(2026, 11, 1);

impl Date {
    /// The date for a year, month (1–12) and day (1–31). Out-of-range days roll over.
    pub const fn from_ymd(year: i64, month: u32, day: u32) -> Date {
        // Howard Hinnant's days_from_civil.
        let y = if month <= 2 { year - 1 } else { year };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = month as i64;
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Date(era * 146_097 + doe - 719_468)
    }

    /// Year, month (1–12) and day (1–31).
    pub const fn ymd(self) -> (i64, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let z = self.0 + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// This date moved by a number of days (negative moves back).
    pub const fn add_days(self, days: i64) -> Date {
        Date(self.0 + days)
    }

    /// Days from `other` to `self`.
    pub const fn days_since(self, other: Date) -> i64 {
        self.0 - other.0
    }

    /// An RFC 3339 / FHIR `dateTime` at a minute of this day, in UTC.
    pub fn at(self, minute_of_day: u32) -> String {
        let m = minute_of_day % (24 * 60);
        format!("{self}T{:02}:{:02}:00Z", m / 60, m % 60)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Date(0));
        assert_eq!(REFERENCE_DATE.to_string(), "2026-11-01");
        assert_eq!(Date::from_ymd(2024, 2, 28).add_days(1).to_string(), "2024-02-29");
        assert_eq!(Date::from_ymd(2023, 2, 28).add_days(1).to_string(), "2023-03-01");
        for days in -40_000..40_000 {
            let d = Date(days);
            let (y, m, dd) = d.ymd();
            assert_eq!(Date::from_ymd(y, m, dd), d);
        }
        assert_eq!(Date::from_ymd(2026, 8, 4).at(9 * 60 + 30), "2026-08-04T09:30:00Z");
    }
}
