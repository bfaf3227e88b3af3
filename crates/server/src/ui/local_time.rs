//! Times the operator types into a form. A page asks with `<input type="datetime-local">` (the
//! browser's date-time picker, which yields a wall-clock time such as `2026-03-01T09:00` with
//! no zone) next to a hidden `tz` field. The page's script puts the browser's time zone there
//! (an IANA name, e.g. `Europe/Moscow`); without the script it keeps the server's
//! `default_timezone`, which the page names. The server reads the wall-clock time in that zone
//! — at the offset that zone has on that date, so a summer date in Berlin is +02:00 even when
//! typed in winter — and works with the instant in UTC from there.
//!
//! ```text
//!  picker "2026-03-01T09:00" + tz "Europe/Moscow" ──► 2026-03-01T06:00:00Z ──► not in the past?
//!  a period's dates "2026-11-22" … "2026-11-22" + tz ──► [that day's midnight, the next one's)
//! ```

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use okno_domain::{Error, Result};

/// How far in the past a time may be and still mean "now": the minute the operator picked
/// may have begun before the form was sent.
const GRACE_MS: i64 = 60_000;

/// The zone a form's times are read in: `tz` from the form, else `default`. An unknown zone
/// is refused (`unknown_time_zone`) rather than guessed.
pub fn zone(tz: Option<&str>, default: &str) -> Result<TimeZone> {
    let name = tz.map(str::trim).filter(|t| !t.is_empty()).unwrap_or(default);
    TimeZone::get(name).map_err(|_| Error::invalid("unknown_time_zone", format!("`{name}` is not a known time zone")))
}

/// The zone's name for the page: `Europe/Moscow`, or `UTC`.
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_string()
}

/// A picker's value (`YYYY-MM-DDTHH:MM`, seconds optional) read in `tz`; an RFC 3339 time
/// with its own offset (`2026-03-01T09:00:00+03:00`) is taken as it is. Anything else is
/// `invalid_time`.
pub fn parse(value: &str, tz: &TimeZone) -> Result<Timestamp> {
    let value = value.trim();
    if let Ok(ts) = value.parse::<Timestamp>() {
        return Ok(ts);
    }
    let local: DateTime = value.parse().map_err(|_| {
        Error::invalid("invalid_time", format!("`{value}` is not a date and time (expected 2026-03-01T09:00)"))
    })?;
    // jiff's "compatible" rule, as browsers read such times: a time a clock change skipped
    // (02:30 on the spring-forward night in Berlin) is taken after the gap (03:30, the later
    // reading); a time it repeats (02:30 on the fall-back night) is the first of the two (the
    // earlier reading, still in summer time).
    tz.to_ambiguous_zoned(local)
        .compatible()
        .map(|z| z.timestamp())
        .map_err(|e| Error::invalid("invalid_time", format!("`{value}`: {e}")))
}

/// [`parse`], refusing a time more than a minute before `now` (`time_in_past`).
pub fn parse_future(value: &str, tz: &TimeZone, now: Timestamp) -> Result<Timestamp> {
    let at = parse(value, tz)?;
    if at.as_millisecond() + GRACE_MS < now.as_millisecond() {
        return Err(Error::invalid("time_in_past", format!("`{value}` is in the past")));
    }
    Ok(at)
}

/// The instant as the API writes times: RFC 3339 in UTC, whole seconds.
pub fn to_rfc3339(ts: Timestamp) -> String {
    okno_domain::time::to_rfc3339(ts.as_millisecond())
}

/// The first instant of a day (`2026-11-22`) in `tz`; an RFC 3339 time or a picker's value is
/// read as [`parse`] reads it. For a period's start.
pub fn day_start(value: &str, tz: &TimeZone) -> Result<Timestamp> {
    match date_alone(value) {
        Some(day) => start_of(day, tz, value),
        None => parse(value, tz),
    }
}

/// The end of a day (`2026-11-22`) in `tz`: the first instant of the next, so a period "to the
/// 22nd" holds all of the 22nd. An RFC 3339 time or a picker's value is read as [`parse`]
/// reads it (the period ends there).
pub fn day_end(value: &str, tz: &TimeZone) -> Result<Timestamp> {
    match date_alone(value) {
        Some(day) => {
            let next = day.tomorrow().map_err(|e| Error::invalid("invalid_time", format!("`{value}`: {e}")))?;
            start_of(next, tz, value)
        }
        None => parse(value, tz),
    }
}

/// A bare date (`2026-11-22`, nothing after it).
fn date_alone(value: &str) -> Option<jiff::civil::Date> {
    let value = value.trim();
    (value.len() == 10).then(|| value.parse().ok()).flatten()
}

/// Midnight of `day` in `tz` (or the first instant after it, where a clock change skips it).
fn start_of(day: jiff::civil::Date, tz: &TimeZone, value: &str) -> Result<Timestamp> {
    day.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| Error::invalid("invalid_time", format!("`{value}`: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_picked_time_is_read_in_the_zone_at_that_dates_offset() {
        let moscow = zone(Some("Europe/Moscow"), "UTC").unwrap();
        assert_eq!(parse("2026-03-01T09:00", &moscow).unwrap(), at("2026-03-01T06:00:00Z"));
        let berlin = zone(Some("Europe/Berlin"), "UTC").unwrap();
        assert_eq!(parse("2026-07-01T09:00", &berlin).unwrap(), at("2026-07-01T07:00:00Z"), "summer: +02:00");
        assert_eq!(parse("2026-01-15T09:00:30", &berlin).unwrap(), at("2026-01-15T08:00:30Z"), "winter: +01:00");
        // Without a zone from the page the server's default is used.
        let default = zone(None, "Asia/Yekaterinburg").unwrap();
        assert_eq!(zone_name(&default), "Asia/Yekaterinburg");
        assert_eq!(parse("2026-03-01T09:00", &default).unwrap(), at("2026-03-01T04:00:00Z"));
        // A full RFC 3339 time keeps its own offset.
        assert_eq!(parse("2026-03-01T09:00:00+03:00", &berlin).unwrap(), at("2026-03-01T06:00:00Z"));
        assert_eq!(to_rfc3339(at("2026-03-01T06:00:00Z")), "2026-03-01T06:00:00Z");
    }

    #[test]
    fn times_a_clock_change_skips_or_repeats_are_read_as_browsers_read_them() {
        let berlin = zone(Some("Europe/Berlin"), "UTC").unwrap();
        // 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 never happens and is read after
        // the gap, as 03:30 CEST.
        assert_eq!(parse("2026-03-29T02:30", &berlin).unwrap(), at("2026-03-29T01:30:00Z"));
        assert_eq!(parse("2026-03-29T03:30", &berlin).unwrap(), at("2026-03-29T01:30:00Z"));
        // 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice and is the
        // first of the two, still in summer time.
        assert_eq!(parse("2026-10-25T02:30", &berlin).unwrap(), at("2026-10-25T00:30:00Z"));
        assert_eq!(parse("2026-10-25T03:30", &berlin).unwrap(), at("2026-10-25T02:30:00Z"));
    }

    #[test]
    fn a_day_is_read_in_the_zone_and_its_end_is_the_next_midnight() {
        let moscow = zone(Some("Europe/Moscow"), "UTC").unwrap();
        assert_eq!(day_start("2026-11-22", &moscow).unwrap(), at("2026-11-21T21:00:00Z"));
        assert_eq!(day_end("2026-11-22", &moscow).unwrap(), at("2026-11-22T21:00:00Z"), "the 22nd is in");
        let berlin = zone(Some("Europe/Berlin"), "UTC").unwrap();
        assert_eq!(day_end("2026-03-28", &berlin).unwrap(), at("2026-03-28T23:00:00Z"), "winter midnight");
        assert_eq!(day_end("2026-03-29", &berlin).unwrap(), at("2026-03-29T22:00:00Z"), "a 23-hour day");
        // A time keeps its own meaning.
        assert_eq!(day_end("2026-11-22T10:00:00Z", &moscow).unwrap(), at("2026-11-22T10:00:00Z"));
        assert_eq!(day_start("2026-11-22T10:00", &moscow).unwrap(), at("2026-11-22T07:00:00Z"));
        assert_eq!(day_start("вчера", &moscow).unwrap_err().code, "invalid_time");
    }

    #[test]
    fn bad_times_and_zones_and_past_times_are_refused() {
        let utc = zone(None, "UTC").unwrap();
        assert_eq!(parse("tomorrow", &utc).unwrap_err().code, "invalid_time");
        assert_eq!(parse("2026-02-30T09:00", &utc).unwrap_err().code, "invalid_time");
        assert_eq!(zone(Some("Mars/Olympus"), "UTC").unwrap_err().code, "unknown_time_zone");
        let now = at("2026-03-01T06:00:00Z");
        assert_eq!(parse_future("2026-03-01T05:58", &utc, now).unwrap_err().code, "time_in_past");
        assert!(parse_future("2026-03-01T05:59:30", &utc, now).is_ok(), "the current minute is now");
        assert!(parse_future("2026-03-01T06:01", &utc, now).is_ok());
    }
}
