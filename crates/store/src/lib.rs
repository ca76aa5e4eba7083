//! Storage for SIP trunks, users and API keys: the domain's ports implemented over SQLite and
//! PostgreSQL with Diesel ([`SqlStore`]), and in memory ([`MemoryStore`]), with the same
//! semantics, checked by one contract test suite (`tests/contract`).

mod database_url;
mod memory;
pub mod secrets;
pub mod sql;
#[cfg(feature = "test-support")]
pub mod testing;

pub use database_url::{DatabaseUrl, DatabaseUrlError};
pub use memory::MemoryStore;
pub use secrets::{EncryptionKey, KeyError, Keyring};
pub use sql::{
    close_connection_attempts, Change, ChangeFeed, DbConnection, OpenError, PoolOptions, PoolStats,
    ResealReport, ResealScope, SqlStore, TrunkRead, TrunkReadOutcome,
};
