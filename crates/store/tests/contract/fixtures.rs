//! One fixture per backend: a fresh, private store for each test, removed afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use domain::{AccountRepository, SipTrunkRepository};
use store::{DatabaseUrl, EncryptionKey, Keyring, MemoryStore, PoolOptions, SqlStore};

/// A store under test, and what is needed to clean it up.
pub struct Fixture {
    /// The trunk port.
    pub trunks: Arc<dyn SipTrunkRepository>,
    /// The account port.
    pub accounts: Arc<dyn AccountRepository>,
    /// The SQL store itself, for raw column reads and re-opening with other keys.
    pub sql: Option<SqlStore>,
    /// The key the SQL store seals with (base64), to build rotated rings.
    pub key: String,
    /// Runs last: drops the PostgreSQL schema or the temporary directory.
    _cleanup: Cleanup,
}

enum Cleanup {
    None,
    TempDir(#[allow(dead_code)] tempfile::TempDir),
    PostgresSchema { admin_url: String, schema: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::PostgresSchema { admin_url, schema } = self {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

impl Fixture {
    /// The SQL store re-opened on the same database with `keys`.
    pub fn reopen(&self, keys: Keyring) -> SqlStore {
        let sql = self.sql.as_ref().expect("a SQL fixture");
        SqlStore::open(sql.url(), keys, test_pool()).expect("reopen")
    }
}

fn test_pool() -> PoolOptions {
    PoolOptions {
        max_size: 4,
        connection_timeout: Duration::from_secs(10),
    }
}

fn sql_fixture(url: DatabaseUrl, cleanup: Cleanup) -> Fixture {
    let (key, key_text) = EncryptionKey::generate();
    let store =
        SqlStore::open(&url, Keyring::new(key), test_pool()).expect("open the test database");
    store.migrate().expect("migrate the test database");
    Fixture {
        trunks: Arc::new(store.clone()),
        accounts: Arc::new(store.clone()),
        sql: Some(store),
        key: key_text,
        _cleanup: cleanup,
    }
}

/// The in-memory store.
pub fn memory() -> Option<Fixture> {
    let store = Arc::new(MemoryStore::new());
    Some(Fixture {
        trunks: store.clone(),
        accounts: store,
        sql: None,
        key: String::new(),
        _cleanup: Cleanup::None,
    })
}

/// SQLite in a fresh temporary file.
pub fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("trunks.db");
    Some(sql_fixture(
        DatabaseUrl::SqliteFile(path),
        Cleanup::TempDir(dir),
    ))
}

/// PostgreSQL in a fresh schema of `TEST_DATABASE_URL`, or `None` when it is not set.
pub fn postgres() -> Option<Fixture> {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL contract test skipped");
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "contract_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let mut admin = PgConnection::establish(&admin_url)
        .unwrap_or_else(|error| panic!("TEST_DATABASE_URL is set but unreachable: {error}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create the test schema");
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
    let url = DatabaseUrl::parse(&url).expect("a postgres URL");
    Some(sql_fixture(
        url,
        Cleanup::PostgresSchema { admin_url, schema },
    ))
}
