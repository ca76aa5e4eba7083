//! `TrunkType` and `PhoneNumber`: a PBX extension or an E.164 number, checked by type.

use std::fmt;

use compact_str::CompactString;

use crate::{CountryCode, FieldError};

/// How a trunk's phone number is read: the create body's `sip_trunk_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkType {
    /// A PBX extension such as `1000`.
    Extension,
    /// An E.164 number such as `+14155551234`.
    Number,
}

impl TrunkType {
    /// Accepts exactly `extension` or `number`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "extension" => Ok(Self::Extension),
            "number" => Ok(Self::Number),
            _ => Err(FieldError::new(
                "The sip trunk type must be one of: extension, number.",
            )),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extension => "extension",
            Self::Number => "number",
        }
    }
}

impl fmt::Display for TrunkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trunk's phone number, valid for its [`TrunkType`].
///
/// * extension: 1 to 15 characters, each a letter, a digit or one of `* # . _ -`;
/// * number: E.164, `+` then 2 to 15 digits, the first not 0.
///
/// ```
/// use domain::{PhoneNumber, TrunkType};
///
/// let number = PhoneNumber::parse(TrunkType::Number, "+14155551234").unwrap();
/// assert_eq!(number.derived_country().unwrap().as_str(), "US");
/// assert!(PhoneNumber::parse(TrunkType::Number, "14155551234").is_err());
/// assert!(PhoneNumber::parse(TrunkType::Extension, "1000").is_ok());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    kind: TrunkType,
    /// At most 15 characters: kept inline, never on the heap.
    value: CompactString,
}

impl PhoneNumber {
    /// Longest extension and longest E.164 digit string.
    pub const MAX_LEN: usize = 15;

    /// Checks `raw` against the rule of `kind`. Nothing is trimmed or rewritten.
    pub fn parse(kind: TrunkType, raw: &str) -> Result<Self, FieldError> {
        Self::check(kind, raw)?;
        Ok(Self {
            kind,
            value: CompactString::from(raw),
        })
    }

    /// [`PhoneNumber::parse`] of a value read back from storage, kept without a copy.
    pub fn from_stored(kind: TrunkType, raw: impl Into<CompactString>) -> Result<Self, FieldError> {
        let raw = raw.into();
        Self::check(kind, &raw)?;
        Ok(Self { kind, value: raw })
    }

    fn check(kind: TrunkType, raw: &str) -> Result<(), FieldError> {
        let valid = match kind {
            TrunkType::Extension => is_extension(raw),
            TrunkType::Number => is_e164(raw),
        };
        if valid {
            Ok(())
        } else {
            Err(FieldError::new(match kind {
                TrunkType::Extension => "The phone number must be an extension of 1 to 15 characters: letters, digits, *, #, ., _ or -.",
                TrunkType::Number => "The phone number must be in E.164 format: + followed by 2 to 15 digits, the first not 0, such as +14155551234.",
            }))
        }
    }

    /// Whether this is an extension or an E.164 number.
    pub fn kind(&self) -> TrunkType {
        self.kind
    }

    /// The number as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The country an E.164 number belongs to: the region the numbering plan gives the whole
    /// number when it recognises it (`+14165551234` is CA), otherwise the main country of its
    /// calling code (`+15550000000` is US). Extensions and calling codes with no ISO country
    /// (`+800...`, Kosovo's `+383`) give `None`.
    ///
    /// Falling back to the calling code makes the rule depend on the first 1 to 3 digits only,
    /// so it can be published as a pattern (see [`PhoneNumber::derivable_calling_codes`]) and
    /// does not change when the numbering plan's metadata gains or loses a range.
    pub fn derived_country(&self) -> Option<CountryCode> {
        if self.kind != TrunkType::Number {
            return None;
        }
        let digits = self.value.strip_prefix('+')?;
        let code = calling_code(digits)?;
        phonenumber::parse(None, &self.value)
            .ok()
            .filter(|number| number.code().value() == code)
            .and_then(|number| number.country().id())
            .and_then(CountryCode::from_phone_region)
            .or_else(|| main_country(code))
    }

    /// The country calling codes whose numbers have a derived country, ascending. No code is
    /// a prefix of another, so a number's code is read unambiguously from its first digits.
    pub fn derivable_calling_codes() -> Vec<u16> {
        (1..=999)
            .filter(|code| main_country(*code).is_some())
            .collect()
    }
}

/// The calling code a number's digits start with, when the numbering plan knows it.
fn calling_code(digits: &str) -> Option<u16> {
    (1..=3)
        .filter_map(|len| digits.get(..len)?.parse::<u16>().ok())
        .find(|code| phonenumber::metadata::DATABASE.region(code).is_some())
}

/// The ISO country of a calling code's main region (`1` is US, `44` is GB).
fn main_country(code: u16) -> Option<CountryCode> {
    let regions = phonenumber::metadata::DATABASE.region(&code)?;
    CountryCode::from_region_id(regions.first()?)
}

fn is_extension(raw: &str) -> bool {
    (1..=PhoneNumber::MAX_LEN).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'#' | b'.' | b'_' | b'-'))
}

fn is_e164(raw: &str) -> bool {
    let Some(digits) = raw.strip_prefix('+') else {
        return false;
    };
    (2..=PhoneNumber::MAX_LEN).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({:?}, {:?})", self.kind, self.value)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_numbers_read_as_parsing_would_read_them() {
        for kind in [TrunkType::Number, TrunkType::Extension] {
            for raw in [
                "+14155551234",
                "1000",
                "*72#",
                "+0123",
                "",
                "12 34",
                "+1234567890123456",
            ] {
                assert_eq!(
                    PhoneNumber::from_stored(kind, raw.to_owned()).map(|n| n.as_str().to_owned()),
                    PhoneNumber::parse(kind, raw).map(|n| n.as_str().to_owned()),
                    "{kind:?} {raw:?}"
                );
            }
        }
    }

    fn extension(raw: &str) -> Result<PhoneNumber, FieldError> {
        PhoneNumber::parse(TrunkType::Extension, raw)
    }

    fn number(raw: &str) -> Result<PhoneNumber, FieldError> {
        PhoneNumber::parse(TrunkType::Number, raw)
    }

    #[test]
    fn trunk_type_accepts_exactly_extension_and_number() {
        assert_eq!(TrunkType::parse("extension"), Ok(TrunkType::Extension));
        assert_eq!(TrunkType::parse("number"), Ok(TrunkType::Number));
        for raw in ["", "Number", "EXTENSION", " number", "phone", "ext"] {
            assert!(TrunkType::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_numeric_extension_is_accepted() {
        assert_eq!(extension("1000").unwrap().as_str(), "1000");
    }

    #[test]
    fn an_extension_may_use_letters_and_the_dial_symbols() {
        for raw in ["a", "sales-1", "*97", "#1", "ext.101", "front_desk"] {
            assert!(extension(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn an_extension_of_15_characters_is_accepted_and_16_refused() {
        assert!(extension(&"1".repeat(15)).is_ok());
        assert!(extension(&"1".repeat(16)).is_err());
    }

    #[test]
    fn an_empty_extension_is_refused() {
        assert!(extension("").is_err());
    }

    #[test]
    fn an_extension_with_spaces_plus_or_other_symbols_is_refused() {
        for raw in [
            "10 00",
            "+1000",
            "1000@pbx",
            "10/0",
            "١٢٣",
            "１０００",
            "x\u{0}",
        ] {
            assert!(extension(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn an_e164_number_is_accepted_as_written() {
        assert_eq!(number("+14155551234").unwrap().as_str(), "+14155551234");
    }

    #[test]
    fn e164_allows_2_to_15_digits() {
        assert!(number("+12").is_ok());
        assert!(number(&format!("+1{}", "2".repeat(14))).is_ok());
        assert!(number("+1").is_err());
        assert!(number(&format!("+1{}", "2".repeat(15))).is_err());
    }

    #[test]
    fn e164_needs_the_plus_and_refuses_a_leading_zero() {
        assert!(number("14155551234").is_err());
        assert!(number("+04155551234").is_err());
        assert!(number("0014155551234").is_err());
    }

    #[test]
    fn e164_refuses_separators_letters_and_non_ascii_digits() {
        for raw in [
            "+1 415 555 1234",
            "+1-415-555-1234",
            "+1415555123a",
            "+١٤١٥٥٥٥١٢٣٤",
            "+１４１５",
            "++14155551234",
            "+",
        ] {
            assert!(number(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn an_extension_is_not_a_number_and_the_messages_say_which_rule_failed() {
        let error = number("1000").unwrap_err();
        assert!(error.message().contains("E.164"));
        let error = extension("+14155551234").unwrap_err();
        assert!(error.message().contains("extension"));
    }

    #[test]
    fn the_country_is_derived_from_the_number() {
        assert_eq!(
            number("+14155551234")
                .unwrap()
                .derived_country()
                .unwrap()
                .as_str(),
            "US"
        );
        assert_eq!(
            number("+14165551234")
                .unwrap()
                .derived_country()
                .unwrap()
                .as_str(),
            "CA"
        );
        assert_eq!(
            number("+442071838750")
                .unwrap()
                .derived_country()
                .unwrap()
                .as_str(),
            "GB"
        );
        assert_eq!(
            number("+33142685300")
                .unwrap()
                .derived_country()
                .unwrap()
                .as_str(),
            "FR"
        );
    }

    #[test]
    fn extensions_and_non_geographic_numbers_have_no_derived_country() {
        assert_eq!(extension("1000").unwrap().derived_country(), None);
        assert_eq!(number("+80012345678").unwrap().derived_country(), None);
        assert_eq!(number("+38344123456").unwrap().derived_country(), None);
        assert_eq!(number("+999999999999999").unwrap().derived_country(), None);
    }

    #[test]
    fn a_number_the_plan_does_not_recognise_gets_its_calling_codes_main_country() {
        for (raw, country) in [
            ("+15550000000", "US"),
            ("+12", "US"),
            ("+70", "RU"),
            ("+4400", "GB"),
            ("+20", "EG"),
            ("+2470000", "SH"),
            ("+199999999999999", "US"),
        ] {
            let derived = number(raw).unwrap().derived_country();
            assert_eq!(
                derived.map(|c| c.as_str().to_owned()),
                Some(country.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn derivable_calling_codes_are_prefix_free_and_exclude_non_geographic_ones() {
        let codes = PhoneNumber::derivable_calling_codes();
        assert!(codes.len() > 200, "{}", codes.len());
        for code in [1, 7, 20, 44, 247, 290, 599] {
            assert!(codes.contains(&code), "{code}");
        }
        for code in [800, 808, 870, 878, 881, 882, 883, 888, 979, 383] {
            assert!(!codes.contains(&code), "{code}");
        }
        for a in &codes {
            for b in &codes {
                assert!(
                    a == b || !b.to_string().starts_with(&a.to_string()),
                    "{a} {b}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn a_number_has_a_derived_country_exactly_when_it_starts_with_a_derivable_code(
            digits in "[1-9][0-9]{1,14}"
        ) {
            let derivable = PhoneNumber::derivable_calling_codes()
                .iter()
                .any(|code| digits.starts_with(&code.to_string()));
            let derived = number(&format!("+{digits}")).unwrap().derived_country();
            proptest::prop_assert_eq!(derived.is_some(), derivable);
        }
    }
}
