//! Start-up: settings checked all at once, the store opened and migrated (with the keys of
//! [`crate::keys`]), the HTTP server run until SIGTERM/SIGINT (in-flight requests drain).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use store::{PoolOptions, ResealScope, SqlStore};
use validator::Validate;

use crate::infrastructure::InfrastructureArgs;
use api::client_address::TrustedProxies;
use api::rate_limit::RateLimits;
use api::shared_limits::SharedLimiter;
use api::state::{AccountLimits, AppState};
use service::reconciler::{Reconciler, Schedule};
use service::Provisioner;

pub use crate::settings::{SecretUrl, StartError};

/// The service's settings, checked with `validator` so that every bad one is reported at once.
/// (Trunk rules are not here: they live in the domain's parsers.)
#[derive(Debug, Clone, Validate)]
pub struct ServeSettings {
    /// Where to listen.
    pub bind: String,
    /// Most database connections.
    #[validate(range(
        min = 1,
        max = 512,
        message = "the pool size must be between 1 and 512"
    ))]
    pub pool_size: u32,
    /// HTTP worker threads.
    #[validate(range(
        min = 1,
        max = 256,
        message = "the worker count must be between 1 and 256"
    ))]
    pub workers: usize,
    /// Seconds to wait for a database connection before answering 503.
    #[validate(range(
        min = 1,
        max = 120,
        message = "the database timeout must be between 1 and 120 seconds"
    ))]
    pub db_timeout_secs: u64,
    /// Milliseconds a rendered read is served from memory (0: off).
    #[validate(range(max = 60_000, message = "the read cache time must be at most 60000 ms"))]
    pub read_cache_ms: u64,
    /// Most bytes the read cache holds (0: off).
    #[validate(range(
        max = 1_073_741_824,
        message = "the read cache budget must be at most 1 GiB"
    ))]
    pub read_cache_bytes: usize,
    /// Most trunks and live API keys per account.
    pub limits: AccountLimits,
    /// Requests a minute per API key (0: off).
    pub rate_limit_per_minute: u32,
    /// Failed authentications a minute per client address (0: off).
    pub auth_failures_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Redis for rate limits shared by every replica; `None`: per process.
    pub redis_url: Option<SecretUrl>,
    /// What this deployment's Redis keys start with.
    pub redis_key_prefix: String,
    /// Milliseconds a request waits for Redis's answer.
    #[validate(range(
        min = 1,
        max = 5_000,
        message = "the Redis timeout must be between 1 and 5000 ms"
    ))]
    pub redis_timeout_ms: u64,
    /// Seconds between two probes of one carrier address (0: off).
    #[validate(custom(function = "probe_period"))]
    pub carrier_probe_every_secs: u64,
    /// Carrier probes in flight at most in this process.
    #[validate(range(
        min = 1,
        max = 1_000,
        message = "the carrier probes in flight must be between 1 and 1000"
    ))]
    pub carrier_probes_in_flight: usize,
    /// Where `/metrics` is served.
    pub metrics_bind: MetricsBind,
    /// Where to write the bound addresses ([`write_port_file`]), if anywhere.
    pub port_file: Option<std::path::PathBuf>,
    /// Most client connections at once, over all workers.
    #[validate(range(
        min = 1,
        max = 1_000_000,
        message = "the connection limit must be between 1 and 1000000"
    ))]
    pub max_connections: usize,
}

/// 0 (off) or 10 s to a day: a shorter period than 10 s would probe carriers faster than
/// their answers settle, and is no one's intent.
fn probe_period(seconds: u64) -> Result<(), validator::ValidationError> {
    if seconds == 0 || (10..=86_400).contains(&seconds) {
        return Ok(());
    }
    let mut error = validator::ValidationError::new("probe_period");
    error.message =
        Some("the carrier probe period must be 0 (off) or between 10 and 86400 seconds".into());
    Err(error)
}

impl ServeSettings {
    /// `Ok` when every setting is in range, else one error listing all that are not.
    pub fn check(&self) -> Result<(), StartError> {
        self.validate().map_err(|errors| {
            let mut messages: Vec<String> = errors
                .field_errors()
                .into_values()
                .flatten()
                .map(|error| {
                    error
                        .message
                        .as_deref()
                        .unwrap_or("invalid value")
                        .to_owned()
                })
                .collect();
            messages.sort();
            StartError::Settings(messages.join("; "))
        })?;
        TrustedProxies::parse(&self.trusted_proxies)
            .map(drop)
            .map_err(|error| StartError::Settings(format!("trusted proxies: {error}")))?;
        check_limits(&self.limits)
    }

    /// The connection limit of each worker (actix counts per worker): the total shared out,
    /// at least one each.
    pub fn max_connections_per_worker(&self) -> usize {
        self.max_connections.div_ceil(self.workers.max(1)).max(1)
    }

    /// The pool settings.
    pub fn pool(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.pool_size,
            connection_timeout: Duration::from_secs(self.db_timeout_secs),
            keep_one_ready: true,
        }
    }
}

/// Most of either per-account limit.
const MAX_ACCOUNT_LIMIT: u32 = 1_000_000;

/// `Ok` when both account limits are between 1 and [`MAX_ACCOUNT_LIMIT`].
pub fn check_limits(limits: &AccountLimits) -> Result<(), StartError> {
    let mut bad = Vec::new();
    if !(1..=MAX_ACCOUNT_LIMIT).contains(&limits.max_trunks) {
        bad.push("the trunk limit per user must be between 1 and 1000000");
    }
    if !(1..=MAX_ACCOUNT_LIMIT).contains(&limits.max_api_keys) {
        bad.push("the API key limit per user must be between 1 and 1000000");
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(StartError::Settings(bad.join("; ")))
    }
}

/// Re-seals the passwords still bound to their owner alone (rows written before trunk
/// binding), once: the data half of migration 000003, which SQL cannot do without the key.
fn bind_passwords_to_trunks(store: &SqlStore) -> Result<(), StartError> {
    let report = store
        .reseal(ResealScope::OwnerBound, |_| {})
        .map_err(|error| StartError::Key(format!("cannot re-seal stored passwords: {error}")))?;
    if report.resealed > 0 {
        log::info!(
            "bound {} stored password(s) to their trunk",
            report.resealed
        );
    }
    for (id, why) in &report.unreadable {
        log::error!("the password of trunk {id} does not open: {why}");
    }
    Ok(())
}

/// File descriptors kept for the database, the log and the listener, beyond connections.
const RESERVED_FILES: u64 = 64;

/// Raises the open-file soft limit to the hard limit (the usual soft default, 1024, is fewer
/// connections than a busy server holds), and warns when even that cannot hold
/// `--max-connections` plus the pool.
fn raise_open_file_limit(settings: &ServeSettings) {
    let needed = settings.max_connections as u64 + u64::from(settings.pool_size) + RESERVED_FILES;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => log::warn!(
            "the open-file limit is {limit}, fewer than the {needed} that --max-connections {} \
             and --pool-size {} may need: connections past it are refused by the OS",
            settings.max_connections,
            settings.pool_size
        ),
        Ok(limit) => log::debug!("open-file limit: {limit}"),
        Err(error) => log::warn!("cannot raise the open-file limit: {error}"),
    }
}

/// The rate limits `settings` ask for, shared through Redis when it is configured.
fn rate_limits(settings: &ServeSettings) -> Result<RateLimits, StartError> {
    let limits = RateLimits::new(
        settings.rate_limit_per_minute,
        settings.auth_failures_per_minute,
    );
    match &settings.redis_url {
        None => Ok(limits),
        Some(url) => {
            let redis = SharedLimiter::new(&url.0, &settings.redis_key_prefix)
                .map_err(StartError::Settings)?
                .with_answer_timeout(Duration::from_millis(settings.redis_timeout_ms));
            log::info!("rate limits are shared by every replica through redis");
            Ok(limits.shared_through(redis))
        }
    }
}

/// Where `/metrics` is served when no address is given.
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9090";

/// Where `/metrics` is served, and how firmly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsBind {
    /// Nowhere (`off`).
    Off,
    /// [`DEFAULT_METRICS_BIND`], nobody having chosen it: when another process holds it (a
    /// second service on the host, Prometheus itself), the service runs without metrics and
    /// says so once, rather than dying over a default.
    Default,
    /// An address the operator chose: when it cannot be had, the service refuses to start.
    Chosen(String),
}

impl MetricsBind {
    /// `--metrics-bind` / `METRICS_BIND` as given: absent is the default, `off` (or empty)
    /// turns the listener off, anything else is a chosen address.
    pub fn from_setting(setting: Option<&str>) -> Self {
        match setting.map(str::trim) {
            None => Self::Default,
            Some("off" | "") => Self::Off,
            Some(address) => Self::Chosen(address.to_owned()),
        }
    }
}

/// Serves the API on `store` until SIGTERM or SIGINT; in-flight requests get up to 10 s.
pub async fn serve(
    store: SqlStore,
    settings: &ServeSettings,
    infrastructure: &InfrastructureArgs,
) -> Result<(), StartError> {
    Application::build(store, settings, infrastructure)
        .await?
        .run_until_stopped()
        .await
}

/// The service, built and listening but not yet serving (zero2prod's `Application`): the
/// API and the metrics are bound (so a caller that asked for port 0 learns the ports), and
/// the reconciler and the housekeeping run as peer tasks beside the API.
pub struct Application {
    server: actix_web::dev::Server,
    api_address: SocketAddr,
    metrics: Option<(actix_web::dev::ServerHandle, SocketAddr)>,
    reconciler: Option<Arc<Reconciler>>,
    /// Account cells reserved from Redis, handed back on the way out.
    shared_quota: Option<Arc<api::shared_quota::SharedQuota>>,
}

impl Application {
    /// Opens everything `settings` ask for on `store`, binds the listeners and writes the
    /// port file, if one is asked for.
    pub async fn build(
        store: SqlStore,
        settings: &ServeSettings,
        infrastructure: &InfrastructureArgs,
    ) -> Result<Self, StartError> {
        bind_passwords_to_trunks(&store)?;
        let probe = store.clone();
        let store = Arc::new(store);
        let metrics = Arc::new(api::metrics::Metrics::new());
        let provisioner = infrastructure.provisioner(store.clone(), metrics.clone())?;
        let state = AppState::new(store.clone(), Arc::new(move || probe.ping()))
            .with_metrics(metrics)
            .with_read_cache(
                Duration::from_millis(settings.read_cache_ms),
                settings.read_cache_bytes,
            )
            .with_limits(settings.limits)
            .with_rate_limits(rate_limits(settings)?)
            .with_trusted_proxies(
                TrustedProxies::parse(&settings.trusted_proxies).map_err(StartError::Settings)?,
            );
        let state = follow_other_replicas(state, &store).await;
        let (state, reconciler) = start_reconciler(state, provisioner, store.clone());
        let state = start_carrier_prober(settings, state, store.clone());
        raise_open_file_limit(settings);
        spawn_housekeeping(&state);
        let metrics = start_metrics(settings, &state, store)?;
        let shared_quota = state.rate_limits.shared_quota();
        let server = HttpServer::new(move || api::app(state.clone()))
            .workers(settings.workers)
            .max_connections(settings.max_connections_per_worker())
            .shutdown_timeout(10)
            .bind(&settings.bind)
            .map_err(|source| StartError::Io {
                context: format!("cannot listen on {}", settings.bind),
                source,
            })?;
        let addresses = server.addrs();
        for address in &addresses {
            log::info!("listening on http://{address}");
        }
        let Some(&api_address) = addresses.first() else {
            return Err(StartError::Settings(format!(
                "the address {} names no address",
                settings.bind
            )));
        };
        if let Some(path) = &settings.port_file {
            write_port_file(path, api_address, metrics.as_ref().map(|(_, at)| *at))?;
        }
        Ok(Self {
            server: server.run(),
            api_address,
            metrics,
            reconciler,
            shared_quota,
        })
    }

    /// Where the API listens.
    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        self.api_address.port()
    }

    /// Where the metrics listen, when they do.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, address)| *address)
    }

    /// A handle that stops the API (as SIGTERM does).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM, SIGINT or [`Self::handle`]'s stop; then stops the metrics, gives
    /// the reconciler lease up and hands the unspent account cells back to Redis.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let outcome = self.server.await.map_err(|source| StartError::Io {
            context: "the server stopped".into(),
            source,
        });
        if let Some((metrics, _)) = self.metrics {
            metrics.stop(true).await;
        }
        if let Some(reconciler) = self.reconciler {
            reconciler.give_up_lease().await;
        }
        if let Some(quota) = self.shared_quota {
            quota.hand_back_all().await;
        }
        outcome
    }
}

/// Keeps `state`'s caches coherent with other replicas' writes (PostgreSQL's change feed;
/// SQLite has one writer and no feed). A replica starts coherent: it serves once the feed
/// listens, or after 3 s in any case (then degraded, on the TTLs, until the feed connects).
async fn follow_other_replicas(state: AppState, store: &SqlStore) -> AppState {
    let (read_cache, auth_cache) = (state.read_cache.clone(), state.auth_cache.clone());
    let feed = store.follow_changes(move |change| match change {
        store::Change::Trunks(owner) => read_cache.invalidate(owner),
        store::Change::KeyRevoked(key) => auth_cache.revoke(key),
        store::Change::Everything => {
            read_cache.clear();
            auth_cache.clear();
        }
    });
    let Some(feed) = feed else { return state };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !feed.is_live() && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    if !feed.is_live() {
        log::warn!("the change feed is not listening yet: caches rely on their TTL until it is");
    }
    state.with_change_feed(feed)
}

/// With a voice infrastructure: trunk writes provision legs, and the reconciler runs in this
/// process while it holds the database's reconciler lease (given back on the way out).
fn start_reconciler(
    state: AppState,
    provisioner: Option<Arc<Provisioner>>,
    store: Arc<SqlStore>,
) -> (AppState, Option<Arc<Reconciler>>) {
    let Some(provisioner) = provisioner else {
        log::info!(
            "no voice infrastructure configured (LiveKit: LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET; Kamailio: KAMAILIO_DB_URL): registry only, trunks get no legs"
        );
        return (state, None);
    };
    log::info!(
        "trunks get their legs on {}; the reconciler runs in this process while it holds the database's reconciler lease",
        provisioner.name()
    );
    let state = state.with_provisioner(provisioner.clone());
    let read_cache = state.read_cache.clone();
    let reconciler = Arc::new(Reconciler::new(
        provisioner,
        store,
        Arc::new(move |owner| read_cache.invalidate(owner)),
    ));
    actix_web::rt::spawn(reconciler.clone().run(Schedule::default()));
    (state, Some(reconciler))
}

/// The carrier prober (docs/diagnostics.md): it runs the probes clients ask for
/// (`POST …/status/probe`) and, unless the period is 0, probes every carrier each period.
fn start_carrier_prober(
    settings: &ServeSettings,
    state: AppState,
    store: Arc<SqlStore>,
) -> AppState {
    let every = match settings.carrier_probe_every_secs {
        0 => service::ProbeSchedule::default().every,
        seconds => Duration::from_secs(seconds),
    };
    let schedule = service::ProbeSchedule {
        every,
        jitter: every / 10,
        in_flight: settings.carrier_probes_in_flight,
        ..service::ProbeSchedule::default()
    };
    let probe = carrier_probe::OptionsProbe::new(carrier_probe::ProbeSettings::default());
    let observer = Arc::new(api::metrics::MetricsObserver(state.metrics.clone()));
    let prober = Arc::new(service::CarrierProber::new(
        store,
        Arc::new(probe),
        observer,
        schedule,
    ));
    if settings.carrier_probe_every_secs == 0 {
        log::info!("periodic carrier probes are off (CARRIER_PROBE_EVERY_SECS=0); probes clients ask for still run");
    } else {
        actix_web::rt::spawn(prober.clone().run());
    }
    state.with_prober(prober)
}

/// Once a minute: idle rate-limit buckets and expired cache entries go. Every quarter second:
/// account cells reserved from Redis and not spent within their lease go back.
fn spawn_housekeeping(state: &AppState) {
    if let Some(quota) = state.rate_limits.shared_quota() {
        actix_web::rt::spawn(async move {
            let mut often = actix_web::rt::time::interval(Duration::from_millis(250));
            loop {
                often.tick().await;
                quota.hand_back_expired().await;
            }
        });
    }
    let (limits, read_cache) = (state.rate_limits.clone(), state.read_cache.clone());
    actix_web::rt::spawn(async move {
        let mut every_minute = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            limits.housekeeping();
            read_cache.evict_expired();
        }
    });
}

/// The metrics listener `settings` ask for, with its address: none when off, or when the
/// default address is taken by another process (one warning); an address given and taken
/// stops the service.
fn start_metrics(
    settings: &ServeSettings,
    state: &AppState,
    pool: Arc<SqlStore>,
) -> Result<Option<(actix_web::dev::ServerHandle, SocketAddr)>, StartError> {
    match &settings.metrics_bind {
        MetricsBind::Off => Ok(None),
        MetricsBind::Chosen(bind) => Ok(Some(metrics_server(bind, state.clone(), pool)?)),
        MetricsBind::Default => match metrics_server(DEFAULT_METRICS_BIND, state.clone(), pool) {
            Ok(handle) => Ok(Some(handle)),
            Err(StartError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                log::warn!(
                    "the default metrics address {DEFAULT_METRICS_BIND} is taken by another process: serving without metrics (choose one with --metrics-bind / METRICS_BIND, or say off)"
                );
                Ok(None)
            }
            Err(other) => Err(other),
        },
    }
}

/// `GET /metrics` on `bind`, one worker, stopped by the caller (it does not watch signals).
fn metrics_server(
    bind: &str,
    state: AppState,
    pool: Arc<SqlStore>,
) -> Result<(actix_web::dev::ServerHandle, SocketAddr), StartError> {
    let server = HttpServer::new(move || {
        let (state, pool) = (state.clone(), pool.clone());
        actix_web::App::new().route(
            "/metrics",
            actix_web::web::get().to(move || {
                let (state, pool) = (state.clone(), pool.clone());
                async move {
                    let metrics = &state.metrics;
                    metrics.observe_pool(pool.pool_stats());
                    metrics
                        .change_feed_live
                        .set(i64::from(state.cache_coherence() == "live"));
                    metrics
                        .rate_limits_shared
                        .set(i64::from(state.rate_limits.scope() == "redis"));
                    actix_web::HttpResponse::Ok()
                        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                        .body(metrics.render())
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(bind)
    .map_err(|source| StartError::Io {
        context: format!("cannot serve the metrics on {bind}"),
        source,
    })?;
    let addresses = server.addrs();
    for address in &addresses {
        log::info!("metrics on http://{address}/metrics");
    }
    let Some(&address) = addresses.first() else {
        return Err(StartError::Settings(format!(
            "the metrics address {bind} names no address"
        )));
    };
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((handle, address))
}

/// Writes `api=` and `metrics=` lines to `path`, through a file beside it renamed into
/// place, so that a reader never sees half of it.
fn write_port_file(
    path: &std::path::Path,
    api: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<(), StartError> {
    let mut text = format!("api={api}\n");
    if let Some(address) = metrics {
        text.push_str(&format!("metrics={address}\n"));
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|source| StartError::Io {
            context: format!("cannot write the port file {}", path.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServeSettings {
        ServeSettings {
            bind: "127.0.0.1:0".into(),
            pool_size: 8,
            workers: 2,
            db_timeout_secs: 3,
            read_cache_ms: 1000,
            read_cache_bytes: 8 << 20,
            limits: AccountLimits::default(),
            rate_limit_per_minute: 600,
            auth_failures_per_minute: 30,
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            redis_url: None,
            redis_key_prefix: "sip-trunks:".into(),
            redis_timeout_ms: 25,
            carrier_probe_every_secs: 0,
            carrier_probes_in_flight: 50,
            metrics_bind: MetricsBind::Off,
            port_file: None,
        }
    }

    #[actix_web::test]
    async fn an_application_built_on_port_zero_reports_its_ports_and_serves_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = store::DatabaseUrl::SqliteFile(dir.path().join("app.db"));
        let keys = store::Keyring::new(store::EncryptionKey::generate().0);
        let store = SqlStore::open(&url, keys, PoolOptions::one_shot()).unwrap();
        store.migrate().unwrap();
        let port_file = dir.path().join("ports");
        let settings = ServeSettings {
            metrics_bind: MetricsBind::Chosen("127.0.0.1:0".into()),
            port_file: Some(port_file.clone()),
            ..settings()
        };
        let app = Application::build(store, &settings, &InfrastructureArgs::default())
            .await
            .unwrap();
        let (api, metrics) = (app.api_address(), app.metrics_address().unwrap());
        assert_ne!(app.port(), 0);
        assert_ne!(metrics.port(), 0);
        assert_eq!(
            std::fs::read_to_string(&port_file).unwrap(),
            format!("api={api}\nmetrics={metrics}\n")
        );
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        let answers = actix_web::rt::task::spawn_blocking(move || {
            let get = |url: String| {
                ureq::get(&url)
                    .call()
                    .map(|r| r.status())
                    .map_err(|e| e.to_string())
            };
            (
                get(format!("http://{api}/healthz")),
                get(format!("http://{metrics}/metrics")),
            )
        })
        .await
        .unwrap();
        handle.stop(true).await;
        assert!(matches!(answers, (Ok(200), Ok(200))), "{answers:?}");
        running.await.unwrap().unwrap();
    }

    #[test]
    fn a_metrics_address_left_out_is_the_default_and_one_given_is_a_choice() {
        assert_eq!(MetricsBind::from_setting(None), MetricsBind::Default);
        assert_eq!(MetricsBind::from_setting(Some("off")), MetricsBind::Off);
        assert_eq!(MetricsBind::from_setting(Some("")), MetricsBind::Off);
        assert_eq!(
            MetricsBind::from_setting(Some(DEFAULT_METRICS_BIND)),
            MetricsBind::Chosen(DEFAULT_METRICS_BIND.into())
        );
        assert_eq!(
            MetricsBind::from_setting(Some(" 127.0.0.1:0 ")),
            MetricsBind::Chosen("127.0.0.1:0".into())
        );
    }

    #[test]
    fn every_out_of_range_setting_is_reported_at_once() {
        let bad = ServeSettings {
            pool_size: 0,
            workers: 0,
            db_timeout_secs: 0,
            ..settings()
        };
        let message = bad.check().unwrap_err().to_string();
        assert!(
            message.contains("pool size")
                && message.contains("worker")
                && message.contains("timeout"),
            "{message}"
        );
        assert!(settings().check().is_ok());
    }

    #[test]
    fn a_carrier_probe_period_is_off_or_between_ten_seconds_and_a_day() {
        for (seconds, fine) in [
            (0, true),
            (9, false),
            (10, true),
            (86_400, true),
            (86_401, false),
        ] {
            let probing = ServeSettings {
                carrier_probe_every_secs: seconds,
                ..settings()
            };
            assert_eq!(probing.check().is_ok(), fine, "{seconds}");
        }
        let bad = ServeSettings {
            carrier_probe_every_secs: 1,
            carrier_probes_in_flight: 0,
            ..settings()
        };
        let message = bad.check().unwrap_err().to_string();
        assert!(
            message.contains("carrier probe period") && message.contains("in flight"),
            "{message}"
        );
    }

    #[test]
    fn account_limits_of_zero_are_refused() {
        let bad = ServeSettings {
            limits: AccountLimits {
                max_trunks: 0,
                max_api_keys: 0,
                ..AccountLimits::default()
            },
            ..settings()
        };
        let message = bad.check().unwrap_err().to_string();
        assert!(
            message.contains("trunk limit") && message.contains("API key limit"),
            "{message}"
        );
    }

    #[test]
    fn a_trusted_proxy_that_is_not_an_address_is_refused() {
        let bad = ServeSettings {
            trusted_proxies: vec!["10.0.0.0/8".into(), "lb.internal".into()],
            ..settings()
        };
        let message = bad.check().unwrap_err().to_string();
        assert!(message.contains("lb.internal"), "{message}");
    }

    #[test]
    fn the_connection_limit_is_shared_out_among_workers() {
        let split = |max_connections, workers| {
            ServeSettings {
                max_connections,
                workers,
                ..settings()
            }
            .max_connections_per_worker()
        };
        assert_eq!(split(4096, 2), 2048);
        assert_eq!(split(5, 2), 3);
        assert_eq!(split(1, 4), 1);
    }
}
