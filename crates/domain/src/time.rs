//! `Timestamp`: a UTC instant at microsecond precision, the contract's timestamp format.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, SubsecRound, Timelike, Utc};

/// A UTC instant truncated to whole microseconds, so that what is stored, read back and shown
/// are always equal. Displays as `2026-03-31T10:00:00.000000Z`.
///
/// ```
/// use domain::Timestamp;
///
/// let t = Timestamp::from_unix_micros(1_774_951_200_000_001).unwrap();
/// assert_eq!(t.to_string(), "2026-03-31T10:00:00.000001Z");
/// assert_eq!(Timestamp::from_naive_utc(t.naive_utc()), t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current instant, truncated to microseconds.
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(6))
    }

    /// The instant `naive` names in UTC, truncated to microseconds.
    pub fn from_naive_utc(naive: NaiveDateTime) -> Self {
        Self(naive.and_utc().trunc_subsecs(6))
    }

    /// The instant `micros` microseconds after the Unix epoch, when representable.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The instant `duration` later (this one when that is past the representable range).
    pub fn plus(&self, duration: std::time::Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self::from_unix_micros(self.unix_micros().saturating_add(micros)).unwrap_or(*self)
    }

    /// The instant as a UTC calendar time without zone, for storage.
    pub fn naive_utc(&self) -> NaiveDateTime {
        self.0.naive_utc()
    }

    /// The instant as a chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// `%Y-%m-%dT%H:%M:%S%.6fZ`. Years 0 to 9999 (every instant this service makes) are
    /// written digit by digit into one buffer and handed over in one piece: every response
    /// carries timestamps, a list two a trunk, and the formatting machinery showed in
    /// profiles. Other years take the general path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (date, time) = (self.0.date_naive(), self.0.time());
        // A leap second carries nanoseconds past 10^9; show it as the last microsecond.
        let micros = (time.nanosecond() / 1000).min(999_999);
        if let Ok(year @ 0..=9999) = u32::try_from(date.year()) {
            let mut text = *b"0000-00-00T00:00:00.000000Z";
            for (field, at, len) in [
                (year, 0, 4),
                (date.month(), 5, 2),
                (date.day(), 8, 2),
                (time.hour(), 11, 2),
                (time.minute(), 14, 2),
                (time.second(), 17, 2),
                (micros, 20, 6),
            ] {
                put_digits(&mut text[at..at + len], field);
            }
            return f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second(),
        )
    }
}

/// Writes the last `out.len()` decimal digits of `value` into `out`, zero-padded.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        // `value % 10` is below 10: the cast cannot truncate.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(
            Timestamp::now().as_datetime().timestamp_subsec_nanos() % 1000,
            0
        );
    }

    #[test]
    fn a_timestamp_displays_with_exactly_six_fractional_digits_and_z() {
        let t = Timestamp::from_unix_micros(0).unwrap();
        assert_eq!(t.to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn display_matches_the_strftime_form_across_dates() {
        for micros in [
            0,
            1,
            999_999,
            951_782_400_000_000,
            1_774_951_200_123_456,
            4_102_444_799_999_999,
            // The last instant of year 9999, the first of year 0, the last before 1970.
            253_402_300_799_999_999,
            -62_167_219_200_000_000,
            -1,
        ] {
            let t = Timestamp::from_unix_micros(micros).unwrap();
            assert_eq!(
                t.to_string(),
                t.as_datetime().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
        }
    }

    #[test]
    fn nanoseconds_are_truncated_not_rounded() {
        let naive = DateTime::from_timestamp(10, 999_999_999)
            .unwrap()
            .naive_utc();
        assert_eq!(
            Timestamp::from_naive_utc(naive).to_string(),
            "1970-01-01T00:00:10.999999Z"
        );
    }

    #[test]
    fn unix_micros_round_trip() {
        let t = Timestamp::from_unix_micros(1_774_951_200_123_456).unwrap();
        assert_eq!(t.unix_micros(), 1_774_951_200_123_456);
    }
}
