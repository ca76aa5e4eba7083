//! The `sip-trunks` command line: `serve` (the default), `migrate`, and administration of
//! users and API keys. Every option can also come from the environment.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use domain::{AccountRepository, ApiKeyId, ApiKeyName, ApiToken, Email, TokenSecret, UserName};
use store::{DatabaseUrl, EncryptionKey, Keyring, PoolOptions, ResealScope, SqlStore};

use crate::infrastructure::InfrastructureArgs;
use crate::keys::{self, KeySource};
use crate::settings::{SecretUrl, StartError};
use crate::startup::{self, MetricsBind, ServeSettings};
use api::logging::LogFormat;
use api::read_cache;
use api::state::AccountLimits;
use service::reconciler::{Action, Reconciler};

/// The SIP trunk registry.
#[derive(Debug, Parser)]
#[command(
    name = "sip-trunks",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where the data lives.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Server options, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The voice infrastructure (LiveKit or Kamailio), for `serve` and `reconcile`.
    #[command(flatten)]
    pub infrastructure: InfrastructureArgs,
    /// The log's format: `text`, or `json` (one object per line). Its level is `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: LogFormat,
}

/// The database, its secrets and the per-account limits (every command needs them).
///
/// Keys are never flags, which anyone on the host can read in the process list: the current
/// key comes from `SIP_TRUNKS_ENCRYPTION_KEY` or a file, retired keys from
/// `SIP_TRUNKS_PREVIOUS_ENCRYPTION_KEYS` or a file.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// sqlite://<path>, sqlite:///<absolute path>, sqlite::memory: or postgres://...
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://sip-trunks.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// A file (mode 0600) holding the current encryption key, base64 of 32 bytes. Instead:
    /// SIP_TRUNKS_ENCRYPTION_KEY. On SQLite, neither: a key file beside the database.
    #[arg(long, env = "SIP_TRUNKS_ENCRYPTION_KEY_FILE", global = true)]
    pub encryption_key_file: Option<PathBuf>,
    /// A file (mode 0600) of retired keys, one a line, that still open older rows. Besides:
    /// SIP_TRUNKS_PREVIOUS_ENCRYPTION_KEYS (comma-separated).
    #[arg(long, env = "SIP_TRUNKS_PREVIOUS_ENCRYPTION_KEYS_FILE", global = true)]
    pub previous_encryption_keys_file: Option<PathBuf>,
    /// Most trunks an account may hold.
    #[arg(
        long,
        env = "MAX_TRUNKS_PER_USER",
        default_value_t = 1000,
        global = true
    )]
    pub max_trunks_per_user: u32,
    /// Most live API keys an account may hold.
    #[arg(
        long,
        env = "MAX_API_KEYS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_api_keys_per_user: u32,
    /// Most "already connected to another SIP trunk" answers an account gets in any hour;
    /// past it, creates and number changes answer 429 until the hour's window has room.
    #[arg(
        long,
        env = "NUMBER_CONFLICTS_PER_HOUR",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub number_conflicts_per_hour: u32,
}

impl DatabaseArgs {
    fn keys(&self) -> KeySource {
        KeySource::from_env(
            self.encryption_key_file.clone(),
            self.previous_encryption_keys_file.clone(),
        )
    }

    fn limits(&self) -> AccountLimits {
        AccountLimits {
            max_trunks: self.max_trunks_per_user,
            max_api_keys: self.max_api_keys_per_user,
            number_conflicts: domain::NumberConflictBudget::per_hour(
                self.number_conflicts_per_hour,
            ),
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Most database connections.
    #[arg(long, env = "POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,
    /// Seconds to wait for a database connection before answering 503.
    #[arg(long, env = "DB_TIMEOUT_SECS", default_value_t = 3)]
    pub db_timeout_secs: u64,
    /// Milliseconds a rendered trunk read is served from memory; writes through this process
    /// are seen at once, writes through other instances within this time. 0 turns it off.
    #[arg(long, env = "READ_CACHE_MS", default_value_t = 1000)]
    pub read_cache_ms: u64,
    /// Most bytes of rendered reads kept in memory; an answer over an eighth of it is not
    /// kept. 0 turns the cache off.
    #[arg(long, env = "READ_CACHE_BYTES", default_value_t = read_cache::DEFAULT_BUDGET_BYTES)]
    pub read_cache_bytes: usize,
    /// Requests a minute per account (all its API keys together), refilled continuously,
    /// with a burst of a minute's worth. 0 turns it off.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Failed authentications a minute per client address before 429 (a valid token is
    /// never refused). 0 turns it off.
    #[arg(long, env = "AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` names the
    /// client. None by default: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Most client connections open at once, over all workers; more wait in the backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Redis (`redis://host:6379/0`) for rate limits shared by every replica; without it the
    /// limits are per process. Redis unreachable: per process until it answers again.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretUrl>,
    /// Where `GET /metrics` (Prometheus) is served: an address of its own, never the API's;
    /// `off` turns it off. Left out: 127.0.0.1:9090, or no metrics (one warning) when another
    /// process holds it; an address given here that cannot be had stops the service.
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// A file the service writes once it listens: `api=HOST:PORT` and, when served,
    /// `metrics=HOST:PORT`, a line each (for `--bind 127.0.0.1:0`: supervisors and tests
    /// learn the ports without reading the log). Written whole or not at all.
    #[arg(long, env = "PORT_FILE")]
    pub port_file: Option<PathBuf>,
    /// What every Redis key of this deployment starts with (several deployments can share
    /// one Redis; replicas of one deployment must agree).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "sip-trunks:")]
    pub redis_key_prefix: String,
    /// Milliseconds a request waits for Redis's answer before it is limited by this process
    /// alone (and Redis is left alone for a second).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 25)]
    pub redis_timeout_ms: u64,
    /// Seconds between two SIP OPTIONS probes of one carrier address (the trunks'
    /// `sip_address`es, each probed by one replica per period; docs/diagnostics.md); 0 turns
    /// probing off.
    #[arg(long, env = "CARRIER_PROBE_EVERY_SECS", default_value_t = 60)]
    pub carrier_probe_every_secs: u64,
    /// Carrier probes in flight at most in this process.
    #[arg(long, env = "CARRIER_PROBES_IN_FLIGHT", default_value_t = 50)]
    pub carrier_probes_in_flight: usize,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Re-seal every stored SIP password with the current key (after a rotation); then the
    /// previous keys can be dropped. Safe to interrupt and to run again.
    Reencrypt,
    /// Make the voice infrastructure (LiveKit or Kamailio, whichever is configured) hold
    /// exactly the legs the stored trunks reference: remove queued and orphaned legs, roll
    /// back creates that never finished, re-create missing or divergent legs. Prints each
    /// action; exits 1 if one failed. (`--help` names the infrastructure configured.)
    Reconcile {
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and a first API key; the token is printed alone on the last line.
    Create {
        /// The user's e-mail (unique).
        #[arg(long)]
        email: String,
        /// The user's name.
        #[arg(long)]
        name: String,
    },
}

/// `api-keys ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create an API key for a user; the token is printed alone on the last line.
    Create {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// A label for the key.
        #[arg(long)]
        name: String,
    },
    /// Revoke an API key by id.
    Revoke {
        /// The key's id (the part of the token before `|`).
        #[arg(long)]
        id: i64,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// An argument was refused.
    #[error("{0}")]
    Invalid(String),
    /// The store said no.
    #[error("{0}")]
    Store(#[from] domain::RepositoryError),
    /// `reencrypt` left rows it could not open.
    #[error("{0} stored password(s) could not be re-sealed: keep the previous keys until they are fixed")]
    Unreadable(usize),
}

impl Cli {
    /// Parses the process's command line, like [`Parser::parse`], except that the help of
    /// `reconcile` names the infrastructure these settings configure (LiveKit or Kamailio).
    pub fn parse_naming_the_infrastructure() -> Self {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let about = reconcile_about(configured_infrastructure(&args));
        let command = Self::command().mut_subcommand("reconcile", |reconcile| {
            reconcile.about(about.clone()).long_about(about)
        });
        let matches = command.get_matches_from(args);
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }

    /// Runs the command.
    pub async fn run(self) -> Result<(), CommandError> {
        let database = self.database;
        let infrastructure = self.infrastructure;
        match self.command {
            None => serve(&database, self.serve, &infrastructure).await,
            Some(Command::Serve(args)) => serve(&database, args, &infrastructure).await,
            Some(Command::Reconcile { dry_run }) => {
                reconcile(&database, &infrastructure, dry_run).await
            }
            Some(Command::Migrate) => {
                admin_store(&database)?;
                Ok(())
            }
            Some(Command::Users(UsersCommand::Create { email, name })) => {
                let store = admin_store(&database)?;
                let email =
                    Email::parse(&email).map_err(|e| CommandError::Invalid(e.to_string()))?;
                let name =
                    UserName::parse(&name).map_err(|e| CommandError::Invalid(e.to_string()))?;
                let user = store
                    .create_user(&email, &name)
                    .map_err(|error| match error {
                        domain::RepositoryError::Conflict => CommandError::Invalid(format!(
                            "a user with the email {} already exists",
                            email.as_str()
                        )),
                        other => other.into(),
                    })?;
                say(&format!(
                    "created user {} <{}>",
                    user.id,
                    user.email.as_str()
                ));
                issue_key(
                    &store,
                    &user.email,
                    "default",
                    database.max_api_keys_per_user,
                )
            }
            Some(Command::ApiKeys(ApiKeysCommand::Create { email, name })) => {
                let store = admin_store(&database)?;
                let email =
                    Email::parse(&email).map_err(|e| CommandError::Invalid(e.to_string()))?;
                issue_key(&store, &email, &name, database.max_api_keys_per_user)
            }
            Some(Command::Reencrypt) => reencrypt(&database),
            Some(Command::ApiKeys(ApiKeysCommand::Revoke { id })) => {
                let store = admin_store(&database)?;
                let id = ApiKeyId::new(id).ok_or_else(|| {
                    CommandError::Invalid("an API key id is a positive integer".into())
                })?;
                store.revoke_any_api_key(id).map_err(|error| match error {
                    domain::RepositoryError::NotFound => {
                        CommandError::Invalid(format!("no API key with id {id}"))
                    }
                    other => other.into(),
                })?;
                say(&format!("revoked API key {id}"));
                Ok(())
            }
        }
    }
}

/// The name of the infrastructure `args` configure (flags and environment), for help texts:
/// the arguments are parsed once without their help request. `None`: none, or unparsable.
fn configured_infrastructure(args: &[std::ffi::OsString]) -> Option<&'static str> {
    let without_help = args
        .iter()
        .filter(|arg| !matches!(arg.to_str(), Some("--help" | "-h" | "help")));
    let cli = Cli::try_parse_from(without_help).ok()?;
    cli.infrastructure.infrastructure().ok()?.display_name()
}

/// The help line of `reconcile`, naming `infrastructure` when one is configured.
fn reconcile_about(infrastructure: Option<&str>) -> String {
    let what = match infrastructure {
        Some(name) => format!("Make {name} (the voice infrastructure configured here)"),
        None => "Make the voice infrastructure (LiveKit or Kamailio; none is configured here: see --provisioner)".to_owned(),
    };
    format!(
        "{what} hold exactly the legs the stored trunks reference: remove queued and orphaned legs, roll back creates that never finished, re-create missing or divergent legs. Prints each action; exits 1 if one failed."
    )
}

#[allow(clippy::print_stdout)] // the command's output, read by people and scripts
fn say(line: &str) {
    println!("{line}");
}

async fn serve(
    database: &DatabaseArgs,
    args: ServeArgs,
    infrastructure: &InfrastructureArgs,
) -> Result<(), CommandError> {
    let settings = ServeSettings {
        bind: args.bind,
        pool_size: args.pool_size,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        db_timeout_secs: args.db_timeout_secs,
        read_cache_ms: args.read_cache_ms,
        read_cache_bytes: args.read_cache_bytes,
        limits: database.limits(),
        rate_limit_per_minute: args.rate_limit_per_minute,
        auth_failures_per_minute: args.auth_failures_per_minute,
        trusted_proxies: args.trusted_proxies,
        redis_url: args.redis_url.filter(|url| !url.0.is_empty()),
        redis_key_prefix: args.redis_key_prefix,
        redis_timeout_ms: args.redis_timeout_ms,
        carrier_probe_every_secs: args.carrier_probe_every_secs,
        carrier_probes_in_flight: args.carrier_probes_in_flight,
        metrics_bind: MetricsBind::from_setting(args.metrics_bind.as_deref()),
        port_file: args.port_file,
        max_connections: args.max_connections,
    };
    settings.check()?;
    let url = DatabaseUrl::parse(&database.database_url).map_err(StartError::from)?;
    log::info!("opening {url}");
    // Checked before the database is opened: a half configuration fails fast.
    infrastructure.infrastructure()?;
    let store = keys::open_store(&url, &database.keys(), settings.pool())?;
    startup::serve(store, &settings, infrastructure).await?;
    log::info!("stopped");
    Ok(())
}

/// The store for administration commands, migrated. These commands never read or write a
/// SIP password, so a throw-away key ring is enough to open the store (and no key file is
/// created).
fn admin_store(database: &DatabaseArgs) -> Result<SqlStore, CommandError> {
    let url = DatabaseUrl::parse(&database.database_url).map_err(StartError::from)?;
    startup::check_limits(&database.limits())?;
    let throwaway = Keyring::new(EncryptionKey::generate().0);
    Ok(keys::open_migrated(
        &url,
        throwaway,
        PoolOptions::one_shot(),
    )?)
}

/// `reconcile`: one full pass, then one more for the trunks the scan marked.
async fn reconcile(
    database: &DatabaseArgs,
    infrastructure: &InfrastructureArgs,
    dry_run: bool,
) -> Result<(), CommandError> {
    let Some(name) = infrastructure.infrastructure()?.display_name() else {
        return Err(CommandError::Invalid(
            "reconcile needs a voice infrastructure: LiveKit (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET) or Kamailio (KAMAILIO_DB_URL)"
                .into(),
        ));
    };
    let url = DatabaseUrl::parse(&database.database_url).map_err(StartError::from)?;
    let store = Arc::new(keys::open_store(
        &url,
        &database.keys(),
        PoolOptions::one_shot(),
    )?);
    let provisioner = infrastructure
        .provisioner(store.clone(), Arc::new(api::metrics::Metrics::new()))?
        .ok_or_else(|| CommandError::Invalid("no voice infrastructure is configured".into()))?;
    let reconciler = Reconciler::new(provisioner, store, Arc::new(|_| {}));
    let mut failed = 0;
    let mut acted = 0;
    let passes = if dry_run { 1 } else { 2 };
    for pass in 0..passes {
        let outcome = reconciler.pass(pass == 0, dry_run).await;
        if (!dry_run && pass == passes - 1) || outcome.is_err() {
            reconciler.give_up_lease().await;
        }
        let report = outcome.map_err(|error| CommandError::Invalid(error.to_string()))?;
        if report.skipped {
            return Err(CommandError::Invalid(
                "another process holds the reconciler lease (a running server reconciles already); try again later".into(),
            ));
        }
        for line in report.lines() {
            say(&line);
        }
        acted += report.actions.len();
        failed += report
            .actions
            .iter()
            .filter(|action| matches!(action, Action::RepairFailed { .. }))
            .count();
    }
    if acted == 0 {
        say(&format!(
            "{name} holds exactly the legs the stored trunks reference"
        ));
    }
    if failed > 0 {
        return Err(CommandError::Invalid(format!("{failed} repair(s) failed")));
    }
    Ok(())
}

/// `reencrypt`: every row not sealed with the current key and bound to its trunk, re-sealed.
fn reencrypt(database: &DatabaseArgs) -> Result<(), CommandError> {
    let url = DatabaseUrl::parse(&database.database_url).map_err(StartError::from)?;
    let store = keys::open_store(&url, &database.keys(), PoolOptions::one_shot())?;
    let report = store.reseal(ResealScope::NotCurrent, |so_far| {
        log::info!("re-sealed {} password(s) so far", so_far.resealed);
    })?;
    for (id, why) in &report.unreadable {
        log::error!("the password of trunk {id} does not open: {why}");
    }
    let current = store.current_password_rows()?;
    say(&format!(
        "re-sealed {} password(s) with key {}; {} changed meanwhile; {} unreadable; {current} now sealed with the current key",
        report.resealed,
        store.keys().current_id(),
        report.changed_meanwhile,
        report.unreadable.len(),
    ));
    if report.unreadable.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Unreadable(report.unreadable.len()))
    }
}

fn issue_key(
    store: &SqlStore,
    email: &Email,
    name: &str,
    max_keys: u32,
) -> Result<(), CommandError> {
    let store: Arc<dyn AccountRepository> = Arc::new(store.clone());
    let user = store
        .find_user_by_email(email)
        .map_err(|error| match error {
            domain::RepositoryError::NotFound => {
                CommandError::Invalid(format!("no user with the email {}", email.as_str()))
            }
            other => other.into(),
        })?;
    let name = ApiKeyName::parse(name).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let secret = TokenSecret::generate();
    let key = store
        .create_api_key(user.id, &name, &secret.hash(), max_keys)
        .map_err(|error| match error {
            domain::RepositoryError::LimitReached => CommandError::Invalid(format!(
                "{} has {max_keys} API keys already (MAX_API_KEYS_PER_USER): revoke one first",
                email.as_str()
            )),
            other => other.into(),
        })?;
    say(&format!(
        "created API key {} \"{}\" for {}",
        key.id,
        key.name.as_str(),
        email.as_str()
    ));
    say(&ApiToken::new(key.id, secret).expose_secret());
    Ok(())
}
