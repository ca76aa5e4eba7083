//! The Diesel store: one code path over SQLite and PostgreSQL.
//!
//! Every method is blocking; async callers run them on a blocking thread pool.
//! SQLite has one writer at a time: the store queues its own writers on an in-process lock,
//! so they wait their turn instead of sleeping in SQLite's busy handler; write transactions
//! also begin with a write, so a writer from another process is waited for under the busy
//! timeout instead of failing (see `lock_trunk`).

mod batch_queue;
mod carriers;
mod changes;
mod conflicts;
mod connection;
mod errors;
mod files;
mod fixed_statements;
mod keys;
mod ledger;
mod observations;
mod read_batches;
mod readers;
mod rows;
pub mod schema;
mod stored_text;
mod stored_time;
mod visible;

use std::sync::{Arc, Mutex};

use fixed_statements::{ClaimTrunkPlaces, DrawTrunkIds, SealPassword};

use diesel::prelude::*;
use domain::{
    AccountRepository, ApiKey, ApiKeyId, ApiKeyName, ApiToken, Email, Lease, NewSipTrunk,
    PasswordWithheld, ProvisioningLedger, RepositoryError, RepositoryResult, SipTrunk,
    SipTrunkPatch, SipTrunkRepository, Timestamp, TokenHash, TrunkId, TrunkListing, TrunkPage,
    TrunkUpdate, User, UserId, UserName,
};

pub use changes::{Change, ChangeFeed};
pub use connection::{
    close_connection_attempts, ConnectionError, ConnectionManager, DbConnection, PoolOptions,
    SQLITE_BUSY_TIMEOUT,
};
use errors::{from_diesel, from_pool};
pub use keys::{ResealReport, ResealScope};
pub use read_batches::{TrunkRead, TrunkReadOutcome};
use rows::{
    ApiKeyRow, NewApiKeyRow, NewTrunkRow, NewUserRow, SealedPasswordColumns, ShownTrunkRow,
    TrunkFields, TrunkRow, UserRow,
};
use schema::{api_keys, sip_trunks, users};

use crate::secrets::Keyring;
use crate::DatabaseUrl;
use batch_queue::BatchQueue;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No connection could be made in time; the message holds the backend's own reason.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What the backend said.
        reason: String,
    },
    /// Migrations failed.
    #[error("cannot migrate {url}: {reason}")]
    Migrate {
        /// The URL, password hidden.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// SQLite writes between two explicit WAL checkpoints (SQLite's own threshold is 1000 pages,
/// a write touches a few).
const CHECKPOINT_EVERY: u64 = 500;

/// SIP trunks, users and API keys in SQLite or PostgreSQL. Cheap to clone (shares the pool).
#[derive(Clone)]
pub struct SqlStore {
    pool: r2d2::Pool<ConnectionManager>,
    keys: Arc<Keyring>,
    url: DatabaseUrl,
    /// SQLite only: this process's writers take turns here, counting their writes.
    write_lock: Option<Arc<Mutex<u64>>>,
    /// How long callers waited for a pooled connection (for the metrics).
    waits: Arc<PoolWaits>,
    /// Which of a thread's own read connections is this database's ([`readers`]).
    reader_key: u64,
    /// The writer threads that commit trunk creates in batches ([`batch_queue`]); `None` in
    /// the writers' own copy of the store, and if they could not be started: creates then
    /// commit one by one on the caller's thread.
    creates: Option<Arc<BatchQueue<CreateJob, SipTrunk>>>,
    /// PostgreSQL only: the reader threads that ask for queued trunk reads in batches
    /// ([`read_batches`]); `None` in their own copy of the store, on SQLite, and if they could
    /// not be started: reads then run on the caller's thread.
    reads: Option<Arc<BatchQueue<TrunkRead, TrunkReadOutcome>>>,
}

/// Create writers on PostgreSQL: accounts spread over them by id, so creates of different
/// accounts commit side by side (SQLite has one writer at a time, and one writer thread).
const POSTGRES_CREATE_WRITERS: usize = 4;

/// Reader threads on PostgreSQL. One: the reads that arrive while it waits on the server make
/// its next batch, so the batches are as large as the load allows. Two readers (half the
/// batch each, two statements at a time) cost the server 35-39 µs per cache-off list against
/// 24-27 µs with one, and served fewer requests (`scripts/profile-list postgres 6`, 2 cores).
const POSTGRES_READERS: usize = 1;

/// A trunk create waiting in [`SqlStore::creates`] for its batch: what
/// [`SqlStore::insert_claiming_place`] was asked.
struct CreateJob {
    owner: UserId,
    trunk: NewSipTrunk,
    max_trunks: u32,
    creating: Option<Lease>,
    now: Timestamp,
}

/// Checkouts of pooled connections and the time spent waiting for them.
#[derive(Debug, Default)]
struct PoolWaits {
    checkouts: std::sync::atomic::AtomicU64,
    wait_micros: std::sync::atomic::AtomicU64,
}

/// The pool as the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolStats {
    /// Connections open.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
    /// Connections handed out so far.
    pub checkouts: u64,
    /// Seconds callers spent waiting for them, in all.
    pub wait_seconds: f64,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlStore({})", self.url)
    }
}

/// A transaction's failure: a query error, or a domain outcome decided inside it.
enum TxError {
    Query(diesel::result::Error),
    Outcome(RepositoryError),
}

impl From<diesel::result::Error> for TxError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Query(error)
    }
}

impl From<TxError> for RepositoryError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Query(error) => from_diesel(error),
            TxError::Outcome(error) => error,
        }
    }
}

impl SqlStore {
    /// Opens a pool on `url` (failing with the backend's reason when no connection can be
    /// made within the pool's timeout). Passwords are sealed and opened with `keys`.
    /// Does not migrate: call [`SqlStore::migrate`].
    pub fn open(url: &DatabaseUrl, keys: Keyring, options: PoolOptions) -> Result<Self, OpenError> {
        if let DatabaseUrl::SqliteFile(path) = url {
            files::make_private(path).map_err(|error| OpenError::Connect {
                url: url.to_string(),
                reason: error.to_string(),
            })?;
        }
        let pool = connection::build_pool(url, options).map_err(|error| OpenError::Connect {
            url: url.to_string(),
            reason: error.to_string(),
        })?;
        let write_lock = match url {
            DatabaseUrl::SqliteFile(_) | DatabaseUrl::SqliteMemory => Some(Arc::new(Mutex::new(0))),
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            keys: Arc::new(keys),
            url: url.clone(),
            write_lock,
            waits: Arc::default(),
            reader_key: readers::new_reader_key(),
            creates: None,
            reads: None,
        }
        .with_create_writers()
        .with_read_batches())
    }

    /// This store with reader threads of its own on PostgreSQL ([`read_batches`]), which read
    /// with a copy of it that has none.
    fn with_read_batches(mut self) -> Self {
        if !matches!(self.url, DatabaseUrl::Postgres(_)) {
            return self;
        }
        self.reads = self.start_batches(
            "trunk-reads",
            POSTGRES_READERS,
            "reads run on the caller's thread",
            |reader, reads| reader.read_trunks_together(&reads),
        );
        self
    }

    /// Starts `threads` batch threads named after `name`, running `run` with a copy of this
    /// store that holds no queue (so they hold none, and stop once the store is dropped).
    /// `None`, logged with what happens `instead`, when they could not be started.
    fn start_batches<J: Send + 'static, T: Send + 'static>(
        &self,
        name: &str,
        threads: usize,
        instead: &str,
        run: impl Fn(&Self, Vec<J>) -> Vec<RepositoryResult<T>> + Send + Sync + 'static,
    ) -> Option<Arc<BatchQueue<J, T>>> {
        let worker = Self {
            creates: None,
            reads: None,
            ..self.clone()
        };
        match BatchQueue::start(name, threads, move |jobs| run(&worker, jobs)) {
            Ok(queue) => Some(Arc::new(queue)),
            Err(error) => {
                log::warn!("no {name} threads ({error}): {instead}");
                None
            }
        }
    }

    /// Runs every one of `reads` together (PostgreSQL: one statement; SQLite: one after
    /// another on one connection) and gives their outcomes in order, as
    /// [`SipTrunkRepository::list_trunks`] and [`SipTrunkRepository::get_trunk`] would.
    /// The reader threads' batches depend on timing: this is how a test asks for a batch of a
    /// known makeup.
    pub fn read_trunks_together(
        &self,
        reads: &[TrunkRead],
    ) -> Vec<RepositoryResult<TrunkReadOutcome>> {
        let fetched = self.with_connection(|conn| read_batches::fetch(conn, reads));
        read_batches::outcomes(reads, fetched)
    }

    /// Queues `read` to a reader thread (chosen by owner, when there are several); `answer` gets what `pick` takes
    /// from its outcome. False, and `answer` untouched, when there are no readers.
    fn queue_read<T: 'static>(
        &self,
        read: TrunkRead,
        pick: fn(TrunkReadOutcome) -> Option<T>,
        answer: domain::Answer<T>,
    ) -> Result<(), domain::Answer<T>> {
        let Some(readers) = &self.reads else {
            return Err(answer);
        };
        let owner = match read {
            TrunkRead::Page(owner, _) | TrunkRead::One(owner, _) => owner,
        };
        readers.submit(
            owner.get().unsigned_abs(),
            read,
            Box::new(move |outcome| {
                answer(outcome.and_then(|outcome| {
                    pick(outcome).ok_or_else(|| {
                        RepositoryError::Internal("a read was answered for another kind".into())
                    })
                }));
            }),
        );
        Ok(())
    }

    /// This store with create writers of its own ([`batch_queue`]), which commit with a copy
    /// of it that has none (so they hold no queue, and stop once the store is dropped).
    fn with_create_writers(mut self) -> Self {
        let writers = match self.url {
            DatabaseUrl::Postgres(_) => POSTGRES_CREATE_WRITERS,
            DatabaseUrl::SqliteFile(_) | DatabaseUrl::SqliteMemory => 1,
        };
        self.creates = self.start_batches(
            "trunk-creates",
            writers,
            "creates commit one by one",
            |committer, jobs| committer.commit_creates_past_dead_ones(&jobs),
        );
        self
    }

    /// The pool's connections and the waits for them so far.
    pub fn pool_stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering;
        let state = self.pool.state();
        PoolStats {
            open: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
            checkouts: self.waits.checkouts.load(Ordering::Relaxed),
            wait_seconds: self.waits.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// The same store (same pool) sealing and opening passwords with `keys`: for start-up,
    /// which learns which keys the stored rows need only once the database is open.
    pub fn with_keys(mut self, keys: Keyring) -> Self {
        self.keys = Arc::new(keys);
        // The writers seal with the store's keys: new keys, new writers. The reader reads no
        // password and stays.
        self.with_create_writers()
    }

    /// The key ring passwords are sealed and opened with.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Applies pending migrations; gives the names of those applied.
    pub fn migrate(&self) -> Result<Vec<String>, OpenError> {
        let failed = |reason: String| OpenError::Migrate {
            url: self.url.to_string(),
            reason,
        };
        let mut conn = self.pool.get().map_err(|error| failed(error.to_string()))?;
        connection::run_migrations(&mut conn.db).map_err(failed)
    }

    /// The URL the store was opened on (password hidden when displayed).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// On PostgreSQL, follows every process's committed writes (see [`ChangeFeed`]):
    /// `on_change` runs on the feed's thread for each. `None` on SQLite, which serves one
    /// process.
    pub fn follow_changes(
        &self,
        on_change: impl Fn(Change) + Send + 'static,
    ) -> Option<ChangeFeed> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Some(ChangeFeed::start(url.clone(), Box::new(on_change))),
            _ => None,
        }
    }

    /// Checks that the database answers.
    pub fn ping(&self) -> RepositoryResult<()> {
        self.with_connection(|conn| diesel::sql_query("SELECT 1").execute(conn).map(drop))
    }

    /// Runs `work` on a pooled connection: the escape hatch for administration, bulk loads
    /// and tests that read raw columns.
    pub fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> RepositoryResult<T> {
        self.read(|conn| work(conn).map_err(TxError::Query))
    }

    /// Runs `work` on a pooled connection. A failure that says the connection is dead retires
    /// it, so the next caller gets a fresh one (a restarted PostgreSQL is picked up again).
    fn read<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, TxError>,
    ) -> RepositoryResult<T> {
        let asked = std::time::Instant::now();
        let conn = self.pool.get();
        let waited = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waits
            .checkouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.waits
            .wait_micros
            .fetch_add(waited, std::sync::atomic::Ordering::Relaxed);
        let mut conn = conn.map_err(from_pool)?;
        work(&mut conn.db).map_err(|error| {
            let error = RepositoryError::from(error);
            if matches!(error, RepositoryError::Unavailable(_)) {
                conn.broken = true;
            }
            error
        })
    }

    /// [`SqlStore::read`] for work that writes: on SQLite, one writer of this process at a
    /// time, and every [`CHECKPOINT_EVERY`] writes a WAL checkpoint.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, TxError>,
    ) -> RepositoryResult<T> {
        self.write_several(1, work)
    }

    /// [`SqlStore::write`] for work that holds `writes` writes (a batch), counted as that
    /// many towards the next checkpoint.
    fn write_several<T>(
        &self,
        writes: u64,
        work: impl FnOnce(&mut DbConnection) -> Result<T, TxError>,
    ) -> RepositoryResult<T> {
        let mut turn = self
            .write_lock
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let result = self.read(work);
        if let (Some(done), DatabaseUrl::SqliteFile(_)) = (turn.as_deref_mut(), &self.url) {
            let before = *done;
            *done += writes;
            if *done / CHECKPOINT_EVERY != before / CHECKPOINT_EVERY {
                self.checkpoint();
            }
        }
        result
    }

    /// Copies the WAL into the database without waiting for readers (PASSIVE). SQLite's own
    /// auto-checkpoint runs only when a statement steps to its end in autocommit; a write
    /// that ends otherwise (an `INSERT ... RETURNING` read for its first row, then reset)
    /// never triggers it, and the WAL grew without bound (287 MB after 10,000 creates).
    fn checkpoint(&self) {
        let outcome = self.with_connection(|conn| {
            diesel::connection::SimpleConnection::batch_execute(
                conn,
                "PRAGMA wal_checkpoint(PASSIVE)",
            )
        });
        if let Err(error) = outcome {
            log::warn!("WAL checkpoint failed: {error}");
        }
    }

    /// Bulk import for benchmarks and migrations from other systems: every user in one
    /// transaction (one commit, one fsync). Gives the new ids in input order.
    pub fn import_users(&self, users: &[(Email, UserName)]) -> RepositoryResult<Vec<UserId>> {
        let now = Timestamp::now().naive_utc();
        let rows = self.write(|conn| {
            conn.transaction(|conn| {
                users
                    .iter()
                    .map(|(email, name)| {
                        let row = NewUserRow {
                            email: email.as_str(),
                            name: name.as_str(),
                            created_at: now,
                        };
                        diesel::insert_into(users::table)
                            .values(&row)
                            .returning((users::id, users::email, users::name, users::created_at))
                            .get_result::<UserRow>(conn)
                    })
                    .collect::<QueryResult<Vec<_>>>()
            })
            .map_err(TxError::Query)
        })?;
        rows.into_iter()
            .map(|row| row.into_domain().map(|user| user.id))
            .collect()
    }

    /// Bulk import of trunks, every one in one transaction, through the same row mapping and
    /// encryption as [`SipTrunkRepository::create_trunk`] (no account limit: an import is an
    /// operator's act). `Conflict` aborts the whole import.
    pub fn import_trunks(&self, trunks: &[(UserId, NewSipTrunk)]) -> RepositoryResult<usize> {
        let now = Timestamp::now();
        let mut per_owner = std::collections::BTreeMap::<UserId, i64>::new();
        for (owner, _) in trunks {
            *per_owner.entry(*owner).or_default() += 1;
        }
        self.write(|conn| {
            conn.transaction(|conn| {
                for (owner, trunk) in trunks {
                    insert_trunk(conn, *owner, trunk, now, &self.keys, None)?;
                }
                for (owner, added) in &per_owner {
                    set_counter(conn, *owner, Holding::Trunks, CounterChange::By(*added))?;
                }
                Ok(trunks.len())
            })
            .map_err(TxError::Query)
        })
    }
}

impl SqlStore {
    /// A new trunk of `owner`, `Ready`, or `Creating` under `creating`, counted against
    /// `max_trunks` in the same transaction, committed by a create writer in a batch; a
    /// `Conflict` with a hidden create whose creator died is retried once it is cleared.
    fn insert_claiming_place(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        creating: Option<&Lease>,
    ) -> RepositoryResult<SipTrunk> {
        let job = CreateJob {
            owner,
            trunk: trunk.clone(),
            max_trunks,
            creating: creating.cloned(),
            now: Timestamp::now(),
        };
        match &self.creates {
            Some(writers) => writers.run(owner.get().unsigned_abs(), job),
            None => self.commit_creates_past_dead_ones(&[job]).remove(0),
        }
    }

    /// Commits `creates` (owner, trunk, limit) in one batch, as a create writer does with
    /// creates that arrive together, and answers each in order: for tests and benchmarks
    /// that need a batch of a known makeup (the writers' batches depend on timing).
    pub fn create_trunks_together(
        &self,
        creates: Vec<(UserId, NewSipTrunk, u32)>,
    ) -> Vec<RepositoryResult<SipTrunk>> {
        let now = Timestamp::now();
        let jobs: Vec<CreateJob> = creates
            .into_iter()
            .map(|(owner, trunk, max_trunks)| CreateJob {
                owner,
                trunk,
                max_trunks,
                creating: None,
                now,
            })
            .collect();
        self.commit_creates_past_dead_ones(&jobs)
    }

    /// [`SqlStore::commit_creates`], then once more, alone, for each create refused as a
    /// `Conflict` when hidden creates of its owner whose creator died were cleared (see
    /// [`SqlStore::past_dead_creations`]).
    fn commit_creates_past_dead_ones(&self, jobs: &[CreateJob]) -> Vec<RepositoryResult<SipTrunk>> {
        let mut answers = self.commit_creates(jobs);
        for (job, answer) in jobs.iter().zip(answers.iter_mut()) {
            if matches!(answer, Err(RepositoryError::Conflict)) {
                *answer = match self.clear_dead_creations(job.owner) {
                    Ok(0) => continue,
                    Ok(_) => self.commit_creates(std::slice::from_ref(job)).remove(0),
                    Err(error) => Err(error),
                };
            }
        }
        answers
    }

    /// Commits a batch of creates in one transaction, each in a savepoint of its own, so that
    /// one create's conflict or full account rolls back that create alone. Answers in the
    /// jobs' order; when the transaction itself fails, every job fails with it. On
    /// PostgreSQL the batch's creates go together first, in a transaction of their own
    /// ([`SqlStore::commit_together`]); when that cannot decide them all, each account's go
    /// together ([`insert_creates_together`]), and an account's that cannot go together go
    /// one by one.
    ///
    /// The jobs run by owner, so every batch takes the owners' row locks (held to the commit)
    /// in one order, and two batches (of two replicas) can never wait for each other in a
    /// cycle; within an owner they run by identity, so two batches that create the same
    /// trunks wait for each other's inserts in one order too. Deletes never take an owner's
    /// lock (see [`claim_place`]).
    fn commit_creates(&self, jobs: &[CreateJob]) -> Vec<RepositoryResult<SipTrunk>> {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&index| {
            let (job, settings) = (&jobs[index], &jobs[index].trunk);
            (
                job.owner.get(),
                settings.phone_number.as_str(),
                settings.sip_username.as_str(),
                settings.sip_address.as_str(),
            )
        });
        let mut answers: Vec<Option<RepositoryResult<TrunkRow>>> =
            jobs.iter().map(|_| None).collect();
        let writes = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
        let sorted: Vec<&CreateJob> = order.iter().map(|&index| &jobs[index]).collect();
        let committed = match self.commit_together(writes, &sorted) {
            Some(Ok(together)) => {
                for (&index, answer) in order.iter().zip(together) {
                    answers[index] = Some(answer);
                }
                Ok(())
            }
            Some(Err(error)) => Err(error),
            None => self.write_several(writes, |conn| {
                conn.transaction::<_, TxError, _>(|conn| {
                    for account in
                        order.chunk_by(|&one, &other| jobs[one].owner == jobs[other].owner)
                    {
                        if let DbConnection::Postgres(pg) = &mut *conn {
                            let creates: Vec<&CreateJob> =
                                account.iter().map(|&index| &jobs[index]).collect();
                            if let Some(together) =
                                insert_creates_together(pg, &creates, &self.keys)
                            {
                                for (&index, answer) in account.iter().zip(together) {
                                    answers[index] = Some(answer);
                                }
                                continue;
                            }
                        }
                        for &index in account {
                            let job = &jobs[index];
                            let answer = conn.transaction::<_, TxError, _>(|conn| {
                                let row = insert_trunk(
                                    conn,
                                    job.owner,
                                    &job.trunk,
                                    job.now,
                                    &self.keys,
                                    job.creating.as_ref(),
                                )?;
                                claim_place(conn, job.owner, Holding::Trunks, job.max_trunks)?;
                                Ok(row)
                            });
                            answers[index] = Some(answer.map_err(RepositoryError::from));
                        }
                    }
                    Ok(())
                })
            }),
        };
        match committed {
            Ok(()) => answers
                .into_iter()
                .map(|answer| {
                    answer
                        .unwrap_or_else(|| {
                            Err(RepositoryError::Internal("a create was not run".into()))
                        })
                        .and_then(|row| row.into_domain(&self.keys))
                })
                .collect(),
            Err(error) => jobs.iter().map(|_| Err(error.clone())).collect(),
        }
    }
}

impl SqlStore {
    /// PostgreSQL: `creates` (sorted by owner) together, in a transaction of their own (see
    /// [`insert_together`]; no savepoint: two round trips fewer than within a larger
    /// transaction). `None` when they could not be decided together, or were not tried (not
    /// PostgreSQL, see [`can_go_together`]): that transaction was rolled back and the caller
    /// decides them by account, or one by one. A failure of the commit itself is the
    /// answer, not a reason to try again: the commit may have happened.
    fn commit_together(
        &self,
        writes: u64,
        creates: &[&CreateJob],
    ) -> Option<RepositoryResult<Vec<RepositoryResult<TrunkRow>>>> {
        if !matches!(self.url, DatabaseUrl::Postgres(_)) || !can_go_together(creates) {
            return None;
        }
        let mut decided = false;
        let committed = self.write_several(writes, |conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let DbConnection::Postgres(pg) = conn else {
                    return Err(TxError::Outcome(RepositoryError::Internal(
                        "a PostgreSQL store on another connection".into(),
                    )));
                };
                let answers = insert_together(pg, creates, &self.keys)?;
                decided = true;
                Ok(answers)
            })
        });
        match committed {
            Ok(answers) => Some(Ok(answers)),
            Err(error) if decided => Some(Err(error)),
            Err(_) => None,
        }
    }
}

/// PostgreSQL: creates of a batch, sorted by owner, together and in a savepoint: their ids
/// drawn in one statement, their rows inserted in one (a row that collides with a stored
/// trunk of its owner, or with an earlier create of the batch, is skipped and answered
/// `Conflict`, as its own insert would have been), and each owner's places claimed with one
/// conditional increment of its counter (see [`claim_place`]), owners in order.
///
/// `None`, with the savepoint rolled back, when that cannot decide them all: an increment
/// would take a counter past its limit (near the limit, the creates are then decided one by
/// one, which counts for real), one owner's creates name different limits, or a statement
/// failed (each create then meets its own failure alone). A lone create goes alone.
fn insert_creates_together(
    conn: &mut PgConnection,
    creates: &[&CreateJob],
    keys: &Keyring,
) -> Option<Vec<RepositoryResult<TrunkRow>>> {
    if !can_go_together(creates) {
        return None;
    }
    conn.transaction(|conn| insert_together(conn, creates, keys))
        .ok()
}

/// Whether creates (sorted by owner) may be tried together: two or more, and each owner's
/// naming one limit.
fn can_go_together(creates: &[&CreateJob]) -> bool {
    creates.len() >= 2
        && creates
            .chunk_by(|one, other| one.owner == other.owner)
            .all(|account| {
                account
                    .iter()
                    .all(|job| job.max_trunks == account[0].max_trunks)
            })
}

/// The work of [`insert_creates_together`] in the caller's transaction: an error leaves it to
/// the caller to roll back (`Outcome(LimitReached)` when a counter would pass its limit).
fn insert_together(
    conn: &mut PgConnection,
    creates: &[&CreateJob],
    keys: &Keyring,
) -> Result<Vec<RepositoryResult<TrunkRow>>, TxError> {
    let accounts: Vec<&[&CreateJob]> = creates
        .chunk_by(|one, other| one.owner == other.owner)
        .collect();
    let count = i64::try_from(creates.len()).unwrap_or(i64::MAX);
    let ids: Vec<i64> = DrawTrunkIds { count }.load(conn)?;
    if ids.len() != creates.len() {
        return Err(TxError::Outcome(RepositoryError::Internal(
            "the sequence gave the wrong number of ids".into(),
        )));
    }
    let mut rows = Vec::with_capacity(creates.len());
    for (job, drawn) in creates.iter().zip(&ids) {
        let id = TrunkId::new(*drawn).ok_or(diesel::result::Error::NotFound)?;
        let password = SealedPasswordColumns::of(keys, job.owner, id, &job.trunk.sip_password);
        rows.push(
            NewTrunkRow::of(
                job.owner,
                &job.trunk,
                job.now,
                password,
                job.creating.as_ref(),
            )
            .with_id(id),
        );
    }
    let mut inserted: std::collections::HashMap<i64, TrunkRow> =
        diesel::insert_into(sip_trunks::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .get_results::<TrunkRow>(conn)?
            .into_iter()
            .map(|row| (row.id(), row))
            .collect();
    let mut drawn = ids.iter();
    for account in &accounts {
        let claimed = drawn
            .by_ref()
            .take(account.len())
            .filter(|id| inserted.contains_key(id))
            .count();
        let claimed = i64::try_from(claimed).unwrap_or(i64::MAX);
        if claimed == 0 {
            continue;
        }
        let counted = ClaimTrunkPlaces {
            owner: account[0].owner.get(),
            count: claimed,
            room: i64::from(account[0].max_trunks) - claimed,
        }
        .execute(conn)?;
        if counted != 1 {
            return Err(TxError::Outcome(RepositoryError::LimitReached));
        }
    }
    Ok(ids
        .iter()
        .map(|drawn| inserted.remove(drawn).ok_or(RepositoryError::Conflict))
        .collect())
}

/// Inserts a trunk of `owner` with its password sealed for its id, in the caller's
/// transaction (the row is never seen without its password).
///
/// PostgreSQL: the id is drawn from the sequence first, so the row is written once. (Sealing
/// it with an update after the insert leaves a dead row version and index entries behind
/// every create until VACUUM.) SQLite writes in place, has no sequence to draw from without
/// a race against other processes, and its transaction holds the write lock from the
/// insert on: it inserts, then seals, in two statements it keeps prepared (see
/// [`fixed_statements`]); the row read back from the insert gets the sealed columns as
/// written, so the row is not read twice.
fn insert_trunk(
    conn: &mut DbConnection,
    owner: UserId,
    trunk: &NewSipTrunk,
    now: Timestamp,
    keys: &Keyring,
    creating: Option<&Lease>,
) -> QueryResult<TrunkRow> {
    match conn {
        DbConnection::Postgres(pg) => {
            let id: i64 = DrawTrunkIds { count: 1 }.get_result(pg)?;
            let trunk_id = TrunkId::new(id).ok_or(diesel::result::Error::NotFound)?;
            let password = SealedPasswordColumns::of(keys, owner, trunk_id, &trunk.sip_password);
            diesel::insert_into(sip_trunks::table)
                .values(&NewTrunkRow::of(owner, trunk, now, password, creating).with_id(trunk_id))
                .get_result::<TrunkRow>(pg)
        }
        DbConnection::Sqlite(lite) => {
            let row = NewTrunkRow::of(
                owner,
                trunk,
                now,
                SealedPasswordColumns::placeholder(),
                creating,
            );
            let inserted: TrunkRow = diesel::insert_into(sip_trunks::table)
                .values(&row)
                .get_result(lite)?;
            let trunk_id = TrunkId::new(inserted.id()).ok_or(diesel::result::Error::NotFound)?;
            let password = SealedPasswordColumns::of(keys, owner, trunk_id, &trunk.sip_password);
            let sealed = SealPassword {
                trunk: trunk_id.get(),
                password: &password,
            }
            .execute(lite)?;
            if sealed != 1 {
                return Err(diesel::result::Error::NotFound);
            }
            Ok(inserted.with_password(password))
        }
    }
}

/// What an account holds and counts in its `users` row.
#[derive(Debug, Clone, Copy)]
enum Holding {
    /// `trunk_count`: the account's trunks.
    Trunks,
    /// `api_key_count`: the account's live API keys.
    ApiKeys,
}

/// Counts the record just inserted for `owner` against its limit `max`, in the inserting
/// transaction: `LimitReached` (the caller's transaction then rolls the insert back) when the
/// account already held `max`, `NotFound` when there is no such user.
///
/// The counter holds the places claimed: every insert adds one, deletes give none back (so
/// they never wait for the owner's lock), and the counter is never below what the account
/// holds. While it is under `max`, one conditional increment decides, and it takes the
/// owner's row lock until the transaction ends, so creates of one account take turns and can
/// never pass the limit. Once it reaches `max`, the owner's rows are counted for real, under
/// the lock, and the counter is set to that count. The increment comes after the insert so the
/// lock is held only for it and the commit.
fn claim_place(
    conn: &mut DbConnection,
    owner: UserId,
    holding: Holding,
    max: u32,
) -> Result<(), TxError> {
    let max = i64::from(max);
    let user = users::table.filter(users::id.eq(owner.get()));
    let claimed = match (holding, &mut *conn) {
        (Holding::Trunks, DbConnection::Sqlite(lite)) => {
            ClaimTrunkPlaces::one(owner.get(), max).execute(lite)?
        }
        (Holding::Trunks, DbConnection::Postgres(pg)) => {
            ClaimTrunkPlaces::one(owner.get(), max).execute(pg)?
        }
        (Holding::ApiKeys, _) => diesel::update(user.filter(users::api_key_count.lt(max)))
            .set(users::api_key_count.eq(users::api_key_count + 1))
            .execute(conn)?,
    };
    if claimed == 1 {
        return Ok(());
    }
    // Full by the counter, or no such user: lock the row, then count for real.
    let locked = diesel::update(user)
        .set(users::name.eq(users::name))
        .execute(conn)?;
    if locked == 0 {
        return Err(TxError::Outcome(RepositoryError::NotFound));
    }
    let held: i64 = match holding {
        Holding::Trunks => sip_trunks::table
            .filter(sip_trunks::user_id.eq(owner.get()))
            .count()
            .get_result(conn)?,
        Holding::ApiKeys => api_keys::table
            .filter(api_keys::user_id.eq(owner.get()))
            .count()
            .get_result(conn)?,
    };
    if held > max {
        return Err(TxError::Outcome(RepositoryError::LimitReached));
    }
    set_counter(conn, owner, holding, CounterChange::To(held))?;
    Ok(())
}

/// How [`set_counter`] changes a counter.
enum CounterChange {
    /// To this value.
    To(i64),
    /// By this much.
    By(i64),
}

/// Changes `holding`'s counter of `owner`, in the caller's transaction.
fn set_counter(
    conn: &mut DbConnection,
    owner: UserId,
    holding: Holding,
    change: CounterChange,
) -> QueryResult<()> {
    let user = users::table.filter(users::id.eq(owner.get()));
    match (holding, change) {
        (Holding::Trunks, CounterChange::To(value)) => diesel::update(user)
            .set(users::trunk_count.eq(value))
            .execute(conn)?,
        (Holding::Trunks, CounterChange::By(delta)) => diesel::update(user)
            .set(users::trunk_count.eq(users::trunk_count + delta))
            .execute(conn)?,
        (Holding::ApiKeys, CounterChange::To(value)) => diesel::update(user)
            .set(users::api_key_count.eq(value))
            .execute(conn)?,
        (Holding::ApiKeys, CounterChange::By(delta)) => diesel::update(user)
            .set(users::api_key_count.eq(users::api_key_count + delta))
            .execute(conn)?,
    };
    Ok(())
}

/// The `provisioning_state` of a trunk being created: hidden from clients.
const CREATING: i16 = 1;

/// Writes an applied update's row (fields and re-sealed password), if it changed anything.
fn store_update(
    conn: &mut DbConnection,
    keys: &Keyring,
    owner: UserId,
    id: TrunkId,
    update: &TrunkUpdate,
) -> QueryResult<()> {
    if update.changed {
        let settings = &update.trunk.settings;
        let fields = TrunkFields::of(settings, update.trunk.updated_at);
        let password = SealedPasswordColumns::of(keys, owner, id, &settings.sip_password);
        diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(id.get())))
            .set((&fields, &password))
            .execute(conn)?;
    }
    Ok(())
}

/// The owner's trunk `id`, unless it is still being created (not boxed, so Diesel caches the
/// prepared statement). No `LIMIT 1` (the id is the key): Diesel binds a limit, and SQLite
/// re-prepares a statement on every new binding of one ([`visible`]).
fn load_trunk(conn: &mut DbConnection, owner: UserId, id: TrunkId) -> QueryResult<TrunkRow> {
    sip_trunks::table
        .filter(sip_trunks::user_id.eq(owner.get()))
        .filter(sip_trunks::id.eq(id.get()))
        .filter(visible::not_creating())
        .select(TrunkRow::as_select())
        .load::<TrunkRow>(conn)?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// Takes the write lock on the owner's trunk `id` with a no-op write (SQLite: the database
/// write lock, waited for under the busy timeout; PostgreSQL: the row lock). False when the
/// owner has no such trunk (or it is still being created).
fn lock_trunk(conn: &mut DbConnection, owner: UserId, id: TrunkId) -> QueryResult<bool> {
    let touched = diesel::update(
        sip_trunks::table
            .filter(sip_trunks::id.eq(id.get()))
            .filter(sip_trunks::user_id.eq(owner.get()))
            .filter(visible::not_creating()),
    )
    .set(sip_trunks::updated_at.eq(sip_trunks::updated_at))
    .execute(conn)?;
    Ok(touched == 1)
}

/// `NotFound` when nothing was deleted.
fn deleted(count: usize) -> RepositoryResult<()> {
    if count == 0 {
        Err(RepositoryError::NotFound)
    } else {
        Ok(())
    }
}

impl SipTrunkRepository for SqlStore {
    fn reads_inline(&self) -> bool {
        matches!(self.url, DatabaseUrl::SqliteFile(_))
    }

    fn list_trunks(&self, owner: UserId, page: TrunkPage) -> RepositoryResult<TrunkListing> {
        let after = page.after.map_or(0, TrunkId::get);
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let page_len = page.limit;
        let read_page = |conn: &mut DbConnection| {
            // A macro, not a value: each backend's arm types the selection for itself.
            macro_rules! page {
                () => {
                    sip_trunks::table
                        .filter(sip_trunks::user_id.eq(owner.get()))
                        .filter(sip_trunks::id.gt(after))
                        .filter(visible::not_creating())
                        .order(sip_trunks::id.asc())
                        .select(ShownTrunkRow::as_select())
                };
            }
            match conn {
                // SQLite re-prepares a statement on every new binding of a LIMIT parameter
                // ([`visible`]): the cursor is stepped `limit` times instead, and the rows
                // come in index order, so nothing past the page is read.
                DbConnection::Sqlite(conn) => page!()
                    .load_iter::<ShownTrunkRow, diesel::connection::DefaultLoadingMode>(conn)?
                    .take(page_len)
                    .collect(),
                DbConnection::Postgres(conn) => page!().limit(limit).load(conn),
            }
        };
        // A first page is what a worker reads inline; the pages after it, which only long
        // lists have, are read on the blocking pool, whose many threads must not each keep a
        // connection (and its page cache) of their own ([`readers`]).
        let rows = if page.after.is_none() {
            self.read_here(read_page)?
        } else {
            self.with_connection(read_page)?
        };
        read_batches::listing_of(rows)
    }

    fn get_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<SipTrunk<PasswordWithheld>> {
        self.read_here(|conn| {
            sip_trunks::table
                .filter(sip_trunks::user_id.eq(owner.get()))
                .filter(sip_trunks::id.eq(id.get()))
                .filter(visible::not_creating())
                .select(ShownTrunkRow::as_select())
                .load::<ShownTrunkRow>(conn)
        })?
        .pop()
        .ok_or(RepositoryError::NotFound)?
        .into_withheld()
    }

    fn queues_reads(&self) -> bool {
        self.reads.is_some()
    }

    fn queue_list(&self, owner: UserId, page: TrunkPage, answer: domain::Answer<TrunkListing>) {
        let pick = |outcome| match outcome {
            TrunkReadOutcome::Page(listing) => Some(listing),
            TrunkReadOutcome::One(_) => None,
        };
        if let Err(answer) = self.queue_read(TrunkRead::Page(owner, page), pick, answer) {
            answer(self.list_trunks(owner, page));
        }
    }

    fn queue_get(
        &self,
        owner: UserId,
        id: TrunkId,
        answer: domain::Answer<SipTrunk<PasswordWithheld>>,
    ) {
        let pick = |outcome| match outcome {
            TrunkReadOutcome::One(trunk) => Some(trunk),
            TrunkReadOutcome::Page(_) => None,
        };
        if let Err(answer) = self.queue_read(TrunkRead::One(owner, id), pick, answer) {
            answer(self.get_trunk(owner, id));
        }
    }

    fn open_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<SipTrunk> {
        self.with_connection(|conn| load_trunk(conn, owner, id))?
            .into_domain(&self.keys)
    }

    fn create_trunk(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
    ) -> RepositoryResult<SipTrunk> {
        self.insert_claiming_place(owner, trunk, max_trunks, None)
    }

    fn queues_creates(&self) -> bool {
        self.creates.is_some()
    }

    fn queue_create(
        &self,
        owner: UserId,
        trunk: NewSipTrunk,
        max_trunks: u32,
        answer: domain::CreateAnswer,
    ) {
        let job = CreateJob {
            owner,
            trunk,
            max_trunks,
            creating: None,
            now: Timestamp::now(),
        };
        match &self.creates {
            Some(writers) => writers.submit(owner.get().unsigned_abs(), job, answer),
            None => answer(self.commit_creates_past_dead_ones(&[job]).remove(0)),
        }
    }

    fn update_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        patch: &SipTrunkPatch,
    ) -> RepositoryResult<TrunkUpdate> {
        let keys = &self.keys;
        self.past_dead_creations(owner, || {
            self.write(|conn| {
                conn.transaction::<_, TxError, _>(|conn| {
                    if !lock_trunk(conn, owner, id)? {
                        return Err(TxError::Outcome(RepositoryError::NotFound));
                    }
                    let current = load_trunk(conn, owner, id)?
                        .into_domain(keys)
                        .map_err(TxError::Outcome)?;
                    let update = patch
                        .apply(&current, Timestamp::now())
                        .map_err(|errors| TxError::Outcome(RepositoryError::Rejected(errors)))?;
                    store_update(conn, keys, owner, id, &update)?;
                    Ok(update)
                })
            })
        })
    }

    /// Queues the trunk's legs for removal in the same transaction (see
    /// [`ProvisioningLedger::delete_and_queue`]).
    fn delete_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        self.delete_and_queue(owner, id).map(drop)
    }
}

impl AccountRepository for SqlStore {
    fn create_user(&self, email: &Email, name: &UserName) -> RepositoryResult<User> {
        let row = NewUserRow {
            email: email.as_str(),
            name: name.as_str(),
            created_at: Timestamp::now().naive_utc(),
        };
        self.write(|conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .returning((users::id, users::email, users::name, users::created_at))
                .get_result::<UserRow>(conn)
                .map_err(TxError::Query)
        })?
        .into_domain()
    }

    fn find_user_by_email(&self, email: &Email) -> RepositoryResult<User> {
        self.with_connection(|conn| {
            users::table
                .filter(users::email.eq(email.as_str()))
                .select(UserRow::as_select())
                .first(conn)
        })?
        .into_domain()
    }

    fn find_user(&self, id: UserId) -> RepositoryResult<User> {
        self.with_connection(|conn| {
            users::table
                .find(id.get())
                .select(UserRow::as_select())
                .first(conn)
        })?
        .into_domain()
    }

    fn create_api_key(
        &self,
        owner: UserId,
        name: &ApiKeyName,
        token_hash: &TokenHash,
        max_keys: u32,
    ) -> RepositoryResult<ApiKey> {
        let row = NewApiKeyRow {
            user_id: owner.get(),
            name: name.as_str(),
            token_hash: token_hash.to_hex(),
            created_at: Timestamp::now().naive_utc(),
        };
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let key = diesel::insert_into(api_keys::table)
                    .values(&row)
                    .get_result::<ApiKeyRow>(conn)?;
                claim_place(conn, owner, Holding::ApiKeys, max_keys)?;
                Ok(key)
            })
        })?
        .into_domain()
    }

    fn list_api_keys(&self, owner: UserId) -> RepositoryResult<Vec<ApiKey>> {
        self.with_connection(|conn| {
            api_keys::table
                .filter(api_keys::user_id.eq(owner.get()))
                .order(api_keys::id.asc())
                .select(ApiKeyRow::as_select())
                .load(conn)
        })?
        .into_iter()
        .map(ApiKeyRow::into_domain)
        .collect()
    }

    fn revoke_api_key(&self, owner: UserId, id: ApiKeyId) -> RepositoryResult<()> {
        let count = self.write(|conn| {
            diesel::delete(
                api_keys::table
                    .filter(api_keys::id.eq(id.get()))
                    .filter(api_keys::user_id.eq(owner.get())),
            )
            .execute(conn)
            .map_err(TxError::Query)
        })?;
        deleted(count)
    }

    fn revoke_any_api_key(&self, id: ApiKeyId) -> RepositoryResult<()> {
        let count = self.write(|conn| {
            diesel::delete(api_keys::table.filter(api_keys::id.eq(id.get())))
                .execute(conn)
                .map_err(TxError::Query)
        })?;
        deleted(count)
    }

    fn authenticate(&self, token: &ApiToken) -> RepositoryResult<ApiKey> {
        let key = self
            .with_connection(|conn| {
                api_keys::table
                    .filter(api_keys::token_hash.eq(token.hash().to_hex()))
                    .select(ApiKeyRow::as_select())
                    .first(conn)
            })?
            .into_domain()?;
        if key.id == token.key_id() {
            Ok(key)
        } else {
            Err(RepositoryError::NotFound)
        }
    }

    fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> RepositoryResult<()> {
        self.write(|conn| {
            diesel::update(api_keys::table.filter(api_keys::id.eq(id.get())))
                .set(api_keys::last_used_at.eq(Some(at.naive_utc())))
                .execute(conn)
                .map_err(TxError::Query)
        })?;
        Ok(())
    }
}
