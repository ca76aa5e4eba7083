//! What start-up can refuse, and the setting types the CLI and start-up share: a leaf
//! module (the start-up, the key files and the infrastructure choice all use it, and it uses
//! none of them).

/// Why the service could not start. Never contains a key or a password.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range; every bad one is listed.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The database URL was refused.
    #[error(transparent)]
    Url(#[from] store::DatabaseUrlError),
    /// The encryption key is missing or malformed.
    #[error("{0}")]
    Key(String),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Open(#[from] store::OpenError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A URL that may carry a password (Redis, the Kamailio database): `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl([redacted])")
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}
