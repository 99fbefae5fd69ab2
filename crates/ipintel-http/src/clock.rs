//! Wall-clock helpers: unix time and civil (proleptic Gregorian) dates.

pub(crate) use ipintel_core::reports::rfc3339;
pub(crate) use ipintel_store::now_unix;

use ipintel_core::reports::civil_from_days;

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses `YYYY-MM-DD` into days since the epoch; `None` if malformed.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let valid = text.len() == 10 && (1..=12).contains(&month) && (1..=31).contains(&day);
    let days = days_from_civil(year, month, day);
    // Reject dates such as 02-30 that roll over into the next month.
    (valid && civil_from_days(days) == (year, month, day)).then_some(days)
}

/// Parses an RFC 3339 time (`2026-06-05T12:00:00Z`, `...T12:00:00.5+02:00`)
/// into unix seconds (fractions dropped); `None` if malformed.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let days = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, zone) = split_zone(rest)?;
    let clock = clock.split('.').next()?;
    let mut parts = clock.splitn(3, ':');
    let hour: i64 = two_digits(parts.next()?)?;
    let minute: i64 = two_digits(parts.next()?)?;
    let second: i64 = two_digits(parts.next()?)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - zone)
}

/// Splits `HH:MM:SS[.frac]` from its zone; the zone as seconds east of UTC.
fn split_zone(text: &str) -> Option<(&str, i64)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let at = text.len().checked_sub(6)?;
    let (clock, zone) = (text.get(..at)?, text.get(at..)?);
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = zone.get(1..)?.split_once(':')?;
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    (hours <= 23 && minutes <= 59).then_some((clock, sign * (hours * 3600 + minutes * 60)))
}

fn two_digits(text: &str) -> Option<i64> {
    let ok = text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok()).flatten()
}

/// Whole days from the date `days` to the instant `now_unix` (may be negative).
pub(crate) fn age_days(days: i64, now_unix: i64) -> i64 {
    now_unix.div_euclid(SECS_PER_DAY) - days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("2026-06-05"), Some(20_609));
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "2026-6-5",
            "2026-02-30",
            "2026-13-01",
            "2026/06/05",
            "x-y-z",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_round_trip_over_leap_years() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(
            parse_rfc3339("2000-02-29T14:34:56.25+02:00"),
            Some(951_827_696)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T10:34:56-02:00"),
            Some(951_827_696)
        );
        for bad in [
            "",
            "2000-02-29",
            "2000-02-29T12:34Z",
            "2000-02-29T24:00:00Z",
            "2000-02-30T12:00:00Z",
            "2000-02-29T12:00:00+2:00",
            "2000-02-29T12:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn age_counts_whole_days() {
        let day = parse_date("2026-06-05").unwrap();
        assert_eq!(age_days(day, day * 86_400 + 86_399), 0);
        assert_eq!(age_days(day, (day + 3) * 86_400), 3);
    }
}
