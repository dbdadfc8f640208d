//! NAB's timestamps (`2014-04-10 07:15:00` in data files,
//! `2014-04-10 07:15:00.000000` in label files), parsed to one comparable
//! value so a window edge matches its data row whatever the spelling.

use std::fmt;

use super::NabError;

/// Microseconds since 1970-01-01 00:00:00 (NAB timestamps carry no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses `YYYY-MM-DD HH:MM:SS` with an optional `.f` to `.ffffff`
    /// fraction; a `T` may separate date and time.
    pub fn parse(text: &str) -> Result<Self, NabError> {
        let bad = || NabError::Timestamp {
            value: text.chars().take(40).collect(),
        };
        let b = text.trim().as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
            return Err(bad());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let num = |from: usize, to: usize| -> Result<i64, NabError> {
            b[from..to].iter().try_fold(0i64, |acc, c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + i64::from(c - b'0'))
                } else {
                    Err(bad())
                }
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(bad());
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad());
        }
        let mut micros = 0;
        if b.len() > 19 {
            let digits = b.len() - 20;
            if b[19] != b'.' || !(1..=6).contains(&digits) {
                return Err(bad());
            }
            micros = num(20, b.len())? * 10i64.pow(6 - digits as u32);
        }
        let days = vigil_eval_core::days_from_civil(year, month, day);
        Ok(Timestamp(
            ((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros,
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_label_spellings_agree() {
        let a = Timestamp::parse("2014-04-10 07:15:00").expect("data style");
        let b = Timestamp::parse("2014-04-10 07:15:00.000000").expect("label style");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2014-04-10 07:15:00");
        assert_eq!(
            Timestamp::parse("1970-01-02 00:00:01.5")
                .expect("fraction")
                .0,
            86_401_500_000
        );
    }

    #[test]
    fn order_follows_time_across_month_and_year_ends() {
        let t = |s| Timestamp::parse(s).expect(s);
        assert!(t("2015-12-31 23:59:59") < t("2016-01-01 00:00:00"));
        assert!(t("2016-02-28 12:00:00") < t("2016-02-29 00:00:00"));
        assert_eq!(
            t("2016-03-01 00:00:00").0 - t("2016-02-28 00:00:00").0,
            2 * 86_400_000_000
        );
    }

    #[test]
    fn garbage_is_rejected_with_the_value() {
        for s in [
            "",
            "2014-04-10",
            "2014/04/10 07:15:00",
            "2014-13-10 07:15:00",
            "2014-04-10 07:15:00.1234567",
            "2014-04-10 07:1x:00",
        ] {
            let err = Timestamp::parse(s).expect_err(s);
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
    }
}
