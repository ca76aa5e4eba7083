//! Secrets at rest: SIP passwords sealed with AES-256-GCM under a rotatable key ring.
//!
//! Each write uses a fresh random 96-bit nonce; the stored text is `base64(nonce || ciphertext
//! || tag)` beside the id of the key that sealed it. The owner's id is bound in as associated
//! data, so a sealed password copied onto another tenant's row does not open. To rotate,
//! make the new key current and keep the old one in the ring: old rows still open, new writes
//! use the new key.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Why a key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not base64 of exactly 32 bytes.
    #[error("an encryption key must be the base64 encoding of exactly 32 bytes")]
    Malformed,
}

/// Why a sealed secret could not be opened. Never contains the secret or the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The ring has no key with the stored id.
    #[error("no encryption key with id {0} is configured")]
    UnknownKey(String),
    /// The stored text is damaged, or was sealed for another row, or with another key.
    #[error("the sealed value does not decrypt with key {0}")]
    Undecryptable(String),
}

/// One AES-256 key and its id (derived from the key, so no naming is needed).
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

impl EncryptionKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"sip-trunks key id\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: hex::encode(&digest[..8]),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// A key from base64 (standard alphabet, padded) of 32 bytes; surrounding whitespace is
    /// ignored so that a key file may end with a newline.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random key and its base64 form (to be written somewhere safe).
    pub fn generate() -> (Self, String) {
        let key = Aes256Gcm::generate_key(OsRng);
        let bytes: [u8; 32] = key.into();
        (Self::from_bytes(&bytes), BASE64.encode(bytes))
    }

    /// The key's id: 16 hex digits of a hash of the key. Safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}, [redacted])", self.id)
    }
}

/// A secret as stored: the sealed text and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// `base64(nonce || ciphertext || tag)`.
    pub text: String,
    /// [`EncryptionKey::id`] of the sealing key.
    pub key_id: String,
}

/// The current key (seals) and any previous keys (still open old rows).
#[derive(Debug)]
pub struct Keyring {
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl Keyring {
    /// A ring sealing with `current`.
    pub fn new(current: EncryptionKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a retired key that can still open what it sealed.
    pub fn with_previous(mut self, key: EncryptionKey) -> Self {
        self.previous.push(key);
        self
    }

    /// The id of the key new writes use.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// True when the ring holds the key with id `key_id` (current or previous).
    pub fn has(&self, key_id: &str) -> bool {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| key.id == key_id)
    }

    /// Seals `plaintext` for the record described by `context` with the current key.
    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context,
        };
        // AES-GCM encryption only fails for inputs over 64 GiB.
        let ciphertext = self
            .current
            .cipher
            .encrypt(&nonce, payload)
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            text: BASE64.encode(bytes),
            key_id: self.current.id.clone(),
        }
    }

    /// Opens what [`Keyring::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<String, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let undecryptable = || OpenError::Undecryptable(sealed.key_id.clone());
        let bytes = BASE64.decode(&sealed.text).map_err(|_| undecryptable())?;
        if bytes.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plaintext).map_err(|_| undecryptable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(EncryptionKey::generate().0)
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_ring_and_context() {
        let ring = ring();
        let sealed = ring.seal("p4ssw0rd", b"owner:1");
        assert_eq!(ring.open(&sealed, b"owner:1").unwrap(), "p4ssw0rd");
    }

    #[test]
    fn the_sealed_text_never_contains_the_plaintext_and_differs_each_time() {
        let ring = ring();
        let a = ring.seal("p4ssw0rd", b"c");
        let b = ring.seal("p4ssw0rd", b"c");
        assert_ne!(a.text, b.text);
        assert!(!a.text.contains("p4ssw0rd"));
        let raw = BASE64.decode(&a.text).unwrap();
        assert!(!raw.windows(8).any(|window| window == b"p4ssw0rd"));
    }

    #[test]
    fn another_context_does_not_open() {
        let ring = ring();
        let sealed = ring.seal("secret", b"owner:1");
        assert!(matches!(
            ring.open(&sealed, b"owner:2"),
            Err(OpenError::Undecryptable(_))
        ));
    }

    #[test]
    fn a_wrong_key_fails_cleanly() {
        let sealed = ring().seal("secret", b"c");
        let other = ring();
        assert_eq!(
            other.open(&sealed, b"c"),
            Err(OpenError::UnknownKey(sealed.key_id.clone()))
        );
    }

    #[test]
    fn a_tampered_value_fails_cleanly() {
        let ring = ring();
        let mut sealed = ring.seal("secret", b"c");
        sealed.text.replace_range(
            20..21,
            if &sealed.text[20..21] == "A" {
                "B"
            } else {
                "A"
            },
        );
        assert!(ring.open(&sealed, b"c").is_err());
        sealed.text = "!!".into();
        assert!(ring.open(&sealed, b"c").is_err());
        sealed.text = String::new();
        assert!(ring.open(&sealed, b"c").is_err());
    }

    #[test]
    fn a_rotated_ring_opens_old_values_and_seals_with_the_new_key() {
        let (old, old_text) = EncryptionKey::generate();
        let old_ring = Keyring::new(old);
        let sealed_before = old_ring.seal("secret", b"c");
        let rotated = Keyring::new(EncryptionKey::generate().0)
            .with_previous(EncryptionKey::from_base64(&old_text).unwrap());
        assert_eq!(rotated.open(&sealed_before, b"c").unwrap(), "secret");
        assert_ne!(rotated.seal("secret", b"c").key_id, sealed_before.key_id);
    }

    #[test]
    fn keys_must_be_base64_of_32_bytes() {
        assert_eq!(
            EncryptionKey::from_base64("not base64!").unwrap_err(),
            KeyError::Malformed
        );
        assert_eq!(
            EncryptionKey::from_base64(&BASE64.encode([0u8; 16])).unwrap_err(),
            KeyError::Malformed
        );
        assert!(EncryptionKey::from_base64(&format!("{}\n", BASE64.encode([7u8; 32]))).is_ok());
    }

    #[test]
    fn a_key_id_is_stable_and_debug_hides_the_key() {
        let text = BASE64.encode([9u8; 32]);
        let a = EncryptionKey::from_base64(&text).unwrap();
        let b = EncryptionKey::from_base64(&text).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert!(!format!("{a:?}").contains(&text));
    }
}
