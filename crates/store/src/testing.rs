//! Test support (feature `test-support`): a throwaway PostgreSQL schema per test, so that
//! tests never share state. The store's contract tests and the end-to-end tests both use it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// A fresh schema in the database of `TEST_DATABASE_URL`, dropped (with everything in it)
/// when this value is dropped.
pub struct TempPgSchema {
    admin_url: String,
    schema: String,
    url: String,
}

impl TempPgSchema {
    /// Creates `<prefix>_<pid>_<n>_<nanos>` in `TEST_DATABASE_URL`'s database, or gives `None`
    /// (and says so on stderr) when the variable is not set.
    ///
    /// # Panics
    /// When the variable is set but the database cannot be reached or the schema created: a
    /// test that was asked to run on PostgreSQL must not pass without it.
    pub fn from_env(prefix: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("TEST_DATABASE_URL is not set: PostgreSQL test skipped");
            return None;
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let schema = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|error| panic!("TEST_DATABASE_URL is set but unreachable: {error}"));
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap_or_else(|error| panic!("cannot create a schema in TEST_DATABASE_URL: {error}"));
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
        Some(Self {
            admin_url,
            schema,
            url,
        })
    }

    /// A URL of the same database whose connections work in this schema (`search_path`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TempPgSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// True when a connection made with `url` negotiates TLS with the server.
///
/// # Panics
/// When no connection can be made.
pub fn negotiates_tls(url: &str) -> bool {
    use diesel::sql_types::Bool;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = Bool)]
        ssl: bool,
    }
    let mut conn =
        PgConnection::establish(url).unwrap_or_else(|error| panic!("cannot connect: {error}"));
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(&mut conn)
        .unwrap_or_else(|error| panic!("cannot read pg_stat_ssl: {error}"))
        .ssl
}
