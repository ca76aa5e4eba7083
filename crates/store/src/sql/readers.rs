//! Per-thread SQLite read connections for the hot reads (a trunk list's page, one trunk).
//!
//! On SQLite a read is tens of microseconds; handing it to the blocking pool and a pooled
//! connection cost about as much again (a thread hop: two wake-ups and a futex each way). So
//! [`SqlStore::read_here`] runs it on the calling thread, on a connection that thread keeps
//! for itself: the API's workers each hold one (`SipTrunkRepository::reads_inline`), and a
//! blocking-pool thread that reads holds one until it exits. A WAL reader never waits for the
//! writer, so this never blocks a worker on another request. A connection that failed is
//! dropped and the next read opens another. PostgreSQL and in-memory SQLite use the pool.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::QueryResult;
use domain::{RepositoryError, RepositoryResult};

use super::connection::{ConnectionManager, DbConnection};
use super::SqlStore;
use crate::DatabaseUrl;

thread_local! {
    /// This thread's read connections, one per store (by [`SqlStore::reader_key`]).
    static READERS: RefCell<Vec<(u64, DbConnection)>> = const { RefCell::new(Vec::new()) };
}

/// Most databases a thread keeps a read connection to.
const MAX_READERS_PER_THREAD: usize = 4;

/// A key per opened store (the clones `with_keys` makes share it: same database).
pub(crate) fn new_reader_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl SqlStore {
    /// Runs the read `work` on this thread's own connection to the SQLite file (opened on
    /// first use); on another backend, on a pooled connection as every other call does.
    /// `work` must not call back into the store.
    pub(crate) fn read_here<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> RepositoryResult<T> {
        if !matches!(self.url, DatabaseUrl::SqliteFile(_)) {
            return self.with_connection(work);
        }
        READERS.with(|cell| {
            let mut readers = cell.borrow_mut();
            let index = match readers.iter().position(|(key, _)| *key == self.reader_key) {
                Some(index) => index,
                None => {
                    // A thread that read many databases (tests open one per case) keeps the
                    // newest few.
                    if readers.len() >= MAX_READERS_PER_THREAD {
                        readers.remove(0);
                    }
                    let opened =
                        r2d2::ManageConnection::connect(&ConnectionManager::new(self.url.clone()))
                            .map_err(|error| RepositoryError::Unavailable(error.to_string()))?;
                    readers.push((self.reader_key, opened.db));
                    readers.len() - 1
                }
            };
            work(&mut readers[index].1).map_err(|error| {
                let error = RepositoryError::from(super::TxError::Query(error));
                if matches!(error, RepositoryError::Unavailable(_)) {
                    readers.swap_remove(index);
                }
                error
            })
        })
    }
}
