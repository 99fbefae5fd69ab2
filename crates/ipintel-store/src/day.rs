//! UTC calendar days, the unit of usage accounting.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};

/// Seconds in a UTC day (leap seconds do not exist in Unix time).
pub const SECS_PER_DAY: i64 = 86_400;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
/// Days from 1970-01-01 to 9999-12-31, the last day the calendar code handles.
const MAX_DAYS: i64 = 2_932_896;

/// A UTC calendar day, as days since 1970-01-01. Times before the epoch
/// clamp to day 0 and times after 9999-12-31 to that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDay(i64);

impl UtcDay {
    /// The day containing the Unix time `unix_secs`.
    pub fn from_unix(unix_secs: i64) -> Self {
        Self::from_days(unix_secs.div_euclid(SECS_PER_DAY))
    }

    /// The day `days` days after 1970-01-01 (clamped to the handled range).
    pub fn from_days(days: i64) -> Self {
        Self(days.clamp(0, MAX_DAYS))
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        self.0
    }

    /// Unix time of this day's 00:00 UTC.
    pub fn start_unix(self) -> i64 {
        self.0 * SECS_PER_DAY
    }

    /// Unix time of the next day's 00:00 UTC, when daily quotas reset.
    pub fn next_start_unix(self) -> i64 {
        (self.0 + 1) * SECS_PER_DAY
    }

    /// First and last day of this day's calendar month.
    pub fn month_bounds(self) -> (UtcDay, UtcDay) {
        let date = self.date();
        let first = self.0 - i64::from(date.day()) + 1;
        let last = first + i64::from(date.month().length(date.year())) - 1;
        (UtcDay(first), UtcDay(last))
    }

    fn date(self) -> Date {
        // The clamp in `from_days` keeps this inside the calendar's range.
        let julian = i32::try_from(self.0 + UNIX_EPOCH_JULIAN_DAY).unwrap_or(i32::MAX);
        Date::from_julian_day(julian).unwrap_or(Date::MAX)
    }
}

/// Text that is not a `YYYY-MM-DD` calendar date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a YYYY-MM-DD date")]
pub struct BadDay(pub String);

impl FromStr for UtcDay {
    type Err = BadDay;

    /// Parses the `YYYY-MM-DD` form that [`fmt::Display`] writes.
    fn from_str(text: &str) -> Result<Self, BadDay> {
        let bad = || BadDay(text.to_owned());
        let mut parts = text.splitn(3, '-');
        let mut field = |len: usize| {
            parts
                .next()
                .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(bad)
        };
        let (year, month, day) = (field(4)?, field(2)?, field(2)?);
        let month = u8::try_from(month)
            .ok()
            .and_then(|m| Month::try_from(m).ok())
            .ok_or_else(bad)?;
        let day = u8::try_from(day).map_err(|_| bad())?;
        let date = Date::from_calendar_date(i32::from(year), month, day).map_err(|_| bad())?;
        Ok(Self::from_days(
            i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY,
        ))
    }
}

/// Serialises a day as its `YYYY-MM-DD` text.
pub(crate) fn serialize_day<S: serde::Serializer>(day: &UtcDay, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(day)
}

impl fmt::Display for UtcDay {
    /// `YYYY-MM-DD`, the form stored in the `usage_daily.day` column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.date();
        write!(
            f,
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_days() {
        assert_eq!(UtcDay::from_unix(0).to_string(), "1970-01-01");
        assert_eq!(UtcDay::from_unix(86_399).to_string(), "1970-01-01");
        assert_eq!(UtcDay::from_unix(86_400).to_string(), "1970-01-02");
        // 2000-02-29T12:00:00Z
        assert_eq!(UtcDay::from_unix(951_825_600).to_string(), "2000-02-29");
        // 2026-10-05T23:59:59Z
        assert_eq!(UtcDay::from_unix(1_791_244_799).to_string(), "2026-10-05");
        assert_eq!(UtcDay::from_unix(-5).to_string(), "1970-01-01");
        assert_eq!(UtcDay::from_days(i64::MAX).to_string(), "9999-12-31");
    }

    #[test]
    fn parses_what_it_writes() {
        for unix in [0, 951_825_600, 1_791_244_799, 1_798_675_200] {
            let day = UtcDay::from_unix(unix);
            assert_eq!(day.to_string().parse::<UtcDay>(), Ok(day));
        }
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-1-01",
            "26-01-01",
            "2026-01-01x",
        ] {
            assert!(bad.parse::<UtcDay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn max_days_is_the_calendar_end() {
        let end = Date::MAX.to_julian_day() as i64 - UNIX_EPOCH_JULIAN_DAY;
        assert_eq!(end, MAX_DAYS);
    }

    #[test]
    fn month_bounds_cover_the_month() {
        let leap = UtcDay::from_unix(951_825_600); // 2000-02-29
        let (first, last) = leap.month_bounds();
        assert_eq!(first.to_string(), "2000-02-01");
        assert_eq!(last.to_string(), "2000-02-29");
        let dec = UtcDay::from_unix(1_798_675_200); // 2026-12-31
        let (first, last) = dec.month_bounds();
        assert_eq!(first.to_string(), "2026-12-01");
        assert_eq!(last.to_string(), "2026-12-31");
    }

    #[test]
    fn next_start_is_midnight() {
        let day = UtcDay::from_unix(1_791_200_000);
        assert_eq!(day.next_start_unix() % SECS_PER_DAY, 0);
        assert!(day.next_start_unix() > 1_791_200_000);
        assert!(day.next_start_unix() - 1_791_200_000 <= SECS_PER_DAY);
    }
}
