//! `CallingFormat`: how outbound numbers are written to the carrier.

use std::fmt;

use crate::FieldError;

/// The outbound number format the carrier expects.
///
/// ```
/// use domain::CallingFormat;
///
/// assert_eq!(CallingFormat::parse("+e164").unwrap(), CallingFormat::PlusE164);
/// assert_eq!(CallingFormat::National.as_str(), "national");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallingFormat {
    /// `+14155551234`
    PlusE164,
    /// `14155551234`
    E164,
    /// The carrier's national format, such as `4155551234`.
    National,
}

impl CallingFormat {
    /// Every format, in the order the contract lists them.
    pub const ALL: [CallingFormat; 3] = [Self::PlusE164, Self::E164, Self::National];

    /// Accepts exactly `+e164`, `e164` or `national`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == raw)
            .ok_or_else(|| {
                FieldError::new("SIP calling format must be one of: +e164, e164, national.")
            })
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlusE164 => "+e164",
            Self::E164 => "e164",
            Self::National => "national",
        }
    }
}

impl fmt::Display for CallingFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_documented_format_is_accepted_and_round_trips() {
        for format in CallingFormat::ALL {
            assert_eq!(CallingFormat::parse(format.as_str()), Ok(format));
        }
    }

    #[test]
    fn anything_else_gets_the_documented_message() {
        for raw in ["", "E164", "+E164", "international", " e164", "e.164"] {
            assert_eq!(
                CallingFormat::parse(raw).unwrap_err().message(),
                "SIP calling format must be one of: +e164, e164, national."
            );
        }
    }
}
