//! Connections and the pool: one connection type over both backends, opened exactly as the
//! URL says, with SQLite configured on every connection, and the embedded migrations.
//!
//! r2d2 opens connections on its own background threads. A thread still inside libpq's TLS
//! handshake when the process exits races OpenSSL's `atexit` clean-up and can crash the
//! process after its work was done, so every attempt passes a process-wide gate that the
//! binary closes, and waits on, before it exits ([`close_connection_attempts`]).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Keep one idle connection ready, replaced in the background when it is taken (a
    /// server). False for one-shot commands: connections are then opened only when asked
    /// for, so none is being opened behind the command's back when it exits.
    pub keep_one_ready: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(3),
            keep_one_ready: true,
        }
    }
}

impl PoolOptions {
    /// Settings for a command that does a few queries and exits: two connections at most,
    /// none opened in the background.
    pub fn one_shot() -> Self {
        Self {
            max_size: 2,
            keep_one_ready: false,
            ..Self::default()
        }
    }
}

/// Connection attempts under way in this process, and whether new ones may start.
struct ConnectGate {
    state: Mutex<GateState>,
    idle: Condvar,
}

struct GateState {
    closed: bool,
    in_flight: usize,
}

static CONNECT_GATE: ConnectGate = ConnectGate {
    state: Mutex::new(GateState {
        closed: false,
        in_flight: 0,
    }),
    idle: Condvar::new(),
};

/// One connection attempt that passed the gate; leaving it (drop) lets a closer go on.
struct Attempt;

impl ConnectGate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enter(&self) -> Option<Attempt> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        state.in_flight += 1;
        Some(Attempt)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut state = CONNECT_GATE.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            CONNECT_GATE.idle.notify_all();
        }
    }
}

/// Refuses every new connection attempt in this process and waits, at most `timeout`, for
/// those under way to finish. Call it once, right before the process exits (on every exit
/// path): true when none is left in flight.
pub fn close_connection_attempts(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut state = CONNECT_GATE.state();
    state.closed = true;
    while state.in_flight > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        state = CONNECT_GATE
            .idle
            .wait_timeout(state, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
    true
}

/// Seconds libpq may spend on one connection attempt when the URL does not say.
const PG_CONNECT_TIMEOUT_SECS: u32 = 10;

/// The URL with libpq's `connect_timeout` set when it has none, so that an attempt against
/// an unreachable server ends (without one libpq waits as long as TCP does).
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
}

/// A PostgreSQL connection of its own (not the pool's), through the exit gate and with a
/// connect timeout, as the pool opens them.
pub(crate) fn establish_postgres(url: &str) -> Result<PgConnection, ConnectionError> {
    let _attempt = CONNECT_GATE.enter().ok_or(ConnectionError::ShuttingDown)?;
    Ok(PgConnection::establish(&with_connect_timeout(url))?)
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
    /// The process is exiting: no new connection is opened.
    #[error("the process is shutting down")]
    ShuttingDown,
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
    // journal_size_limit: after a checkpoint resets the WAL, its file is cut back to this
    // size instead of staying as large as the longest burst made it.
    let journal = if wal {
        "PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 16777216;"
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
        let _attempt = CONNECT_GATE.enter().ok_or(ConnectionError::ShuttingDown)?;
        let db = match &self.url {
            DatabaseUrl::Postgres(url) => {
                DbConnection::Postgres(PgConnection::establish(&with_connect_timeout(url))?)
            }
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
/// keeps forever, so the pool is pinned to that one connection (whatever `keep_one_ready`).
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
        _ => builder.min_idle(Some(u32::from(options.keep_one_ready))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_gets_a_connect_timeout_unless_it_has_one() {
        assert_eq!(
            with_connect_timeout("postgres://h/db"),
            "postgres://h/db?connect_timeout=10"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require&connect_timeout=10"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=2"),
            "postgres://h/db?connect_timeout=2"
        );
    }

    #[test]
    fn the_bundled_sqlite_is_built_multi_thread_without_memory_statistics() {
        // Set in .cargo/config.toml (LIBSQLITE3_FLAGS): a build that lost them still works,
        // only slower, so nothing else would notice.
        #[derive(diesel::QueryableByName)]
        struct Used {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            used: i32,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for option in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
            let row: Used = diesel::sql_query("SELECT sqlite_compileoption_used(?) AS used")
                .bind::<diesel::sql_types::Text, _>(option)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(row.used, 1, "SQLite is not built with {option}");
        }
    }
}
