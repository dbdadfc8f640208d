//! Duration flags: one form for every binary. A value is a humantime
//! duration (`30s`, `10m`, `1h`, `1h 30m`, `250ms`) or a plain number in
//! the unit the flag has always taken: seconds, or milliseconds for a
//! flag whose name ends in `_ms`. Each parser here is a clap
//! `value_parser` and keeps the flag's field type, so a flag changes only
//! in what it accepts:
//!
//! - [`parse_duration`]: a [`Duration`] (a plain number is seconds);
//! - [`parse_secs`]: whole seconds as an integer, for `*_secs` flags;
//! - [`parse_millis`]: whole milliseconds, for `*_ms` flags;
//! - [`parse_secs_f64`]: fractional seconds, for flags held as `f64`;
//! - [`in_range`]: any of these bounded, for flags with limits.
//!
//! This file depends on nothing but `std` and `humantime`, so any crate
//! can hold it (the edge agent includes it as its own module).

use std::ops::RangeInclusive;
use std::time::Duration;

/// A duration from humantime, or from a plain number of `plain_unit`s
/// (whole numbers exactly; a fraction rounded to the nanosecond).
fn parse_with(s: &str, plain_unit: Duration) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 30s, 10m, 1h".into());
    }
    let too_long = || format!("{s} is too long a duration");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = s.parse().map_err(|_| too_long())?;
        let nanos = u128::from(n) * plain_unit.as_nanos();
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
        let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| too_long())?;
        return Ok(Duration::new(secs, subsec));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let n: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number or a duration (30s, 10m, 1h)"))?;
        let nanos = (n * plain_unit.as_nanos() as f64).round();
        if !(0.0..u64::MAX as f64).contains(&nanos) {
            return Err(too_long());
        }
        return Ok(Duration::from_nanos(nanos as u64));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 10m, 1h or 250ms"))
}

/// A duration flag held as [`Duration`]: humantime, or a plain number of
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_with(s, Duration::from_secs(1))
}

/// A `*_secs` flag held as an integer number of seconds: humantime, or a
/// plain number of seconds. A value with a fraction of a second is
/// refused rather than rounded.
pub fn parse_secs<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let d = parse_with(s, Duration::from_secs(1))?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{s:?} is not a whole number of seconds"));
    }
    T::try_from(d.as_secs()).map_err(|_| format!("{s:?} is too many seconds for this flag"))
}

/// A `*_ms` flag held as an integer number of milliseconds: humantime, or
/// a plain number of milliseconds. A value with a fraction of a
/// millisecond is refused rather than rounded.
pub fn parse_millis<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let d = parse_with(s, Duration::from_millis(1))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{s:?} is not a whole number of milliseconds"));
    }
    let ms = u64::try_from(d.as_millis())
        .map_err(|_| format!("{s:?} is too many milliseconds for this flag"))?;
    T::try_from(ms).map_err(|_| format!("{s:?} is too many milliseconds for this flag"))
}

/// A duration flag held as fractional seconds (`f64`): humantime, or a
/// plain number of seconds.
pub fn parse_secs_f64(s: &str) -> Result<f64, String> {
    parse_with(s, Duration::from_secs(1)).map(|d| d.as_secs_f64())
}

/// `parse` bounded to `range` (in the flag's own unit), for a flag with
/// limits: `value_parser = |s: &str| in_range(s, parse_millis, 200..=600_000)`.
pub fn in_range<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    range: RangeInclusive<T>,
) -> Result<T, String>
where
    T: PartialOrd + std::fmt::Display,
{
    let value = parse(s)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{s:?} is {value}, outside {}..={}",
            range.start(),
            range.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_and_plain_seconds_give_a_duration() {
        assert_eq!(parse_duration("270s"), Ok(Duration::from_secs(270)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration(" 1.5 "), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        for bad in ["", "  ", "soon", "10 parsecs", "-5", "1.2.3", "5x"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(
                err.contains("30s") || err.contains("number"),
                "{bad}: {err}"
            );
        }
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn secs_flags_take_plain_seconds_and_humantime() {
        assert_eq!(parse_secs::<u64>("30"), Ok(30));
        assert_eq!(parse_secs::<u64>("30s"), Ok(30));
        assert_eq!(parse_secs::<u64>("1h"), Ok(3_600));
        assert_eq!(parse_secs::<u32>("1d"), Ok(86_400));
        assert!(parse_secs::<u64>("1500ms")
            .expect_err("fraction")
            .contains("whole"));
        assert!(parse_secs::<u32>("200years").is_err(), "does not fit a u32");
    }

    #[test]
    fn ms_flags_take_plain_milliseconds_and_humantime() {
        assert_eq!(parse_millis::<u64>("500"), Ok(500));
        assert_eq!(parse_millis::<u64>("500ms"), Ok(500));
        assert_eq!(parse_millis::<u64>("2s"), Ok(2_000));
        assert_eq!(parse_millis::<u64>("1m 5s"), Ok(65_000));
        assert!(parse_millis::<u64>("1us").is_err());
        assert!(parse_millis::<u64>("0.5").is_err(), "half a millisecond");
    }

    #[test]
    fn fractional_seconds_for_f64_flags() {
        assert_eq!(parse_secs_f64("20s"), Ok(20.0));
        assert_eq!(parse_secs_f64("20"), Ok(20.0));
        assert_eq!(parse_secs_f64("0.25"), Ok(0.25));
        assert_eq!(parse_secs_f64("1m"), Ok(60.0));
        assert_eq!(parse_secs_f64("1500ms"), Ok(1.5));
    }

    #[test]
    fn bounds_are_checked_in_the_flags_unit() {
        let lag = |s: &str| in_range(s, parse_millis::<u64>, 200..=600_000);
        assert_eq!(lag("2s"), Ok(2_000));
        assert_eq!(lag("200"), Ok(200));
        assert!(lag("100ms").expect_err("below").contains("200..=600000"));
        assert!(lag("11m").is_err());
    }
}
