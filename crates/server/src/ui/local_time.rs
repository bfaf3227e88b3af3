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
    // A time skipped or repeated by a clock change takes the earlier reading (jiff's
    // "compatible" rule, as browsers do).
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

/// A picker's value for an instant, shown in `tz` (to fill the picker in again).
pub fn picker_value(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M").to_string()
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
        assert_eq!(picker_value(at("2026-03-01T06:00:00Z"), &moscow), "2026-03-01T09:00");
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
