//! API tokens: `<key id>|<secret>`, generated from a CSPRNG, stored only as a SHA-256 hash.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ApiKeyId;

/// Length of a generated secret: 40 alphanumeric characters, about 238 bits.
pub const SECRET_LEN: usize = 40;

/// Longest secret accepted when reading a token, to bound the work done on hostile input.
const MAX_SECRET_LEN: usize = 128;

/// The secret half of a token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A fresh secret from the operating system-seeded CSPRNG.
    pub fn generate() -> Self {
        Self(Alphanumeric.sample_string(&mut rand::rng(), SECRET_LEN))
    }

    /// The SHA-256 of the secret: what is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// The SHA-256 of a token's secret. Comparison is in constant time.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Lower-case hex, 64 characters: the stored form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the stored form.
    pub fn from_hex(raw: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(raw, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but it is what a stolen database would be searched for.
        f.write_str("TokenHash(..)")
    }
}

/// A bearer token: `<key id>|<secret>`.
///
/// ```
/// use domain::{ApiKeyId, ApiToken, TokenSecret};
///
/// let token = ApiToken::new(ApiKeyId::new(12).unwrap(), TokenSecret::generate());
/// let text = token.expose_secret();
/// assert!(text.starts_with("12|"));
/// let read = ApiToken::parse(&text).unwrap();
/// assert_eq!(read.key_id(), token.key_id());
/// assert_eq!(read.hash(), token.hash());
/// assert!(!format!("{token:?}").contains(&text[3..]));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    key_id: ApiKeyId,
    secret: TokenSecret,
}

impl ApiToken {
    /// The token of key `key_id` with `secret`.
    pub fn new(key_id: ApiKeyId, secret: TokenSecret) -> Self {
        Self { key_id, secret }
    }

    /// Reads `<id>|<secret>`: a positive decimal id, then 1 to 128 visible ASCII characters.
    /// Anything else is `None`; nothing about the input is echoed.
    pub fn parse(raw: &str) -> Option<Self> {
        let (id, secret) = raw.split_once('|')?;
        let key_id = ApiKeyId::parse(id)?;
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        (printable && (1..=MAX_SECRET_LEN).contains(&secret.len()))
            .then(|| Self::new(key_id, TokenSecret(secret.to_owned())))
    }

    /// The key the token claims to belong to.
    pub fn key_id(&self) -> ApiKeyId {
        self.key_id
    }

    /// The hash to look the key up by.
    pub fn hash(&self) -> TokenHash {
        self.secret.hash()
    }

    /// The full token text, to show once to its owner.
    pub fn expose_secret(&self) -> String {
        format!("{}|{}", self.key_id, self.secret.0)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}|[redacted])", self.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_40_alphanumerics_and_differ() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert_eq!(a.0.len(), SECRET_LEN);
        assert!(a.0.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_secret() {
        let secret = TokenSecret("abc".into());
        assert_eq!(
            secret.hash().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_hash_round_trips_through_hex() {
        let hash = TokenSecret::generate().hash();
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TokenHash::from_hex("zz"), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for raw in [
            "",
            "|",
            "abc",
            "1|",
            "|secret",
            "0|secret",
            "-1|secret",
            "x|secret",
            "1|sec ret",
            "1|sec\u{0}",
            "99999999999999999999|s",
        ] {
            assert!(ApiToken::parse(raw).is_none(), "{raw:?}");
        }
        assert!(ApiToken::parse(&format!("1|{}", "s".repeat(129))).is_none());
    }

    #[test]
    fn a_secret_may_itself_contain_a_bar() {
        let token = ApiToken::parse("5|ab|cd").unwrap();
        assert_eq!(token.key_id().get(), 5);
        assert_eq!(token.hash(), TokenSecret("ab|cd".into()).hash());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let token = ApiToken::parse("5|supersecretvalue").unwrap();
        assert!(!format!("{token:?}").contains("supersecretvalue"));
        assert!(
            !format!("{:?}", TokenSecret("supersecretvalue".into())).contains("supersecretvalue")
        );
    }
}
