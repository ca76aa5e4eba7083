//! Text columns read without a `String` of their own: `StoredCode`, a column that holds one
//! of a fixed set of codes (`number`, `+e164`, `auth`, `US`), read straight into its domain
//! value; and `StoredText`, a short text (a phone number, a username, a host, a leg id) read
//! into a [`CompactString`], which keeps up to 24 bytes inline.
//!
//! Read as a `String`, each such column cost a row an allocation and a free for text that
//! is parsed at once and thrown away: four per trunk, forty per listed page (issue 25's
//! allocation count of a cache-off list). Here the code is parsed from the text the row
//! holds, borrowed. A code that does not parse is kept as the parser's reason, so the row is
//! still reported as unreadable (naming the column, never the value) exactly as before, and
//! not as a failed page. The texts a trunk keeps (its number, username, host, nickname and
//! leg ids) went from a heap allocation each to none when short, as they nearly always are.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use domain::{AuthorizationType, CallingFormat, CompactString, CountryCode, FieldError, TrunkType};

use super::connection::MultiBackend;

/// What a text column's value is read into, from the row's own text (borrowed).
pub(crate) trait FromText {
    /// The value of `text`.
    fn from_text(text: &str) -> Self;
}

/// A text column read through [`FromText`]: one set of Diesel impls for every such reading.
#[derive(Debug, FromSqlRow)]
pub(crate) struct ReadText<T>(pub(crate) T);

impl<T: FromText> FromSql<Text, Sqlite> for ReadText<T> {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Self(T::from_text(value.read_text())))
    }
}

impl<T: FromText> FromSql<Text, Pg> for ReadText<T> {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        // Not UTF-8 fails the read as Diesel's own `String` would.
        Ok(Self(T::from_text(std::str::from_utf8(value.as_bytes())?)))
    }
}

impl<T: FromText> FromSql<Text, MultiBackend> for ReadText<T> {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Text>()
    }
}

/// A domain value stored as a short text code.
pub(crate) trait Code: Sized {
    /// The value `text` names.
    fn parse(text: &str) -> Result<Self, FieldError>;
}

impl Code for TrunkType {
    fn parse(text: &str) -> Result<Self, FieldError> {
        TrunkType::parse(text)
    }
}

impl Code for CallingFormat {
    fn parse(text: &str) -> Result<Self, FieldError> {
        CallingFormat::parse(text)
    }
}

impl Code for AuthorizationType {
    fn parse(text: &str) -> Result<Self, FieldError> {
        AuthorizationType::parse(text)
    }
}

impl Code for CountryCode {
    fn parse(text: &str) -> Result<Self, FieldError> {
        CountryCode::parse(text)
    }
}

impl<T: Code> FromText for Result<T, FieldError> {
    fn from_text(text: &str) -> Self {
        T::parse(text)
    }
}

/// A code column's value: the domain value, or why the stored text is not one. Rows name it
/// with `#[diesel(deserialize_as = StoredCode<T>)]` on a `Result<T, FieldError>` field.
pub(crate) type StoredCode<T> = ReadText<Result<T, FieldError>>;

impl<T> From<StoredCode<T>> for Result<T, FieldError> {
    fn from(code: StoredCode<T>) -> Self {
        code.0
    }
}

impl FromText for CompactString {
    fn from_text(text: &str) -> Self {
        CompactString::from(text)
    }
}

/// A text column's value, copied from the row's own text into a [`CompactString`] (inline up
/// to 24 bytes: no allocation for a phone number, a username, most hosts and leg ids).
pub(crate) type StoredText = ReadText<CompactString>;

impl From<String> for StoredText {
    fn from(text: String) -> Self {
        Self(CompactString::from(text))
    }
}
