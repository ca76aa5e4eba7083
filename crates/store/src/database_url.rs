//! `DatabaseUrl`: which backend and where, chosen from the URL scheme.

use std::fmt;
use std::path::PathBuf;

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    /// The scheme is none of the supported ones.
    #[error("unsupported database URL {0:?}: use sqlite://<path>, sqlite:///<absolute path>, sqlite::memory:, or postgres://...")]
    UnsupportedScheme(String),
    /// `sqlite://` with nothing after it.
    #[error("the SQLite URL names no file: use sqlite://<path> or sqlite:///<absolute path>")]
    MissingPath,
}

/// Where the data lives. Parsed from a URL so that the backend is never guessed: an unknown
/// scheme is an error, never a stray SQLite file named after the URL.
///
/// ```
/// use store::DatabaseUrl;
///
/// assert!(matches!(DatabaseUrl::parse("sqlite:///var/lib/trunks.db"), Ok(DatabaseUrl::SqliteFile(p)) if p.to_str() == Some("/var/lib/trunks.db")));
/// assert!(matches!(DatabaseUrl::parse("sqlite://trunks.db"), Ok(DatabaseUrl::SqliteFile(p)) if p.to_str() == Some("trunks.db")));
/// assert!(matches!(DatabaseUrl::parse("postgres://app:pw@db/trunks"), Ok(DatabaseUrl::Postgres(_))));
/// assert!(DatabaseUrl::parse("mysql://db/trunks").is_err());
/// assert_eq!(DatabaseUrl::parse("postgres://app:pw@db/trunks").unwrap().to_string(), "postgres://app:***@db/trunks");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file (created when missing).
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database: one connection, gone when the store is dropped.
    SqliteMemory,
    /// A PostgreSQL connection string, passed to libpq as given.
    Postgres(String),
}

impl DatabaseUrl {
    /// Reads `sqlite://<relative path>`, `sqlite:///<absolute path>`, `sqlite::memory:`
    /// (or `sqlite://:memory:`), `postgres://...` and `postgresql://...`.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        if raw == "sqlite::memory:" || raw == "sqlite://:memory:" {
            return Ok(Self::SqliteMemory);
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            return if path.is_empty() {
                Err(DatabaseUrlError::MissingPath)
            } else {
                Ok(Self::SqliteFile(PathBuf::from(path)))
            };
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err(DatabaseUrlError::UnsupportedScheme(redact(raw)))
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::SqliteFile(_) | Self::SqliteMemory => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => raw.to_owned(),
        },
        None => raw.to_owned(),
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
            Self::SqliteMemory => f.write_str("sqlite::memory:"),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_relative_and_absolute_files() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/t.db"),
            Ok(DatabaseUrl::SqliteFile("data/t.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/t.db"),
            Ok(DatabaseUrl::SqliteFile("/tmp/t.db".into()))
        );
    }

    #[test]
    fn memory_urls_are_recognised() {
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:"),
            Ok(DatabaseUrl::SqliteMemory)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://:memory:"),
            Ok(DatabaseUrl::SqliteMemory)
        );
    }

    #[test]
    fn both_postgres_schemes_are_accepted() {
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/db").unwrap().backend(),
            "postgres"
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://h/db").unwrap().backend(),
            "postgres"
        );
    }

    #[test]
    fn unknown_schemes_and_bare_paths_are_errors_that_hide_passwords() {
        for raw in [
            "trunks.db",
            "/tmp/trunks.db",
            "mysql://u:pw@h/db",
            "sqlite:t.db",
            "SQLITE://t.db",
            "",
        ] {
            let error = DatabaseUrl::parse(raw).unwrap_err();
            assert!(!error.to_string().contains("pw@"), "{error}");
        }
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(DatabaseUrlError::MissingPath)
        );
    }

    #[test]
    fn display_hides_the_postgres_password() {
        let url =
            DatabaseUrl::parse("postgres://app:s3cret@db:5432/trunks?sslmode=disable").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db:5432/trunks?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
