//! Connections and the pool: one connection type over both backends, opened exactly as the
//! URL says, with SQLite configured on every connection, and the embedded migrations.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Postgres(PgConnection),
    /// SQLite (bundled library).
    Sqlite(SqliteConnection),
}

/// How long a SQLite connection waits for another writer before giving up (then: 503).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most open connections (an in-memory SQLite database always uses exactly one).
    pub max_size: u32,
    /// How long a caller waits for a connection before the store reports `Unavailable`.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(3),
        }
    }
}

/// Why a connection could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The backend refused or could not be reached.
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    /// Configuring or checking the connection failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The SQLite path is not valid UTF-8.
    #[error("the SQLite path is not valid UTF-8")]
    NonUtf8Path,
}

/// A pooled connection and whether it is known to be dead. Connections are not pinged on
/// checkout (a round trip per request); instead a query that fails the way a dead connection
/// fails marks it, and the pool replaces it.
pub struct TrackedConnection {
    /// The connection queries run on.
    pub db: DbConnection,
    /// Set after a connection-class failure; the pool then drops the connection.
    pub broken: bool,
}

/// Opens connections of the backend the URL names, never another.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

fn configure_sqlite(conn: &mut SqliteConnection, wal: bool) -> Result<(), ConnectionError> {
    // WAL lets readers run beside the writer; synchronous = FULL makes every acknowledged
    // commit survive power loss, not only a crash of this process.
    let journal = if wal {
        "PRAGMA journal_mode = WAL;"
    } else {
        ""
    };
    conn.batch_execute(&format!(
        "{journal} PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
        SQLITE_BUSY_TIMEOUT.as_millis()
    ))?;
    Ok(())
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = TrackedConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<TrackedConnection, ConnectionError> {
        let db = match &self.url {
            DatabaseUrl::Postgres(url) => DbConnection::Postgres(PgConnection::establish(url)?),
            DatabaseUrl::SqliteFile(path) => {
                let path = path.to_str().ok_or(ConnectionError::NonUtf8Path)?;
                let mut conn = SqliteConnection::establish(path)?;
                configure_sqlite(&mut conn, true)?;
                DbConnection::Sqlite(conn)
            }
            DatabaseUrl::SqliteMemory => {
                let mut conn = SqliteConnection::establish(":memory:")?;
                configure_sqlite(&mut conn, false)?;
                DbConnection::Sqlite(conn)
            }
        };
        Ok(TrackedConnection { db, broken: false })
    }

    fn is_valid(&self, conn: &mut TrackedConnection) -> Result<(), ConnectionError> {
        diesel::sql_query("SELECT 1").execute(&mut conn.db)?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        conn.broken
            || std::thread::panicking()
            || diesel::r2d2::R2D2Connection::is_broken(&mut conn.db)
    }
}

/// Builds the pool. An in-memory SQLite database lives in one connection that the pool
/// keeps forever, so the pool is pinned to that one connection.
pub fn build_pool(
    url: &DatabaseUrl,
    options: PoolOptions,
) -> Result<r2d2::Pool<ConnectionManager>, r2d2::Error> {
    let builder = r2d2::Pool::builder()
        .test_on_check_out(false)
        .connection_timeout(options.connection_timeout)
        .max_size(options.max_size.max(1));
    let builder = match url {
        DatabaseUrl::SqliteMemory => builder
            .max_size(1)
            .min_idle(Some(1))
            .idle_timeout(None)
            .max_lifetime(None),
        _ => builder.min_idle(Some(1)),
    };
    builder.build(ConnectionManager::new(url.clone()))
}

/// Applies the backend's pending migrations; gives the names of those applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Postgres(conn) => conn.run_pending_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(conn) => conn.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|error| error.to_string())?;
    Ok(applied.iter().map(ToString::to_string).collect())
}
