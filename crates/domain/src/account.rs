//! Users (tenants) and their API keys.

use std::fmt;

use crate::{ApiKeyId, FieldError, Timestamp, UserId};

/// A user's e-mail address, the handle administrators use: trimmed, lower-cased, at most 254
/// characters, one `@` with text on both sides, no whitespace or control characters.
///
/// ```
/// use domain::Email;
///
/// assert_eq!(Email::parse(" Ops@Example.COM ").unwrap().as_str(), "ops@example.com");
/// assert!(Email::parse("not-an-address").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Checks and normalizes `raw`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let well_formed = email.chars().count() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if well_formed {
            Ok(Self(email))
        } else {
            Err(FieldError::new("The email must be a valid email address."))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn label(raw: &str, what: &str, max_chars: usize) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(format!("The {what} field is required.")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(format!(
            "The {what} may not contain control characters."
        )));
    }
    if trimmed.chars().count() > max_chars {
        return Err(FieldError::new(format!(
            "The {what} may not be greater than {max_chars} characters."
        )));
    }
    Ok(trimmed.to_owned())
}

/// A user's display name: trimmed, 1 to 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    /// Checks and trims `raw`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        label(raw, "name", 255).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key's label: trimmed, 1 to 255 characters, no control characters.
///
/// ```
/// use domain::ApiKeyName;
///
/// assert_eq!(ApiKeyName::parse(" ci ").unwrap().as_str(), "ci");
/// assert!(ApiKeyName::parse("").is_err());
/// assert!(ApiKeyName::parse(&"k".repeat(256)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    /// Most characters.
    pub const MAX_CHARS: usize = 255;

    /// Checks and trims `raw`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        label(raw, "name", Self::MAX_CHARS).map(Self)
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant: owns trunks and API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Never reused.
    pub id: UserId,
    /// Unique.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An API key as listed: never its token, which is shown once at creation and stored only as
/// a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Never reused; the token's prefix.
    pub id: ApiKeyId,
    /// The user the key authenticates as.
    pub owner: UserId,
    /// Label.
    pub name: ApiKeyName,
    /// When a request last authenticated with it (coarse: updates are throttled).
    pub last_used_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  A.B@Example.org").unwrap().as_str(),
            "a.b@example.org"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in ["", "@", "a@", "@b", "a@b@c", "a b@c", "a@b\u{0}", "plain"] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn an_api_key_name_of_255_characters_is_accepted_and_256_refused() {
        assert!(ApiKeyName::parse(&"ü".repeat(255)).is_ok());
        assert_eq!(
            ApiKeyName::parse(&"k".repeat(256)).unwrap_err().message(),
            "The name may not be greater than 255 characters."
        );
    }

    #[test]
    fn a_blank_api_key_name_is_required() {
        assert_eq!(
            ApiKeyName::parse("   ").unwrap_err().message(),
            "The name field is required."
        );
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        assert!(ApiKeyName::parse("key\u{0}").is_err());
        assert!(UserName::parse("Ann\u{1b}").is_err());
    }
}
