//! The Kamailio database: one connection (SQLite or PostgreSQL, as the URL says), the
//! embedded migrations that create the tables Kamailio reads, and the statements the adapter
//! runs. Every write of a leg is one transaction, so Kamailio never reads half a leg.
//!
//! One connection behind a mutex rather than a pool: provisioning writes a few rows per API
//! write, Kamailio's reads go through its own connections, and a connection opened on the
//! caller's thread is never left half-open on a pool thread when the process exits.

use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite write waits for Kamailio's readers (WAL keeps them from blocking it).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(3);

diesel::table! {
    /// One row per leg the registry made (ours; Kamailio reads it per call).
    sip_trunks_legs (id) {
        id -> Text,
        kind -> Text,
        trunk_id -> BigInt,
        user_id -> BigInt,
        created_unix -> BigInt,
        seq -> BigInt,
        number -> Text,
        inbound_key -> Nullable<Text>,
        access -> Text,
        grp -> Nullable<Integer>,
        realm -> Text,
        username -> Text,
        allowed -> Text,
        address -> Text,
        password -> Text,
        calling_format -> Text,
        country -> Text,
        calling_code -> Text,
        national_prefix -> Text,
        fixed_ip -> Integer,
    }
}

diesel::table! {
    /// Kamailio's permissions table: one row per allow-list entry, `grp` the leg's group.
    address (id) {
        id -> Integer,
        grp -> Integer,
        ip_addr -> Text,
        mask -> Integer,
        port -> SmallInt,
        tag -> Nullable<Text>,
    }
}

diesel::table! {
    /// Kamailio's auth_db table: (username, domain = the leg's realm) with the HA1 only.
    subscriber (id) {
        id -> Integer,
        username -> Text,
        domain -> Text,
        password -> Text,
        ha1 -> Text,
        ha1b -> Text,
    }
}

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub(crate) enum EdgeConnection {
    /// PostgreSQL.
    Postgres(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

/// Where the Kamailio database is, parsed from its URL. `Debug` shows the backend only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum EdgeDatabase {
    /// `postgres://…` or `postgresql://…`, passed to libpq as it is.
    Postgres(String),
    /// `sqlite://PATH` (Kamailio's own `sqlite:////abs/path` works too), or a bare path.
    Sqlite(String),
}

impl std::fmt::Debug for EdgeDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgres(_) => "EdgeDatabase::Postgres([redacted])",
            Self::Sqlite(_) => "EdgeDatabase::Sqlite([redacted])",
        })
    }
}

impl EdgeDatabase {
    /// Reads `url`; an empty one is refused.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
            return Err(format!(
                "the Kamailio database URL must be postgres://…, sqlite://PATH or a path (got a {} one)",
                url.split("://").next().unwrap_or("blank")
            ));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// Connects; a SQLite file is created when missing, private to its owner or shared with
    /// `group` (see [`share_with_group`]).
    fn open(&self, group: Option<u32>) -> Result<EdgeConnection, String> {
        match self {
            Self::Postgres(url) => PgConnection::establish(url)
                .map(EdgeConnection::Postgres)
                .map_err(|error| format!("cannot connect to the Kamailio database: {error}")),
            Self::Sqlite(path) => {
                create_private(path)?;
                let mut conn = SqliteConnection::establish(path).map_err(|error| {
                    format!("cannot open the Kamailio database {path}: {error}")
                })?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .map_err(|error| format!("cannot configure the Kamailio database: {error}"))?;
                if let Some(group) = group {
                    // After the WAL pragma, so that the -wal and -shm files exist to be shared.
                    share_with_group(path, group)?;
                }
                Ok(EdgeConnection::Sqlite(conn))
            }
        }
    }
}

/// Creates the SQLite file readable by its owner only (0600) when it does not exist: it holds
/// outbound SIP passwords. SQLite gives its journal files the same mode.
fn create_private(path: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(format!(
            "cannot create the Kamailio database {path}: {error}"
        )),
    }
}

/// Gives the SQLite file and its `-wal` and `-shm` files to `group`, mode 0660: Kamailio
/// runs as a user of its own (Debian's `kamailio`) and opens the file read-write (a WAL
/// reader writes `-shm`). Nobody else gets anything. SQLite creates later `-wal`/`-shm`
/// files with the database's mode, and with its group when the directory is setgid to it;
/// a directory that is not is logged, since Kamailio could then be locked out after a
/// restart of both.
fn share_with_group(path: &str, group: u32) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for file in [
        path.to_owned(),
        format!("{path}-wal"),
        format!("{path}-shm"),
    ] {
        if !std::path::Path::new(&file).exists() {
            continue;
        }
        std::os::unix::fs::chown(&file, None, Some(group))
            .and_then(|()| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o660)))
            .map_err(|error| {
                format!("cannot give the Kamailio database {file} to group {group}: {error}")
            })?;
    }
    let directory = std::path::Path::new(path)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."));
    if let Ok(meta) = std::fs::metadata(directory) {
        let setgid_to_group = meta.gid() == group && meta.mode() & 0o2070 == 0o2070;
        if !setgid_to_group {
            log::warn!(
                "kamailio: the directory of the edge database is not setgid to group {group} with group rwx: a -wal or -shm file created later may be closed to Kamailio (chgrp {group} DIR && chmod 2770 DIR)"
            );
        }
    }
    Ok(())
}

/// The group id of `group`: a number, or a name looked up in the system's group database.
pub(crate) fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(id) = group.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        Ok(None) => Err(format!("no group named {group:?}")),
        Err(error) => Err(format!("cannot look group {group:?} up: {error}")),
    }
}

/// The adapter's connection, reopened after a failure.
pub(crate) struct Edge {
    database: EdgeDatabase,
    /// The group a SQLite file is shared with (Kamailio's), if any.
    group: Option<u32>,
    connection: Mutex<Option<EdgeConnection>>,
}

impl Edge {
    /// Opens the database and creates (or updates) the tables; a SQLite file is shared with
    /// `group` when one is given (refused for PostgreSQL, where it means nothing).
    pub(crate) fn open(database: EdgeDatabase, group: Option<u32>) -> Result<Self, String> {
        if group.is_some() && matches!(database, EdgeDatabase::Postgres(_)) {
            return Err(
                "a Kamailio database group is for a SQLite edge database (PostgreSQL has its own users)"
                    .into(),
            );
        }
        let mut conn = database.open(group)?;
        let applied = match &mut conn {
            EdgeConnection::Postgres(conn) => conn
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|list| list.len()),
            EdgeConnection::Sqlite(conn) => conn
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|list| list.len()),
        }
        .map_err(|error| format!("cannot create the Kamailio tables: {error}"))?;
        if applied > 0 {
            log::info!("kamailio: {applied} migration(s) applied to its database");
        }
        Ok(Self {
            database,
            group,
            connection: Mutex::new(Some(conn)),
        })
    }

    /// Runs `work` in one transaction; a failed connection is dropped and reopened next time.
    pub(crate) fn transaction<T>(
        &self,
        work: impl FnOnce(&mut EdgeConnection) -> QueryResult<T>,
    ) -> Result<T, EdgeFailure> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(
                self.database
                    .open(self.group)
                    .map_err(EdgeFailure::Unreachable)?,
            );
        }
        let Some(conn) = slot.as_mut() else {
            return Err(EdgeFailure::Unreachable("no connection".into()));
        };
        match conn.transaction(work) {
            Ok(value) => Ok(value),
            Err(error) => {
                let failure = EdgeFailure::of(error);
                if matches!(failure, EdgeFailure::Unreachable(_)) {
                    *slot = None;
                }
                Err(failure)
            }
        }
    }
}

/// Why a statement failed, in the terms the adapter decides on.
#[derive(Debug)]
pub(crate) enum EdgeFailure {
    /// A unique constraint: the named index.
    Taken(String),
    /// The database could not be reached, or the connection broke.
    Unreachable(String),
    /// Anything else.
    Other(String),
}

impl EdgeFailure {
    fn of(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                let what = info
                    .constraint_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| info.message().to_owned());
                Self::Taken(what)
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unreachable(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("database is locked") =>
            {
                Self::Unreachable(info.message().to_owned())
            }
            other => Self::Other(other.to_string()),
        }
    }
}

/// A leg row as read back.
#[derive(Debug, Queryable)]
pub(crate) struct LegRow {
    pub id: String,
    pub kind: String,
    pub trunk_id: i64,
    pub user_id: i64,
    pub created_unix: i64,
    pub number: String,
    pub access: String,
    pub username: String,
    pub allowed: String,
    pub address: String,
    pub calling_format: String,
    pub country: String,
}

/// Every leg row.
pub(crate) fn all_legs(conn: &mut EdgeConnection) -> QueryResult<Vec<LegRow>> {
    use sip_trunks_legs::dsl as l;
    l::sip_trunks_legs
        .select((
            l::id,
            l::kind,
            l::trunk_id,
            l::user_id,
            l::created_unix,
            l::number,
            l::access,
            l::username,
            l::allowed,
            l::address,
            l::calling_format,
            l::country,
        ))
        .order(l::seq)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_backend_and_kamailios_four_slash_form_is_a_path_too() {
        assert_eq!(
            EdgeDatabase::parse("postgres://k@db/edge"),
            Ok(EdgeDatabase::Postgres("postgres://k@db/edge".into()))
        );
        assert_eq!(
            EdgeDatabase::parse("sqlite:///var/lib/edge.db"),
            Ok(EdgeDatabase::Sqlite("/var/lib/edge.db".into()))
        );
        assert_eq!(
            EdgeDatabase::parse("sqlite:////var/lib/edge.db"),
            Ok(EdgeDatabase::Sqlite("//var/lib/edge.db".into()))
        );
        assert_eq!(
            EdgeDatabase::parse("edge.db"),
            Ok(EdgeDatabase::Sqlite("edge.db".into()))
        );
        assert!(EdgeDatabase::parse("mysql://k@db/edge").is_err());
        assert!(EdgeDatabase::parse("").is_err());
    }

    #[test]
    fn a_new_sqlite_file_is_private_and_gets_the_tables() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.db").display().to_string();
        let edge = Edge::open(EdgeDatabase::Sqlite(path.clone()), None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let legs = edge.transaction(all_legs).unwrap();
        assert!(legs.is_empty());
        drop(edge);
        // Opening again applies nothing twice.
        Edge::open(EdgeDatabase::Sqlite(path), None).unwrap();
    }
}
