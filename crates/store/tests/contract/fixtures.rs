//! One fixture per backend: a fresh, private store for each test, removed afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::{
    AccountRepository, CarrierHealthStore, NumberConflictLog, ProvisioningLedger,
    SipTrunkRepository,
};
use store::testing::TempPgSchema;
use store::{DatabaseUrl, EncryptionKey, Keyring, MemoryStore, PoolOptions, SqlStore};

/// A store under test, and what is needed to clean it up.
pub struct Fixture {
    /// The trunk port.
    pub trunks: Arc<dyn SipTrunkRepository>,
    /// The account port.
    pub accounts: Arc<dyn AccountRepository>,
    /// The provisioning ledger.
    pub ledger: Arc<dyn ProvisioningLedger>,
    /// The number-taken answers.
    pub conflicts: Arc<dyn NumberConflictLog>,
    /// The carriers' health.
    pub carriers: Arc<dyn CarrierHealthStore>,
    /// The SQL store itself, for raw column reads and re-opening with other keys.
    pub sql: Option<SqlStore>,
    /// The key the SQL store seals with (base64), to build rotated rings.
    pub key: String,
    /// Runs last: drops the PostgreSQL schema or the temporary directory.
    _cleanup: Cleanup,
}

/// Removed when dropped; held only for that.
#[allow(dead_code)]
enum Cleanup {
    None,
    TempDir(tempfile::TempDir),
    PostgresSchema(TempPgSchema),
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
        ..PoolOptions::default()
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
        ledger: Arc::new(store.clone()),
        conflicts: Arc::new(store.clone()),
        carriers: Arc::new(store.clone()),
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
        accounts: store.clone(),
        ledger: store.clone(),
        conflicts: store.clone(),
        carriers: store,
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
    let schema = TempPgSchema::from_env("contract")?;
    let url = DatabaseUrl::parse(schema.url()).expect("a postgres URL");
    Some(sql_fixture(url, Cleanup::PostgresSchema(schema)))
}
