//! Integer identifiers of stored records. Ids are positive and never reused.

use std::fmt;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// The id `value`, when it is positive (storage never hands out 0 or less).
            pub fn new(value: i64) -> Option<Self> {
                (value > 0).then_some(Self(value))
            }

            /// Reads a path segment: decimal digits only, no sign, no padding, in range.
            pub fn parse(raw: &str) -> Option<Self> {
                // "007" is not 7: one id, one spelling (a token or path that differs is
                // another credential or resource, not an alias).
                if raw.is_empty() || raw.starts_with('0') || !raw.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                raw.parse::<i64>().ok().and_then(Self::new)
            }

            /// The integer.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

define_id!(
    /// A SIP trunk's id.
    ///
    /// ```
    /// use domain::TrunkId;
    ///
    /// assert_eq!(TrunkId::parse("42").map(TrunkId::get), Some(42));
    /// assert_eq!(TrunkId::parse("-1"), None);
    /// assert_eq!(TrunkId::parse("99999999999999999999"), None);
    /// ```
    TrunkId
);
define_id!(
    /// A user's (tenant's) id: the owner of trunks and API keys.
    UserId
);
define_id!(
    /// An API key's id: the part of a token before the `|`.
    ApiKeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive() {
        assert!(TrunkId::new(1).is_some());
        assert!(TrunkId::new(0).is_none());
        assert!(TrunkId::new(-5).is_none());
    }

    #[test]
    fn a_path_id_must_be_plain_decimal_digits_in_range() {
        assert_eq!(
            TrunkId::parse("9223372036854775807").map(TrunkId::get),
            Some(i64::MAX)
        );
        for raw in [
            "",
            "0",
            "01",
            "007",
            "+1",
            "-1",
            " 1",
            "1.0",
            "1e3",
            "0x10",
            "9223372036854775808",
            "١",
        ] {
            assert_eq!(TrunkId::parse(raw), None, "{raw:?}");
        }
    }
}
