//! The encryption keys at start-up: where they come from (the environment or files, never
//! flags, which anyone on the host can read in the process list), and the check that every
//! key the stored passwords were sealed with is in the ring before anything is served.
//!
//! Without a key on SQLite, a key file beside the database is used, and created only while
//! no password is stored: a lost key file must stop the service, not be silently replaced by
//! a new key that opens nothing.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use store::{DatabaseUrl, EncryptionKey, Keyring, PoolOptions, SqlStore};

use crate::settings::StartError;

/// The current key, in the environment.
pub const KEY_ENV: &str = "SIP_TRUNKS_ENCRYPTION_KEY";
/// Retired keys (comma-separated), in the environment.
pub const PREVIOUS_KEYS_ENV: &str = "SIP_TRUNKS_PREVIOUS_ENCRYPTION_KEYS";

/// Where the keys come from. `Debug` never shows a key.
#[derive(Clone, Default)]
pub struct KeySource {
    /// The current key's base64 (from [`KEY_ENV`]).
    pub key: Option<String>,
    /// A file holding the current key's base64.
    pub key_file: Option<PathBuf>,
    /// Retired keys' base64 (from [`PREVIOUS_KEYS_ENV`]).
    pub previous: Vec<String>,
    /// A file of retired keys, one per line (`#` starts a comment).
    pub previous_file: Option<PathBuf>,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("key_file", &self.key_file)
            .field("previous", &format!("[{} redacted]", self.previous.len()))
            .field("previous_file", &self.previous_file)
            .finish()
    }
}

impl KeySource {
    /// The keys of the environment ([`KEY_ENV`], [`PREVIOUS_KEYS_ENV`]) and of the given
    /// files.
    pub fn from_env(key_file: Option<PathBuf>, previous_file: Option<PathBuf>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            key: var(KEY_ENV),
            key_file,
            previous: var(PREVIOUS_KEYS_ENV)
                .map(|list| list.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            previous_file,
        }
    }
}

/// The key file used beside a SQLite database when no key is given.
pub fn key_file_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Opens the store and applies pending migrations.
pub fn open_migrated(
    url: &DatabaseUrl,
    keys: Keyring,
    pool: PoolOptions,
) -> Result<SqlStore, StartError> {
    let store = SqlStore::open(url, keys, pool)?;
    let applied = store.migrate()?;
    for name in &applied {
        log::info!("applied migration {name}");
    }
    Ok(store)
}

/// Opens the store on `url`, migrated, with the key ring `source` gives, once it is known to
/// open every stored password. The only way the service and `reencrypt` open a store.
pub fn open_store(
    url: &DatabaseUrl,
    source: &KeySource,
    pool: PoolOptions,
) -> Result<SqlStore, StartError> {
    // The stored key ids are read before the ring is built (a key file may only be created on
    // an empty database), so the store is opened with a ring that seals nothing yet.
    let store = open_migrated(url, Keyring::new(EncryptionKey::generate().0), pool)?;
    let unreadable = |error: domain::RepositoryError| {
        StartError::Key(format!(
            "cannot read which keys seal the stored passwords: {error}"
        ))
    };
    let stored = store.password_key_ids().map_err(unreadable)?;
    let ring = match keyring(url, source, &stored) {
        Ok(ring) => ring,
        Err(KeyringError::Start(error)) => return Err(error),
        Err(KeyringError::Missing { current, missing }) => {
            let counted = missing
                .iter()
                .map(|key_id| {
                    store
                        .passwords_sealed_by(key_id)
                        .map(|rows| format!("key {key_id} seals {rows} stored password(s)"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(unreadable)?;
            return Err(StartError::Key(format!(
                "the configured keys cannot open every stored SIP password: {}. Configure the \
                 missing key(s) as the current key or in {PREVIOUS_KEYS_ENV} (the configured \
                 current key is {current})",
                counted.join("; ")
            )));
        }
    };
    log::info!(
        "stored passwords are sealed with key(s) {}; sealing with {}",
        if stored.is_empty() {
            "(none yet)".to_owned()
        } else {
            stored.join(", ")
        },
        ring.current_id()
    );
    Ok(store.with_keys(ring))
}

/// Why no key ring could be built.
#[derive(Debug)]
pub enum KeyringError {
    /// A key is malformed, missing or unreadable, or given twice.
    Start(StartError),
    /// The ring lacks keys that sealed stored passwords.
    Missing {
        /// The id of the ring's current key.
        current: String,
        /// The ids of the stored keys the ring lacks.
        missing: Vec<String>,
    },
}

impl From<StartError> for KeyringError {
    fn from(error: StartError) -> Self {
        Self::Start(error)
    }
}

/// The key ring for `url` from `source`, given the ids of the keys that seal the stored
/// passwords (`stored`): refused when one of them is not in it.
pub fn keyring(
    url: &DatabaseUrl,
    source: &KeySource,
    stored: &[String],
) -> Result<Keyring, KeyringError> {
    let current = match (&source.key, &source.key_file, url) {
        (Some(_), Some(_), _) => {
            return Err(StartError::Key(format!(
                "both {KEY_ENV} and --encryption-key-file are set: give the key one way"
            ))
            .into())
        }
        (Some(text), None, _) => parse(text, &format!("the key in {KEY_ENV}"))?,
        (None, Some(file), _) => read_key_file(file)?,
        (None, None, DatabaseUrl::SqliteFile(path)) => {
            default_key_file(&key_file_for(path), !stored.is_empty())?
        }
        (None, None, DatabaseUrl::SqliteMemory) => {
            log::warn!("no encryption key given: using a throw-away key for the in-memory database");
            EncryptionKey::generate().0
        }
        (None, None, DatabaseUrl::Postgres(_)) => {
            return Err(StartError::Key(format!(
                "PostgreSQL needs an encryption key: set {KEY_ENV} (or --encryption-key-file) to the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`"
            ))
            .into())
        }
    };
    let mut ring = Keyring::new(current);
    for text in source
        .previous
        .iter()
        .filter(|text| !text.trim().is_empty())
    {
        ring = ring.with_previous(parse(text, &format!("a key in {PREVIOUS_KEYS_ENV}"))?);
    }
    if let Some(file) = &source.previous_file {
        for key in read_previous_keys_file(file)? {
            ring = ring.with_previous(key);
        }
    }
    let missing: Vec<String> = stored
        .iter()
        .filter(|key_id| !ring.has(key_id))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(ring)
    } else {
        Err(KeyringError::Missing {
            current: ring.current_id().to_owned(),
            missing,
        })
    }
}

fn parse(text: &str, what: &str) -> Result<EncryptionKey, StartError> {
    EncryptionKey::from_base64(text).map_err(|error| StartError::Key(format!("{what}: {error}")))
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Io { context, source }
}

/// Refuses a key file that group or others may read: a key is only as private as its file.
pub(crate) fn check_private(path: &Path) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;

        let metadata =
            fs::metadata(path).map_err(io_error(format!("cannot read {}", path.display())))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StartError::Key(format!(
                "the key file {} may be read by group or others (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<EncryptionKey, StartError> {
    check_private(path)?;
    let text = fs::read_to_string(path).map_err(io_error(format!(
        "cannot read the key file {}",
        path.display()
    )))?;
    parse(&text, &format!("the key file {}", path.display()))
}

fn read_previous_keys_file(path: &Path) -> Result<Vec<EncryptionKey>, StartError> {
    check_private(path)?;
    let text = fs::read_to_string(path).map_err(io_error(format!(
        "cannot read the key file {}",
        path.display()
    )))?;
    text.lines()
        .enumerate()
        .map(|(index, line)| (index, line.split('#').next().unwrap_or("").trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| parse(line, &format!("line {} of {}", index + 1, path.display())))
        .collect()
}

/// The SQLite default: the key file beside the database, read, or created (mode 0600) while
/// no password is stored.
fn default_key_file(path: &Path, passwords_stored: bool) -> Result<EncryptionKey, StartError> {
    if path.exists() {
        log::warn!(
            "no encryption key given: using the key file {}",
            path.display()
        );
        return read_key_file(path);
    }
    if passwords_stored {
        return Err(StartError::Key(format!(
            "the key file {} is missing, but stored SIP passwords were sealed with a key: \
             restore the file (or give the key in {KEY_ENV}); a new key would open none of them",
            path.display()
        )));
    }
    let (key, text) = EncryptionKey::generate();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(format!(
        "cannot create the key file {}",
        path.display()
    )))?;
    writeln!(file, "{text}")
        .and_then(|()| file.sync_all())
        .map_err(io_error(format!(
            "cannot write the key file {}",
            path.display()
        )))?;
    log::warn!(
        "no encryption key given: created the key file {} (mode 0600); keep it with the database, \
         losing it makes the stored SIP passwords unreadable",
        path.display()
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    fn refusal(result: Result<Keyring, KeyringError>) -> String {
        match result {
            Ok(_) => panic!("expected a refusal"),
            Err(KeyringError::Start(error)) => error.to_string(),
            Err(KeyringError::Missing { missing, .. }) => format!("missing {missing:?}"),
        }
    }

    fn source_with(key: &str) -> KeySource {
        KeySource {
            key: Some(key.into()),
            ..KeySource::default()
        }
    }

    #[test]
    fn a_sqlite_database_gets_a_private_key_file_that_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::SqliteFile(dir.path().join("t.db"));
        let first = keyring(&url, &KeySource::default(), &[]).unwrap();
        let path = key_file_for(&dir.path().join("t.db"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let stored = ids(&[first.current_id()]);
        let second = keyring(&url, &KeySource::default(), &stored).unwrap();
        assert_eq!(first.current_id(), second.current_id());
    }

    #[test]
    fn a_missing_key_file_is_not_replaced_while_passwords_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::SqliteFile(dir.path().join("t.db"));
        let error = refusal(keyring(&url, &KeySource::default(), &ids(&["00aa"])));
        assert!(
            error.contains("is missing") && error.contains("restore"),
            "{error}"
        );
        assert!(!key_file_for(&dir.path().join("t.db")).exists());
    }

    #[test]
    fn a_ring_without_a_stored_key_is_refused_naming_it() {
        let (current_key, current) = EncryptionKey::generate();
        match keyring(
            &DatabaseUrl::SqliteMemory,
            &source_with(&current),
            &ids(&["1111222233334444", current_key.id(), "5555666677778888"]),
        ) {
            Err(KeyringError::Missing {
                current: id,
                missing,
            }) => {
                assert_eq!(id, current_key.id());
                assert_eq!(missing, ["1111222233334444", "5555666677778888"]);
            }
            other => panic!("expected missing keys, got {other:?}"),
        }
    }

    #[test]
    fn a_previous_key_covers_its_rows() {
        let (old, old_text) = EncryptionKey::generate();
        let (_, current) = EncryptionKey::generate();
        let source = KeySource {
            previous: vec![old_text],
            ..source_with(&current)
        };
        let ring = keyring(&DatabaseUrl::SqliteMemory, &source, &ids(&[old.id()])).unwrap();
        assert!(ring.has(old.id()));
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, EncryptionKey::generate().1).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
            let source = KeySource {
                key_file: Some(path.clone()),
                ..KeySource::default()
            };
            let error = refusal(keyring(&DatabaseUrl::SqliteMemory, &source, &[]));
            assert!(error.contains("chmod 600"), "{error}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(keyring(&DatabaseUrl::SqliteMemory, &source, &[]).is_ok());
        }
    }

    #[test]
    fn a_previous_keys_file_takes_one_key_a_line_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("previous");
        let (a, a_text) = EncryptionKey::generate();
        let (b, b_text) = EncryptionKey::generate();
        fs::write(
            &path,
            format!("# retired 2026\n{a_text}\n\n{b_text} # older\n"),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let source = KeySource {
            previous_file: Some(path),
            ..source_with(&EncryptionKey::generate().1)
        };
        let ring = keyring(&DatabaseUrl::SqliteMemory, &source, &[]).unwrap();
        assert!(ring.has(a.id()) && ring.has(b.id()));
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let source = KeySource {
            key_file: Some("/nonexistent".into()),
            ..source_with(&EncryptionKey::generate().1)
        };
        assert!(refusal(keyring(&DatabaseUrl::SqliteMemory, &source, &[])).contains("one way"));
    }

    #[test]
    fn postgres_without_a_key_refuses_to_start() {
        let url = DatabaseUrl::parse("postgres://localhost/x").unwrap();
        assert!(
            refusal(keyring(&url, &KeySource::default(), &[])).contains("needs an encryption key")
        );
    }

    #[test]
    fn a_malformed_key_is_refused_without_echoing_it() {
        let error = refusal(keyring(
            &DatabaseUrl::SqliteMemory,
            &source_with("c2VjcmV0LWtleQ=="),
            &[],
        ));
        assert!(!error.contains("c2VjcmV0LWtleQ"), "{error}");
    }

    #[test]
    fn debug_never_shows_a_key() {
        let source = KeySource {
            previous: vec!["cHJldmlvdXM=".into()],
            ..source_with("Y3VycmVudA==")
        };
        let shown = format!("{source:?}");
        assert!(
            !shown.contains("Y3VycmVudA") && !shown.contains("cHJldmlvdXM"),
            "{shown}"
        );
    }
}
