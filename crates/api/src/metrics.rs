//! Prometheus metrics (`prometheus-client`, the Prometheus project's own Rust client: typed
//! families, the text format, no global magic), served on a listener of their own
//! (`--metrics-bind`, default 127.0.0.1:9090, `off` disables it), never on the public one.
//!
//! Counters are updated where things happen (a few atomic adds per request); gauges that
//! describe state (the pool, the change feed, Redis) are read when scraped. Labels are
//! bounded: routes are templates (`/api/user/phone-numbers/sip-trunks/{id}`, never the raw
//! path), unmatched paths are one `unmatched` route.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (one of the route table's paths, or `unmatched`).
    pub route: &'static str,
    /// The HTTP method, one of a fixed set ([`crate::telemetry::method_label`]).
    pub method: &'static str,
    /// The answer's status.
    pub status: u16,
}

/// A route's labels (latency).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template (one of the route table's paths, or `unmatched`).
    pub route: &'static str,
    /// The HTTP method, one of a fixed set ([`crate::telemetry::method_label`]).
    pub method: &'static str,
}

/// One label, `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What kind.
    pub kind: String,
}

/// A cache's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `read` or `auth`.
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub outcome: &'static str,
}

/// Which cache a lookup asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// The answers to reads ([`crate::read_cache`]).
    Read = 0,
    /// Verified API tokens ([`crate::auth_cache`]).
    Auth = 1,
}

impl CacheKind {
    const ALL: [CacheKind; 2] = [CacheKind::Read, CacheKind::Auth];

    fn label(self) -> &'static str {
        match self {
            CacheKind::Read => "read",
            CacheKind::Auth => "auth",
        }
    }
}

impl CacheLabels {
    fn of(cache: CacheKind, hit: bool) -> Self {
        CacheLabels {
            cache: cache.label(),
            outcome: if hit { "hit" } else { "miss" },
        }
    }
}

/// A call to the voice infrastructure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProvisioningLabels {
    /// `livekit` or `kamailio`.
    pub infrastructure: String,
    /// What was asked (`create inbound leg`, ...).
    pub operation: String,
    /// `ok`, or the error's kind (`unavailable`, `refused`, `unauthorized`, `number_taken`).
    pub outcome: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route and method.
    pub durations: Family<RouteLabels, Histogram>,
    /// Database errors by kind (`unavailable`, `internal`, `corrupt`).
    pub db_errors: Family<KindLabel, Counter>,
    /// Requests refused by a rate limit, by limit (`account`, `auth_failures`).
    pub rate_limited: Family<KindLabel, Counter>,
    /// Failed authentications.
    pub auth_failures: Counter,
    /// Cache hits and misses.
    pub cache: Family<CacheLabels, Counter>,
    /// The series of `cache`, resolved once: `[kind][hit]`, so that counting a lookup (twice
    /// a cached read) is one atomic add, with no label hashed or lock taken.
    cache_series: [[Counter; 2]; 2],
    /// Calls to the voice infrastructure by operation and outcome.
    pub provisioning: Family<ProvisioningLabels, Counter>,
    /// Leg removals due at the reconciler's last pass (at most 200 read).
    pub reconciler_due_removals: Gauge,
    /// Trunks due for repair the reconciler claimed at its last pass (at most 20).
    pub reconciler_due_trunks: Gauge,
    /// Reconciler passes and repairs that failed, by kind
    /// ([`service::ReconcileError::metric_label`]).
    pub reconciler_failures: Family<KindLabel, Counter>,
    /// Carrier probes by outcome (`answered`, `timeout`, `icmp_unreachable`,
    /// `dns_failure`): never a label per trunk or address.
    pub carrier_probes: Family<KindLabel, Counter>,
    /// Stored trunks by their carrier's state (`reachable`, `unreachable`, `unknown`), as of
    /// this process's last prober pass.
    pub carrier_trunks: Family<KindLabel, Gauge>,
    /// Connections open in the database pool.
    pub pool_open: Gauge,
    /// Of those, in use.
    pub pool_in_use: Gauge,
    /// The pool's size limit.
    pub pool_max: Gauge,
    /// Connections handed out by the pool.
    pub pool_checkouts: Counter,
    /// Seconds spent waiting for a pooled connection.
    pub pool_wait_seconds: Counter<f64, AtomicU64>,
    /// 1 while the change feed listens (PostgreSQL), 0 while it reconnects or without one.
    pub change_feed_live: Gauge,
    /// 1 while rate limits are shared through Redis and Redis answers.
    pub rate_limits_shared: Gauge,
    seen_checkouts: AtomicU64,
    seen_wait_micros: AtomicU64,
}

/// `metric`, registered in `registry` as `name` with `help`.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry of every metric, each at zero. The process makes one at start-up and
    /// passes it to what counts (the API's state, the provisioning's observer); each test
    /// gets its own.
    #[rustfmt::skip] // one metric a line: name, help, kind
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sip_trunks");
        let r = &mut registry;
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        let requests = registered(r, "http_requests", "Requests by route template, method and status", Family::default());
        let durations = registered(r, "http_request_duration_seconds", "Request latency by route template and method", durations);
        let db_errors = registered(r, "db_errors", "Database errors by kind", Family::default());
        let rate_limited = registered(r, "rate_limited", "Requests refused by a rate limit, by limit", Family::default());
        let auth_failures = registered(r, "auth_failures", "Failed authentications", Counter::default());
        let cache = registered(r, "cache_lookups", "Cache lookups by cache and outcome", Family::<CacheLabels, Counter>::default());
        let provisioning = registered(r, "provisioning_calls", "Calls to the voice infrastructure by operation and outcome", Family::default());
        let reconciler_due_removals = registered(r, "reconciler_due_removals", "Leg removals due at the reconciler's last pass", Gauge::default());
        let reconciler_due_trunks = registered(r, "reconciler_due_trunks", "Trunks due for repair at the reconciler's last pass", Gauge::default());
        let reconciler_failures = registered(r, "reconciler_failures", "Reconciler passes and trunk repairs that failed, by kind", Family::default());
        let carrier_probes = registered(r, "carrier_probes", "SIP OPTIONS probes of carriers, by outcome", Family::default());
        let carrier_trunks = registered(r, "carrier_trunks", "Stored trunks by their carrier's state, at the last prober pass", Family::default());
        let pool_open = registered(r, "db_pool_connections", "Connections open in the database pool", Gauge::default());
        let pool_in_use = registered(r, "db_pool_connections_in_use", "Pooled connections in use", Gauge::default());
        let pool_max = registered(r, "db_pool_max_connections", "The database pool's size limit", Gauge::default());
        let pool_checkouts = registered(r, "db_pool_checkouts", "Connections handed out by the pool", Counter::default());
        let pool_wait_seconds = registered(r, "db_pool_wait_seconds", "Seconds spent waiting for a pooled connection", Counter::default());
        let change_feed_live = registered(r, "change_feed_live", "1 while other replicas' writes reach the caches", Gauge::default());
        let rate_limits_shared = registered(r, "rate_limits_shared", "1 while the rate limits are shared through Redis", Gauge::default());
        let cache_series = CacheKind::ALL.map(|kind| {
            [false, true].map(|hit| cache.get_or_create(&CacheLabels::of(kind, hit)).clone())
        });
        Self {
            registry,
            requests,
            durations,
            db_errors,
            rate_limited,
            auth_failures,
            cache,
            cache_series,
            provisioning,
            reconciler_due_removals,
            reconciler_due_trunks,
            reconciler_failures,
            carrier_probes,
            carrier_trunks,
            pool_open,
            pool_in_use,
            pool_max,
            pool_checkouts,
            pool_wait_seconds,
            change_feed_live,
            rate_limits_shared,
            seen_checkouts: AtomicU64::new(0),
            seen_wait_micros: AtomicU64::new(0),
        }
    }

    /// Counts a cache lookup.
    pub fn cache_lookup(&self, cache: CacheKind, hit: bool) {
        self.cache_series[cache as usize][usize::from(hit)].inc();
    }

    /// Counts one of `kind`.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &str) {
        family
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Takes in the pool's state as the store reports it.
    pub fn observe_pool(&self, stats: store::PoolStats) {
        self.pool_open.set(i64::from(stats.open));
        self.pool_in_use
            .set(i64::from(stats.open.saturating_sub(stats.idle)));
        self.pool_max.set(i64::from(stats.max));
        let before = self.seen_checkouts.swap(stats.checkouts, Ordering::Relaxed);
        self.pool_checkouts
            .inc_by(stats.checkouts.saturating_sub(before));
        let micros = (stats.wait_seconds * 1e6) as u64;
        let before = self.seen_wait_micros.swap(micros, Ordering::Relaxed);
        self.pool_wait_seconds
            .inc_by(micros.saturating_sub(before) as f64 / 1e6);
    }

    /// The text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            log::error!("cannot encode the metrics");
        }
        text
    }
}

/// The use cases' reports, counted in the metrics it holds.
#[derive(Clone)]
pub struct MetricsObserver(pub Arc<Metrics>);

impl service::Observe for MetricsObserver {
    fn infrastructure_call(&self, infrastructure: &str, operation: &str, outcome: &str) {
        self.0
            .provisioning
            .get_or_create(&ProvisioningLabels {
                infrastructure: infrastructure.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn storage_failed(&self, kind: &'static str) {
        Metrics::count(&self.0.db_errors, kind);
    }

    fn reconciler_failed(&self, error: &'static str) {
        Metrics::count(&self.0.reconciler_failures, error);
    }

    fn due_removals(&self, count: usize) {
        self.0
            .reconciler_due_removals
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn due_trunks(&self, count: usize) {
        self.0
            .reconciler_due_trunks
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn carrier_probed(&self, outcome: &'static str) {
        Metrics::count(&self.0.carrier_probes, outcome);
    }

    fn carrier_trunks(&self, counts: domain::TrunksByCarrierState) {
        for (state, count) in [
            ("reachable", counts.reachable),
            ("unreachable", counts.unreachable),
            ("unknown", counts.unknown),
        ] {
            self.0
                .carrier_trunks
                .get_or_create(&KindLabel {
                    kind: state.to_owned(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
