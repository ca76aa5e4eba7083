//! `StoredTime`: a `TIMESTAMP` column read as a `NaiveDateTime`, quickly on SQLite.
//!
//! SQLite keeps a timestamp as text. Diesel reads it by trying up to 18 `strftime` patterns
//! with chrono's general parser, which cost ~150 ns a value and showed in the profile of a
//! cache-off list (20 timestamps a page of 10). What Diesel writes is always
//! `YYYY-MM-DD HH:MM:SS.ffffff` (`%F %T%.f`), so that form is parsed here digit by digit; any
//! other text goes to Diesel's own parser, so nothing that read before reads differently.
//! PostgreSQL sends timestamps as binary integers: Diesel's reader is used as it is.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteType};

use super::connection::MultiBackend;

/// A `TIMESTAMP` column's value. Rows name it with `#[diesel(deserialize_as = StoredTime)]`
/// on a `NaiveDateTime` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub(crate) struct StoredTime(NaiveDateTime);

impl From<StoredTime> for NaiveDateTime {
    fn from(time: StoredTime) -> Self {
        time.0
    }
}

impl FromSql<Timestamp, Sqlite> for StoredTime {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(SqliteType::Text) {
            if let Some(time) = parse_diesel_text(value.read_text()) {
                return Ok(Self(time));
            }
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for StoredTime {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, MultiBackend> for StoredTime {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 fraction digits, the form Diesel
/// writes, when it names a real date and time; `None` for anything else (then the general
/// parser decides).
fn parse_diesel_text(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return None;
    }
    let (whole, fraction) = bytes.split_at(19);
    let separators_fit = whole[4] == b'-'
        && whole[7] == b'-'
        && whole[10] == b' '
        && whole[13] == b':'
        && whole[16] == b':';
    if !separators_fit {
        return None;
    }
    let number = |at: usize, len: usize| digits(&whole[at..at + len]);
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 2)?,
        number(8, 2)?,
    )?;
    let nanos = match fraction {
        [] => 0,
        [b'.', rest @ ..] if (1..=9).contains(&rest.len()) => {
            let scale = 10u32.pow(9 - u32::try_from(rest.len()).ok()?);
            digits(rest)? * scale
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(number(11, 2)?, number(14, 2)?, number(17, 2)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

/// The value of a run of ASCII digits (at most 9, so it fits), `None` if any byte is not one.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(text: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(text, "%F %T%.f").ok()
    }

    #[test]
    fn what_diesel_writes_reads_back_as_the_same_instant() {
        for (seconds, nanos) in [
            (0, 0),
            (1, 1_000),
            (951_782_400, 999_999_000),
            (1_774_951_200, 123_456_000),
            (4_102_444_799, 999_999_999),
            (1_709_164_800, 500_000_000),
        ] {
            let time = chrono::DateTime::from_timestamp(seconds, nanos)
                .unwrap()
                .naive_utc();
            let written = time.format("%F %T%.f").to_string();
            assert_eq!(parse_diesel_text(&written), Some(time), "{written}");
        }
    }

    #[test]
    fn the_fast_form_agrees_with_the_general_parser_on_every_fraction_length() {
        let mut text = String::from("2026-02-28 23:59:58");
        assert_eq!(parse_diesel_text(&text), general(&text));
        text.push('.');
        for digit in ['1', '2', '3', '4', '5', '6', '7', '8', '9'] {
            text.push(digit);
            assert_eq!(parse_diesel_text(&text), general(&text), "{text}");
            assert!(parse_diesel_text(&text).is_some());
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_parser() {
        for text in [
            "",
            "2026-03-31",
            "2026-03-31T10:00:00",
            "2026-03-31 10:00:00Z",
            "2026-03-31 10:00:00+02:00",
            "2026-03-31 10:00:00.",
            "2026-03-31 10:00:00.1234567890",
            "2026-02-30 10:00:00",
            "2026-03-31 24:00:00",
            "2026-03-31 10:60:00",
            "2026-13-01 10:00:00",
            "2026-03-31 10:00:0x",
            "+026-03-31 10:00:00",
            "2026-03-31 10:00:00.12a",
            "2459000.5",
        ] {
            assert_eq!(parse_diesel_text(text), None, "{text:?}");
        }
    }
}
