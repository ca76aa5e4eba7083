//! The ports: what the domain needs from storage. `store` implements them; the API and any
//! other service depend only on these traits.
//!
//! The traits are synchronous and object-safe (`Arc<dyn SipTrunkRepository>`): the
//! implementations are blocking database clients, and an async caller runs them on a
//! blocking thread pool.

use crate::{
    ApiKey, ApiKeyId, ApiKeyName, ApiToken, Email, NewSipTrunk, PasswordWithheld, SipTrunk,
    SipTrunkPatch, Timestamp, TokenHash, TrunkId, TrunkUpdate, User, UserId, UserName,
    ValidationErrors,
};

/// How a repository call can fail. Every implementation maps its own errors onto these, and
/// none of them carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// No such record for this owner. A record of another owner is also "not found".
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken: for trunks, the same (phone number, username,
    /// address) for the same owner; for users, the same e-mail.
    #[error("conflicts with an existing record")]
    Conflict,
    /// An update whose rules depend on the stored record failed them (see
    /// [`SipTrunkPatch::apply`]); nothing was written.
    #[error("{0}")]
    Rejected(ValidationErrors),
    /// The owner already has as many records of this kind as its limit allows; nothing was
    /// written.
    #[error("the account limit is reached")]
    LimitReached,
    /// The storage cannot be reached now (connection refused, pool exhausted, database
    /// locked for too long). Worth retrying later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record no longer parses into its domain type, or cannot be decrypted.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The lease on a trunk's provisioning is no longer the caller's (it ran out and was
    /// taken over, or the trunk was deleted or changed meanwhile); nothing was written.
    #[error("the provisioning lease was lost")]
    LeaseLost,
    /// Anything else the storage reported.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Shorthand for repository results.
pub type RepositoryResult<T> = Result<T, RepositoryError>;

/// Which of an owner's trunks to list: by id ascending, those after `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkPage {
    /// Start after this id (`None`: from the first).
    pub after: Option<TrunkId>,
    /// Most rows to read.
    pub limit: usize,
}

impl TrunkPage {
    /// The first `limit` trunks.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// The `limit` trunks after the last row of `listing`.
    pub fn after(listing: &TrunkListing, limit: usize) -> Self {
        Self {
            after: listing.last_id,
            limit,
        }
    }
}

/// A stored trunk that no longer reads as a valid trunk; listed apart so that it never fails
/// the rest of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableTrunk {
    /// The row's id.
    pub id: TrunkId,
    /// What is wrong (names columns, never values).
    pub reason: String,
}

/// A page of an owner's trunks as shown to clients: without passwords (never decrypted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkListing {
    /// The trunks that read, by id ascending.
    pub trunks: Vec<SipTrunk<PasswordWithheld>>,
    /// The rows of the page that did not.
    pub unreadable: Vec<UnreadableTrunk>,
    /// The id of the page's last row, readable or not: where the next page starts.
    pub last_id: Option<TrunkId>,
    /// Rows read (readable or not); fewer than the page's limit means the list is complete.
    pub rows: usize,
}

/// Takes the outcome of a call queued with the store ([`SipTrunkRepository::queue_create`],
/// [`SipTrunkRepository::queue_list`], [`SipTrunkRepository::queue_get`]), once, on whichever
/// thread the store answers from: it must not block.
pub type Answer<T> = Box<dyn FnOnce(RepositoryResult<T>) + Send>;

/// Takes the outcome of a create queued with [`SipTrunkRepository::queue_create`].
pub type CreateAnswer = Answer<SipTrunk>;

/// SIP trunks, always scoped by their owner.
pub trait SipTrunkRepository: Send + Sync {
    /// True when [`SipTrunkRepository::list_trunks`] and [`SipTrunkRepository::get_trunk`]
    /// answer from local storage in tens of microseconds, without waiting on a network or a
    /// pool (SQLite, memory): an async caller may then run them on its own thread instead of
    /// handing them to a blocking pool, whose hop costs more than the read.
    fn reads_inline(&self) -> bool {
        false
    }

    /// A page of the owner's trunks, by id ascending, without passwords. A row that does not
    /// read is reported in [`TrunkListing::unreadable`], never as an error of the whole page.
    fn list_trunks(&self, owner: UserId, page: TrunkPage) -> RepositoryResult<TrunkListing>;

    /// One of the owner's trunks, without its password (which is not decrypted); `NotFound`
    /// when absent or another owner's.
    fn get_trunk(&self, owner: UserId, id: TrunkId)
        -> RepositoryResult<SipTrunk<PasswordWithheld>>;

    /// True when [`SipTrunkRepository::queue_list`] and [`SipTrunkRepository::queue_get`]
    /// hand the read to threads of the store's own and return at once (PostgreSQL, which
    /// asks for the reads queued meanwhile in one statement): an async caller then waits for
    /// the answer without a thread of its own. False when they would read on the caller's
    /// thread.
    fn queues_reads(&self) -> bool {
        false
    }

    /// [`SipTrunkRepository::list_trunks`], with the page given to `answer`. The default
    /// reads on the caller's thread.
    fn queue_list(&self, owner: UserId, page: TrunkPage, answer: Answer<TrunkListing>) {
        answer(self.list_trunks(owner, page));
    }

    /// [`SipTrunkRepository::get_trunk`], with the trunk given to `answer`. The default reads
    /// on the caller's thread.
    fn queue_get(&self, owner: UserId, id: TrunkId, answer: Answer<SipTrunk<PasswordWithheld>>) {
        answer(self.get_trunk(owner, id));
    }

    /// One of the owner's trunks with its password opened: for the voice infrastructure,
    /// which needs the credentials, never for an answer to a client. `NotFound` as
    /// [`SipTrunkRepository::get_trunk`]; `Corrupt` when the password does not open.
    fn open_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<SipTrunk>;

    /// Stores a new trunk with a fresh id (never reused) and both timestamps now;
    /// `Conflict` when the owner already has the same (phone number, username, address);
    /// `LimitReached` when the owner already has `max_trunks` trunks. Concurrent creates
    /// never take an owner past the limit. A hidden create whose creator died never makes a
    /// `Conflict` (see [`crate::ProvisioningLedger::begin_create`]).
    fn create_trunk(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
    ) -> RepositoryResult<SipTrunk>;

    /// True when [`SipTrunkRepository::queue_create`] hands the create to a writer of the
    /// store's own and returns at once (a SQL store, which commits concurrent creates in
    /// one transaction): an async caller then waits for the answer without a thread of its
    /// own. False when it would run the create on the caller's thread.
    fn queues_creates(&self) -> bool {
        false
    }

    /// [`SipTrunkRepository::create_trunk`], with the outcome given to `answer` once
    /// committed, on whichever thread committed it (`answer` must not block). The default
    /// runs `create_trunk` on the caller's thread.
    fn queue_create(
        &self,
        owner: UserId,
        trunk: NewSipTrunk,
        max_trunks: u32,
        answer: CreateAnswer,
    ) {
        answer(self.create_trunk(owner, &trunk, max_trunks));
    }

    /// Applies `patch` atomically to the owner's trunk `id` with [`SipTrunkPatch::apply`]:
    /// `NotFound`, `Rejected` (a rule that depends on the stored trunk), `Conflict` (the
    /// change collides with another trunk of the owner; a hidden create whose creator died
    /// does not count). Nothing is written when nothing
    /// changes, so `updated_at` stays.
    fn update_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        patch: &SipTrunkPatch,
    ) -> RepositoryResult<TrunkUpdate>;

    /// Deletes the owner's trunk `id`; `NotFound` when absent or another owner's.
    fn delete_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()>;
}

/// Users and their API keys.
pub trait AccountRepository: Send + Sync {
    /// A new user; `Conflict` when the e-mail is taken.
    fn create_user(&self, email: &Email, name: &UserName) -> RepositoryResult<User>;

    /// The user with this e-mail; `NotFound` when none.
    fn find_user_by_email(&self, email: &Email) -> RepositoryResult<User>;

    /// The user with this id; `NotFound` when none.
    fn find_user(&self, id: UserId) -> RepositoryResult<User>;

    /// A new key for `owner` storing only `token_hash`; the caller builds the token from the
    /// returned id and the secret it hashed. `NotFound` when the owner does not exist;
    /// `LimitReached` when the owner already has `max_keys` live keys (never passed by
    /// concurrent creates).
    fn create_api_key(
        &self,
        owner: UserId,
        name: &ApiKeyName,
        token_hash: &TokenHash,
        max_keys: u32,
    ) -> RepositoryResult<ApiKey>;

    /// The owner's keys, by id ascending.
    fn list_api_keys(&self, owner: UserId) -> RepositoryResult<Vec<ApiKey>>;

    /// Revokes (deletes) the owner's key `id`; `NotFound` when absent or another owner's.
    fn revoke_api_key(&self, owner: UserId, id: ApiKeyId) -> RepositoryResult<()>;

    /// Revokes key `id` whoever owns it (administration); `NotFound` when absent.
    fn revoke_any_api_key(&self, id: ApiKeyId) -> RepositoryResult<()>;

    /// The live key `token` belongs to: found by the hash of its secret, and its id must be
    /// the token's. `NotFound` for an unknown, revoked or mismatched token.
    fn authenticate(&self, token: &ApiToken) -> RepositoryResult<ApiKey>;

    /// Records that key `id` was used at `at`; a revoked key is silently ignored.
    fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> RepositoryResult<()>;
}
