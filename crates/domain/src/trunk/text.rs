//! The free-text fields of a trunk: `Nickname`, `SipUsername` and `SipPassword`.
//!
//! Lengths are counted in characters (Unicode scalar values), never bytes.

use std::fmt;

use compact_str::CompactString;

use crate::FieldError;

fn has_control(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

/// Bidirectional controls and zero-width characters: invisible, and able to make one
/// username look like another ("Trojan Source"), so an identifier may not hold them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// A human label for a trunk: trimmed, 1 to 50 characters, no control characters.
///
/// An empty or all-blank nickname means "no nickname", so [`Nickname::parse`] gives
/// `Ok(None)` for it.
///
/// ```
/// use domain::Nickname;
///
/// assert_eq!(Nickname::parse("  Main line ").unwrap().unwrap().as_str(), "Main line");
/// assert_eq!(Nickname::parse("   ").unwrap(), None);
/// assert!(Nickname::parse(&"x".repeat(51)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(CompactString);

impl Nickname {
    /// Most characters a nickname may have.
    pub const MAX_CHARS: usize = 50;

    /// Trims `raw`; empty gives `None`.
    pub fn parse(raw: &str) -> Result<Option<Self>, FieldError> {
        let trimmed = raw.trim();
        Self::check(trimmed)?;
        Ok((!trimmed.is_empty()).then(|| Self(CompactString::from(trimmed))))
    }

    /// [`Nickname::parse`] of a value read back from storage, kept without a copy when it
    /// needs no trimming (as every nickname this service stored).
    pub fn from_stored(raw: impl Into<CompactString>) -> Result<Option<Self>, FieldError> {
        let raw = raw.into();
        if raw.trim().len() != raw.len() {
            return Self::parse(&raw);
        }
        Self::check(&raw)?;
        Ok((!raw.is_empty()).then_some(Self(raw)))
    }

    /// The rules for a trimmed nickname.
    fn check(trimmed: &str) -> Result<(), FieldError> {
        if has_control(trimmed) {
            return Err(FieldError::new(
                "The nickname may not contain control characters.",
            ));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "The nickname may not be greater than 50 characters.",
            ));
        }
        Ok(())
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nickname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SIP authentication username: 3 to 128 characters, no whitespace or control characters,
/// no `"` or `\\`. SIP carries the username in a digest quoted-string, where those two need an
/// escape that the digest hash must undo; SIP stacks (Kamailio's `uac`, carriers' and PBXs')
/// disagree on it, so such a name cannot be relied on to work inbound or outbound.
///
/// ```
/// use domain::SipUsername;
///
/// assert!(SipUsername::parse("trunk_user").is_ok());
/// assert!(SipUsername::parse("a b c").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUsername(CompactString);

impl SipUsername {
    /// Fewest characters.
    pub const MIN_CHARS: usize = 3;
    /// Most characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks `raw` as given; nothing is trimmed.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
        {
            return Err(FieldError::new(
                "The sip username may not contain whitespace, control or invisible formatting characters.",
            ));
        }
        if raw.contains(['"', '\\']) {
            return Err(FieldError::new(
                "The sip username may not contain double quotes or backslashes (SIP digest authentication cannot carry them reliably).",
            ));
        }
        Self::check_stored(raw)?;
        Ok(Self(CompactString::from(raw)))
    }

    /// Checks a username read back from storage, and keeps it without a copy: the rules of
    /// [`SipUsername::parse`] except the `"` and `\\` rule, which came later, so that a trunk
    /// stored before it stays readable (and can be given another username).
    pub fn from_stored(raw: impl Into<CompactString>) -> Result<Self, FieldError> {
        let raw = raw.into();
        Self::check_stored(&raw)?;
        Ok(Self(raw))
    }

    fn check_stored(raw: &str) -> Result<(), FieldError> {
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
        {
            return Err(FieldError::new(
                "The sip username may not contain whitespace, control or invisible formatting characters.",
            ));
        }
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(FieldError::new(
                "The sip username must be at least 3 characters.",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "The sip username may not be greater than 128 characters.",
            ));
        }
        Ok(())
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SipUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SIP password: 3 to 128 characters, no control characters. A secret: its `Debug` and
/// `Display` print `[redacted]`, and only [`SipPassword::expose_secret`] gives it out.
///
/// ```
/// use domain::SipPassword;
///
/// let password = SipPassword::parse("s3cret!").unwrap();
/// assert_eq!(format!("{password:?} {password}"), "SipPassword([redacted]) [redacted]");
/// assert_eq!(password.expose_secret(), "s3cret!");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SipPassword(String);

impl SipPassword {
    /// Fewest characters.
    pub const MIN_CHARS: usize = 3;
    /// Most characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks `raw` as given; nothing is trimmed (spaces may be part of a password). The error
    /// never quotes the password.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if has_control(raw) {
            return Err(FieldError::new(
                "The sip password may not contain control characters.",
            ));
        }
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(FieldError::new(
                "The sip password must be at least 3 characters.",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "The sip password may not be greater than 128 characters.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plaintext, for the code that must send or encrypt it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SipPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipPassword([redacted])")
    }
}

impl fmt::Display for SipPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_nicknames_read_as_parsing_would_read_them() {
        for raw in [
            "Main line",
            "  Main line ",
            "",
            "   ",
            "a\u{7}b",
            &"x".repeat(51),
        ] {
            assert_eq!(
                Nickname::from_stored(raw.to_owned()),
                Nickname::parse(raw),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_nickname_is_trimmed() {
        assert_eq!(
            Nickname::parse("\t Office \n").unwrap().unwrap().as_str(),
            "Office"
        );
    }

    #[test]
    fn an_empty_or_blank_nickname_means_none() {
        assert_eq!(Nickname::parse("").unwrap(), None);
        assert_eq!(Nickname::parse(" \t ").unwrap(), None);
    }

    #[test]
    fn a_nickname_of_50_characters_is_accepted_even_when_longer_in_bytes() {
        let fifty_accented = "é".repeat(50);
        assert!(fifty_accented.len() > 50);
        assert!(Nickname::parse(&fifty_accented).is_ok());
    }

    #[test]
    fn a_nickname_of_51_characters_is_refused_with_the_limit_in_the_message() {
        let error = Nickname::parse(&"a".repeat(51)).unwrap_err();
        assert_eq!(
            error.message(),
            "The nickname may not be greater than 50 characters."
        );
    }

    #[test]
    fn a_nickname_counts_after_trimming() {
        assert!(Nickname::parse(&format!("  {}  ", "a".repeat(50))).is_ok());
    }

    #[test]
    fn a_nickname_with_a_control_character_is_refused() {
        assert!(Nickname::parse("line\u{0}one").is_err());
        assert!(Nickname::parse("bell\u{7}").is_err());
    }

    #[test]
    fn a_nickname_may_hold_any_printable_unicode() {
        assert!(Nickname::parse("Büro – 東京 📞").is_ok());
    }

    #[test]
    fn a_username_of_3_to_128_characters_is_accepted() {
        assert!(SipUsername::parse("abc").is_ok());
        assert!(SipUsername::parse(&"u".repeat(128)).is_ok());
    }

    #[test]
    fn a_username_shorter_than_3_or_longer_than_128_is_refused() {
        assert_eq!(
            SipUsername::parse("ab").unwrap_err().message(),
            "The sip username must be at least 3 characters."
        );
        assert!(SipUsername::parse("").is_err());
        assert!(SipUsername::parse(&"u".repeat(129)).is_err());
    }

    #[test]
    fn a_username_with_a_double_quote_or_a_backslash_is_refused_but_stays_readable_when_stored() {
        for raw in ["us\"er", "user\\", "\"quoted\"", "dom\\user"] {
            assert_eq!(
                SipUsername::parse(raw).unwrap_err().message(),
                "The sip username may not contain double quotes or backslashes (SIP digest authentication cannot carry them reliably).",
                "{raw:?}"
            );
            assert!(SipUsername::from_stored(raw.to_owned()).is_ok(), "{raw:?}");
        }
        assert!(
            SipUsername::parse("o'brien").is_ok(),
            "a single quote is carried"
        );
    }

    #[test]
    fn a_username_with_whitespace_anywhere_is_refused() {
        for raw in [" user", "user ", "us er", "user\t", "user\u{a0}x"] {
            assert!(SipUsername::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_username_with_bidi_controls_or_zero_width_characters_is_refused() {
        for raw in [
            "admin\u{202E}txt",
            "us\u{200B}er",
            "\u{FEFF}user",
            "user\u{2066}x",
            "a\u{061C}bc",
        ] {
            assert!(SipUsername::parse(raw).is_err(), "{raw:?}");
        }
        assert!(
            SipUsername::parse("usuário").is_ok(),
            "other non-ASCII letters stay allowed"
        );
    }

    #[test]
    fn a_username_with_a_control_character_is_refused() {
        assert!(SipUsername::parse("user\u{0}").is_err());
        assert!(SipUsername::parse("us\u{1b}[31m").is_err());
    }

    #[test]
    fn a_username_may_be_an_email_like_or_numeric_identifier() {
        assert!(SipUsername::parse("user@example.com").is_ok());
        assert!(SipUsername::parse("100200300").is_ok());
    }

    #[test]
    fn a_password_of_3_to_128_characters_is_accepted_with_spaces_and_symbols() {
        assert!(SipPassword::parse("abc").is_ok());
        assert!(SipPassword::parse("correct horse battery staple!#%&").is_ok());
        assert!(SipPassword::parse(&"p".repeat(128)).is_ok());
    }

    #[test]
    fn a_password_shorter_than_3_or_longer_than_128_is_refused() {
        assert!(SipPassword::parse("pw").is_err());
        assert!(SipPassword::parse(&"p".repeat(129)).is_err());
    }

    #[test]
    fn a_password_with_a_control_character_is_refused() {
        assert!(SipPassword::parse("pass\nword").is_err());
        assert!(SipPassword::parse("pass\u{0}word").is_err());
    }

    #[test]
    fn a_password_error_never_quotes_the_password() {
        for raw in ["pw", "secret\u{0}value", &"toolong".repeat(30)] {
            let error = SipPassword::parse(raw).unwrap_err();
            assert!(
                !error.message().contains(raw.trim_matches('\u{0}')),
                "{error}"
            );
        }
    }

    #[test]
    fn a_password_never_shows_in_debug_or_display() {
        let password = SipPassword::parse("hunter22").unwrap();
        assert!(!format!("{password:?}").contains("hunter22"));
        assert!(!format!("{password}").contains("hunter22"));
        assert!(!format!("{:?}", Some(&password)).contains("hunter22"));
    }
}
