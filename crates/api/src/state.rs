//! `AppState`: what handlers share: the ports, and a readiness probe.

use std::sync::Arc;
use std::time::Duration;

use domain::{
    AccountRepository, CarrierHealthStore, NumberConflictBudget, NumberConflictLog,
    RepositoryError, RepositoryResult, SipTrunkRepository, TrunkNotes,
};

use crate::auth_cache::AuthCache;
use crate::client_address::TrustedProxies;
use crate::errors::ApiError;
use crate::metrics::{Metrics, MetricsObserver};
use crate::rate_limit::RateLimits;
use crate::read_cache::{self, ReadCache};
use service::Observe;
use service::Provisioner;

/// Checks that storage answers (for `/readyz`).
pub type ReadinessProbe = Arc<dyn Fn() -> RepositoryResult<()> + Send + Sync>;

/// The application's shared state: the repositories behind their ports.
#[derive(Clone)]
pub struct AppState {
    /// SIP trunks.
    pub trunks: Arc<dyn SipTrunkRepository>,
    /// Users and API keys.
    pub accounts: Arc<dyn AccountRepository>,
    /// The number-taken answers each account got.
    pub number_conflicts: Arc<dyn NumberConflictLog>,
    /// What the registry notes of trunks beside their settings (status, probe slots).
    pub notes: Arc<dyn TrunkNotes>,
    /// The carriers' health.
    pub carriers: Arc<dyn CarrierHealthStore>,
    /// Runs the carrier probes clients ask for; `None`: they answer 503.
    pub prober: Option<Arc<service::CarrierProber>>,
    /// `/readyz`.
    pub ready: ReadinessProbe,
    /// Recently verified tokens.
    pub auth_cache: Arc<AuthCache>,
    /// Recently rendered reads.
    pub read_cache: Arc<ReadCache>,
    /// Per-account and failed-authentication limits (off unless configured).
    pub rate_limits: Arc<RateLimits>,
    /// Proxies whose `X-Forwarded-For` names the client (none unless configured).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Most trunks and keys per account.
    pub limits: AccountLimits,
    /// The voice infrastructure's legs of every trunk; `None`: registry only (no legs).
    pub provisioner: Option<Arc<Provisioner>>,
    /// On PostgreSQL, the feed of other replicas' writes that keeps the caches coherent;
    /// `None`: this process is the only writer (SQLite) or a test.
    pub change_feed: Option<Arc<store::ChangeFeed>>,
    /// What is counted (served on the metrics listener); one per process, passed in.
    pub metrics: Arc<Metrics>,
    /// Permits for the pages of long lists being read and rendered at once
    /// ([`long_list_pages`]).
    pub long_list_pages: Arc<tokio::sync::Semaphore>,
}

/// How many pages of long lists (those after a list's first) are read and rendered at once
/// in a process: two per core. Each is up to 200 trunks of rows, domain values and JSON (some
/// megabytes for trunks with long allow-lists) on a blocking-pool thread, so without a bound a
/// process's memory grew with how many long lists a machine served at once, and so did the
/// wait of every other tenant's reads for a core. One per core cost long lists a third to
/// half of their rate (a PostgreSQL page also waits on the server); two per core kept nearly
/// all of it (docs/performance.md, "Memory under large accounts"). A list's first page, which
/// every list has, never waits here.
pub fn long_list_pages() -> usize {
    2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// How long a rendered read is served from memory by default.
pub const DEFAULT_READ_CACHE_TTL: Duration = Duration::from_secs(1);

/// How much one account may hold (the contract's "Limits per account").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    /// Most trunks (`MAX_TRUNKS_PER_USER`).
    pub max_trunks: u32,
    /// Most live API keys (`MAX_API_KEYS_PER_USER`).
    pub max_api_keys: u32,
    /// Most number-taken answers an hour (`NUMBER_CONFLICTS_PER_HOUR`).
    pub number_conflicts: NumberConflictBudget,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            max_trunks: 1000,
            max_api_keys: 100,
            number_conflicts: NumberConflictBudget::default(),
        }
    }
}

impl AppState {
    /// State over one store implementing both ports.
    pub fn new<S>(store: Arc<S>, ready: ReadinessProbe) -> Self
    where
        S: SipTrunkRepository
            + AccountRepository
            + NumberConflictLog
            + TrunkNotes
            + CarrierHealthStore
            + 'static,
    {
        Self {
            trunks: store.clone(),
            accounts: store.clone(),
            number_conflicts: store.clone(),
            notes: store.clone(),
            carriers: store,
            prober: None,
            ready,
            auth_cache: Arc::new(AuthCache::default()),
            read_cache: Arc::new(ReadCache::new(
                DEFAULT_READ_CACHE_TTL,
                read_cache::DEFAULT_BUDGET_BYTES,
            )),
            rate_limits: Arc::new(RateLimits::off()),
            trusted_proxies: Arc::new(TrustedProxies::default()),
            limits: AccountLimits::default(),
            provisioner: None,
            change_feed: None,
            metrics: Arc::new(Metrics::new()),
            long_list_pages: Arc::new(tokio::sync::Semaphore::new(long_list_pages())),
        }
    }

    /// The same state counting in `metrics` (the process's one registry).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state following other replicas' writes through `feed`.
    pub fn with_change_feed(mut self, feed: store::ChangeFeed) -> Self {
        self.change_feed = Some(Arc::new(feed));
        self
    }

    /// `/readyz`'s `cache_coherence`: `live` while the change feed listens, `degraded` while
    /// it reconnects (caches rely on their TTL), `local` without a feed.
    pub fn cache_coherence(&self) -> &'static str {
        match &self.change_feed {
            None => "local",
            Some(feed) if feed.is_live() => "live",
            Some(_) => "degraded",
        }
    }

    /// The same state putting every trunk's legs on `provisioner`'s infrastructure.
    pub fn with_provisioner(mut self, provisioner: Arc<Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// The same state running the carrier probes clients ask for with `prober`.
    pub fn with_prober(mut self, prober: Arc<service::CarrierProber>) -> Self {
        self.prober = Some(prober);
        self
    }

    /// The status use cases ([`service::Diagnostics`]).
    pub fn diagnostics(&self) -> service::Diagnostics {
        service::Diagnostics::new(
            self.trunks.clone(),
            self.notes.clone(),
            self.carriers.clone(),
            self.prober.clone(),
            self.provisioner.as_ref().map(|p| p.name()),
            Arc::new(MetricsObserver(self.metrics.clone())),
        )
    }

    /// The same state with `limits` per account.
    pub fn with_limits(mut self, limits: AccountLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same state believing `X-Forwarded-For` from `proxies`.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// The same state with `rate_limits`.
    pub fn with_rate_limits(mut self, rate_limits: RateLimits) -> Self {
        self.rate_limits = Arc::new(rate_limits);
        self
    }

    /// The one entry for trunk writes ([`service::Trunks`]): through the provisioning when
    /// trunks have legs; each write drops the owner's cached reads.
    pub fn trunk_writes(&self) -> service::Trunks {
        service::Trunks::new(
            self.trunks.clone(),
            self.provisioner.clone(),
            Arc::new(ApiObserver(
                self.read_cache.clone(),
                MetricsObserver(self.metrics.clone()),
            )),
        )
        .with_number_conflicts(service::NumberConflicts {
            log: self.number_conflicts.clone(),
            budget: self.limits.number_conflicts,
        })
    }

    /// The same state with reads cached for `ttl`, at most `budget` bytes in all (zero
    /// turns the cache off).
    pub fn with_read_cache(mut self, ttl: Duration, budget: usize) -> Self {
        self.read_cache = Arc::new(ReadCache::new(ttl, budget));
        self
    }
}

impl AppState {
    /// Runs blocking repository work on the blocking thread pool, never on an actix worker;
    /// storage failures are counted.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        F: FnOnce() -> RepositoryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        // The pool's thread works for the caller's request: its log lines carry the id.
        service::blocking(&MetricsObserver(self.metrics.clone()), work).await
    }

    /// A read of the trunk repository: on this thread when the repository reads inline
    /// ([`SipTrunkRepository::reads_inline`]: SQLite, memory), whose hop to the blocking pool
    /// would cost more than the read; on the blocking pool otherwise. Failures as
    /// [`Self::run`].
    pub async fn read<T, F>(&self, work: F, not_found: ApiError) -> Result<T, ApiError>
    where
        F: FnOnce() -> RepositoryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        if !self.trunks.reads_inline() {
            return self.run(work, not_found).await;
        }
        let outcome = work();
        service::blocking::count_failure(&MetricsObserver(self.metrics.clone()), &outcome);
        outcome.map_err(|error| ApiError::from_repository(error, not_found))
    }

    /// A call the store queues to threads of its own ([`service::queued_then`]: `queue` gets
    /// the code that takes the answer, and `then` runs on the answer where the store gives
    /// it), awaited without a thread. Failures as [`Self::run`].
    pub async fn queued<T, U>(
        &self,
        queue: impl FnOnce(domain::Answer<T>),
        then: impl FnOnce(T) -> RepositoryResult<U> + Send + 'static,
        not_found: ApiError,
    ) -> Result<U, ApiError>
    where
        T: Send + 'static,
        U: Send + 'static,
    {
        service::queued_then(&MetricsObserver(self.metrics.clone()), queue, then)
            .await
            .map_err(|error| ApiError::from_repository(error, not_found))
    }

    /// [`Self::blocking`], with a repository failure turned into the API's error.
    pub async fn run<T, F>(&self, work: F, not_found: ApiError) -> Result<T, ApiError>
    where
        F: FnOnce() -> RepositoryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.blocking(work)
            .await
            .map_err(|error| ApiError::from_repository(error, not_found))
    }
}

/// What the use cases report, as the API takes it: a write drops the owner's cached reads;
/// everything else is counted in the metrics.
struct ApiObserver(Arc<ReadCache>, MetricsObserver);

impl Observe for ApiObserver {
    fn written(&self, owner: domain::UserId) {
        self.0.invalidate(owner);
    }

    fn infrastructure_call(&self, infrastructure: &str, operation: &str, outcome: &str) {
        self.1
            .infrastructure_call(infrastructure, operation, outcome);
    }

    fn storage_failed(&self, kind: &'static str) {
        self.1.storage_failed(kind);
    }

    fn reconciler_failed(&self, error: &'static str) {
        self.1.reconciler_failed(error);
    }

    fn due_removals(&self, count: usize) {
        self.1.due_removals(count);
    }

    fn due_trunks(&self, count: usize) {
        self.1.due_trunks(count);
    }
}
