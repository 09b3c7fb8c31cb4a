//! Calendar dates from servers, turned into Unix time without a date library.
//!
//! Servers say when something happened either as a number (ms since the Unix
//! epoch) or as text: RFC 3339 / ISO 8601 (`2026-11-30T09:15:00.250Z`, seed 003's
//! `createdAt`) or an HTTP date (`Retry-After`). This module is the one home of
//! the calendar arithmetic both need.
//!
//! Invariants:
//! - every field is checked against its calendar range first (years 1970–9999),
//!   so no input, however hostile, overflows the arithmetic below;
//! - a date that is not exactly one of the accepted forms is `None`, never a
//!   guess.

/// Seconds since the Unix epoch of a UTC civil date and time, or `None` when a
/// field is outside its range (year 1970–9999, month 1–12, day 1–31, hour 0–23,
/// minute 0–59, second 0–60 for a leap second).
pub fn unix_seconds(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> Option<i64> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, mp) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` or a space between date and
/// time, `z`/`t` in either case. A date without a time or zone is refused: its
/// instant is not known.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let shape = at(4, b'-')
        && at(7, b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && at(13, b':')
        && at(16, b':');
    if !shape {
        return None;
    }
    let secs = unix_seconds(
        num(0, 4)?,
        num(5, 2)?,
        num(8, 2)?,
        num(11, 2)?,
        num(14, 2)?,
        num(17, 2)?,
    )?;
    let mut i = 19;
    let mut ms = 0;
    if at(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds from the first three digits; finer digits are dropped.
        let first = b[i + 1..i + 1 + digits.min(3)]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        ms = first * 10i64.pow(3 - digits.min(3) as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && at(i + 3, b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some((secs - offset) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms_are_read_to_the_millisecond() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T09:15:00.250Z"),
            Some(1_796_030_100_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T10:15:00.250+01:00"),
            Some(1_796_030_100_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-30 04:15:00.250123-05:00"),
            Some(1_796_030_100_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-30t09:15:00.2z"),
            Some(1_796_030_100_200)
        );
    }

    #[test]
    fn anything_else_is_none_and_nothing_overflows() {
        for bad in [
            "",
            "2026-11-30",
            "2026-11-30T09:15:00",
            "2026-11-30T09:15:00.Z",
            "2026-13-30T09:15:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T09:15:00+24:00",
            "2026-11-30T09:15:00+01",
            "2026-11-30T09:15:00Zjunk",
            "99999-11-30T09:15:00Z",
            "1969-12-31T23:59:59Z",
            "２０２6-11-30T09:15:00Z",
            "now",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
        // Digits past the millisecond are dropped, however many.
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T09:15:00.99999999999999999999999Z"),
            Some(1_796_030_100_999)
        );
        assert_eq!(unix_seconds(i64::MAX, 1, 1, 0, 0, 0), None);
        assert_eq!(
            unix_seconds(9999, 12, 31, 23, 59, 60),
            Some(253_402_300_800)
        );
    }
}
