//! Which voice infrastructure the trunks' legs go to, from the command line and the
//! environment. `--provisioner livekit|kamailio|none` says it outright; left out, it is
//! inferred from the settings present: LiveKit's (`LIVEKIT_URL`, `LIVEKIT_API_KEY`, the
//! secret) -> `livekit`, `KAMAILIO_DB_URL` -> `kamailio`, neither -> `none` (registry only).
//! Both present without a choice, a half LiveKit configuration, or a choice whose settings
//! are missing: a refusal to start that names what is missing.
//!
//! The LiveKit secret is never a flag (a flag shows in the process list):
//! `LIVEKIT_API_SECRET`, or a file (mode 0600) named by `--livekit-api-secret-file` /
//! `LIVEKIT_API_SECRET_FILE`. The Kamailio database URL may carry a password, so its value
//! is never logged either.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use domain::{ProvisioningLedger, VoiceInfrastructure};
use kamailio_adapter::{EdgeSecret, Kamailio, KamailioSettings};
use livekit_adapter::{ApiSecret, LiveKit, LiveKitSettings};

use crate::settings::{SecretUrl, StartError};
use service::Provisioner;

/// LiveKit's own variable for the API secret.
pub const SECRET_ENV: &str = "LIVEKIT_API_SECRET";

/// The variable of the Kamailio edge's RPC secret.
pub const KAMAILIO_RPC_SECRET_ENV: &str = "KAMAILIO_RPC_SECRET";

/// The voice infrastructures the service can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProvisionerChoice {
    /// LiveKit's SIP service.
    Livekit,
    /// A Kamailio SIP edge running deploy/kamailio/kamailio.cfg.
    Kamailio,
    /// None: a registry only, trunks get no legs.
    None,
}

/// The infrastructure chosen, with its settings.
#[derive(Debug)]
pub enum Infrastructure {
    /// LiveKit.
    LiveKit(LiveKitSettings),
    /// Kamailio.
    Kamailio(KamailioSettings),
    /// None.
    None,
}

impl Infrastructure {
    /// The infrastructure's name as people write it (`LiveKit`, `Kamailio`); `None` for none.
    pub fn display_name(&self) -> Option<&'static str> {
        match self {
            Self::LiveKit(_) => Some("LiveKit"),
            Self::Kamailio(_) => Some("Kamailio"),
            Self::None => None,
        }
    }
}

/// Which voice infrastructure, and where it is.
#[derive(Debug, Clone, Default, Args)]
pub struct InfrastructureArgs {
    /// The voice infrastructure trunks get their legs on. Left out: inferred from the
    /// settings present (LiveKit's -> livekit, KAMAILIO_DB_URL -> kamailio, neither -> none).
    #[arg(long, env = "SIP_TRUNKS_PROVISIONER", value_enum, global = true)]
    pub provisioner: Option<ProvisionerChoice>,
    /// The LiveKit server or project (`https://…`, `wss://…`): every trunk gets an inbound
    /// and an outbound SIP trunk there. Left out: registry only, trunks get no legs.
    #[arg(long, env = "LIVEKIT_URL", global = true)]
    pub livekit_url: Option<String>,
    /// The LiveKit API key (it needs the SIP admin permission).
    #[arg(long, env = "LIVEKIT_API_KEY", global = true)]
    pub livekit_api_key: Option<String>,
    /// A file (mode 0600) holding the LiveKit API secret. Instead: LIVEKIT_API_SECRET.
    #[arg(long, env = "LIVEKIT_API_SECRET_FILE", global = true)]
    pub livekit_api_secret_file: Option<PathBuf>,
    /// This registry's name, written into the tag of every LiveKit leg it makes (1 to 32 of
    /// a-z 0-9 -): registries with different names can share one LiveKit project, each
    /// touching only its own legs. Left out: `default`, which also owns legs tagged before
    /// names existed.
    #[arg(long, env = "SIP_TRUNKS_DEPLOYMENT", global = true)]
    pub deployment: Option<String>,
    /// The database the Kamailio edge reads (postgres://… or sqlite://PATH): the service
    /// writes every trunk's rows there and creates the tables it needs.
    #[arg(long, env = "KAMAILIO_DB_URL", global = true, hide_env_values = true)]
    pub kamailio_db_url: Option<SecretUrl>,
    /// The edge's JSON-RPC endpoint (its xhttp listener on loopback).
    #[arg(
        long,
        env = "KAMAILIO_RPC_URL",
        global = true,
        default_value = "http://127.0.0.1:5071/RPC"
    )]
    pub kamailio_rpc_url: String,
    /// A file (mode 0600) holding the secret sent with every RPC call to the edge (whose
    /// configuration holds its SHA-256, RPC_SECRET_SHA256). Instead: KAMAILIO_RPC_SECRET.
    #[arg(long, env = "KAMAILIO_RPC_SECRET_FILE", global = true)]
    pub kamailio_rpc_secret_file: Option<PathBuf>,
    /// The group (name or number) a SQLite Kamailio database is shared with, mode 0660,
    /// instead of private to this service (0600): Kamailio's own (`kamailio` on Debian), so
    /// that Kamailio running as its own user can open it. Not for PostgreSQL.
    #[arg(long, env = "KAMAILIO_DB_GROUP", global = true)]
    pub kamailio_db_group: Option<String>,
}

impl InfrastructureArgs {
    /// The secret from the environment or its file, if any was given.
    fn secret(&self) -> Result<Option<ApiSecret>, StartError> {
        if let Some(path) = &self.livekit_api_secret_file {
            crate::keys::check_private(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| StartError::Io {
                context: format!("cannot read the LiveKit secret file {}", path.display()),
                source,
            })?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(StartError::Settings(format!(
                    "the LiveKit secret file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(ApiSecret::new(secret)));
        }
        Ok(std::env::var(SECRET_ENV)
            .ok()
            .filter(|secret| !secret.trim().is_empty())
            .map(|secret| ApiSecret::new(secret.trim())))
    }

    /// The Kamailio edge's RPC secret, from its file or the environment: required, since the
    /// edge (deploy/kamailio/kamailio.cfg) refuses every RPC call without it.
    fn kamailio_rpc_secret(&self) -> Result<EdgeSecret, StartError> {
        let secret = match &self.kamailio_rpc_secret_file {
            Some(path) => {
                crate::keys::check_private(path)?;
                std::fs::read_to_string(path).map_err(|source| StartError::Io {
                    context: format!(
                        "cannot read the Kamailio RPC secret file {}",
                        path.display()
                    ),
                    source,
                })?
            }
            None => std::env::var(KAMAILIO_RPC_SECRET_ENV).unwrap_or_default(),
        };
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(StartError::Settings(
                "Kamailio needs KAMAILIO_RPC_SECRET (or --kamailio-rpc-secret-file): the edge refuses RPC calls without it (its RPC_SECRET_SHA256 is the secret's SHA-256)".into(),
            ));
        }
        Ok(EdgeSecret::new(secret))
    }

    /// The infrastructure chosen (or inferred), with its settings; a clear error for a
    /// choice that cannot be made.
    pub fn infrastructure(&self) -> Result<Infrastructure, StartError> {
        let kamailio_url = self
            .kamailio_db_url
            .as_ref()
            .map(|url| url.0.as_str())
            .filter(|url| !url.is_empty());
        // Built only when Kamailio is the choice: its secret is required then, not otherwise.
        let kamailio = |url: &str| -> Result<Infrastructure, StartError> {
            let mut settings = KamailioSettings::new(url, &self.kamailio_rpc_url)
                .with_rpc_secret(self.kamailio_rpc_secret()?);
            if let Some(group) = self.kamailio_db_group.as_deref().filter(|g| !g.is_empty()) {
                settings = settings
                    .with_database_group(group)
                    .map_err(|why| StartError::Settings(format!("--kamailio-db-group: {why}")))?;
            }
            Ok(Infrastructure::Kamailio(settings))
        };
        match self.provisioner {
            Some(ProvisionerChoice::None) => Ok(Infrastructure::None),
            Some(ProvisionerChoice::Livekit) => match self.livekit_settings()? {
                Some(settings) => Ok(Infrastructure::LiveKit(settings)),
                None => Err(StartError::Settings(
                    "--provisioner livekit needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET".into(),
                )),
            },
            Some(ProvisionerChoice::Kamailio) => match kamailio_url {
                Some(url) => kamailio(url),
                None => Err(StartError::Settings(
                    "--provisioner kamailio needs KAMAILIO_DB_URL (--kamailio-db-url)".into(),
                )),
            },
            None => match (self.livekit_settings()?, kamailio_url) {
                (Some(_), Some(_)) => Err(StartError::Settings(
                    "both LiveKit and Kamailio are configured: choose one with --provisioner livekit|kamailio".into(),
                )),
                (Some(settings), None) => Ok(Infrastructure::LiveKit(settings)),
                (None, Some(url)) => kamailio(url),
                (None, None) => Ok(Infrastructure::None),
            },
        }
    }

    /// The deployment name given, checked; `None` when left out (or empty).
    fn deployment_name(&self) -> Result<Option<String>, StartError> {
        let Some(name) = self.deployment.as_deref().filter(|name| !name.is_empty()) else {
            return Ok(None);
        };
        let well_formed = name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed {
            Ok(Some(name.to_owned()))
        } else {
            Err(StartError::Settings(
                "SIP_TRUNKS_DEPLOYMENT (--deployment) must be 1 to 32 of a-z, 0-9 and -".into(),
            ))
        }
    }

    /// The LiveKit settings, `None` when nothing of LiveKit is configured; a clear error for
    /// a half configuration.
    fn livekit_settings(&self) -> Result<Option<LiveKitSettings>, StartError> {
        let secret = self.secret()?;
        let url = self.livekit_url.as_deref().filter(|url| !url.is_empty());
        let key = self
            .livekit_api_key
            .as_deref()
            .filter(|key| !key.is_empty());
        match (url, key, secret) {
            (None, None, None) => Ok(None),
            (Some(url), Some(key), Some(secret)) => {
                let scheme_ok = ["https://", "http://", "wss://", "ws://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme));
                if !scheme_ok {
                    return Err(StartError::Settings(format!(
                        "LIVEKIT_URL must start with https://, wss://, http:// or ws://, not {url:?}"
                    )));
                }
                let mut settings = LiveKitSettings::new(url, key, secret);
                if let Some(name) = self.deployment_name()? {
                    settings.deployment = name;
                }
                Ok(Some(settings))
            }
            (url, key, secret) => {
                let missing: Vec<&str> = [
                    url.is_none().then_some("LIVEKIT_URL (--livekit-url)"),
                    key.is_none()
                        .then_some("LIVEKIT_API_KEY (--livekit-api-key)"),
                    secret
                        .is_none()
                        .then_some("LIVEKIT_API_SECRET (or --livekit-api-secret-file)"),
                ]
                .into_iter()
                .flatten()
                .collect();
                Err(StartError::Settings(format!(
                    "LiveKit is half configured: {} missing (give all three, or none to run as a registry only)",
                    missing.join(", ")
                )))
            }
        }
    }

    /// The provisioner over `ledger`, `None` when no infrastructure is configured. For
    /// Kamailio this opens its database and creates the tables (blocking, at start-up).
    pub fn provisioner(
        &self,
        ledger: Arc<dyn ProvisioningLedger>,
        metrics: Arc<api::metrics::Metrics>,
    ) -> Result<Option<Arc<Provisioner>>, StartError> {
        let infrastructure: Arc<dyn VoiceInfrastructure> = match self.infrastructure()? {
            Infrastructure::None => return Ok(None),
            Infrastructure::LiveKit(settings) => Arc::new(LiveKit::new(settings)),
            Infrastructure::Kamailio(settings) => {
                Arc::new(Kamailio::open(settings).map_err(StartError::Settings)?)
            }
        };
        Ok(Some(Arc::new(
            Provisioner::new(infrastructure, ledger)
                .with_observer(Arc::new(api::metrics::MetricsObserver(metrics))),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_name_is_short_lower_case_and_reaches_the_livekit_settings() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("livekit.secret");
        std::fs::write(&secret, "LiveKit-Secret-1\n").unwrap();
        let mut permissions = std::fs::metadata(&secret).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(&secret, permissions).unwrap();
        let args = |deployment: Option<&str>| InfrastructureArgs {
            livekit_url: Some("https://livekit.example".into()),
            livekit_api_key: Some("APIkey".into()),
            livekit_api_secret_file: Some(secret.clone()),
            deployment: deployment.map(str::to_owned),
            ..InfrastructureArgs::default()
        };
        let deployment_of = |deployment| match args(deployment).livekit_settings() {
            Ok(Some(settings)) => Ok(settings.deployment),
            Ok(None) => panic!("livekit expected"),
            Err(error) => Err(error.to_string()),
        };
        assert_eq!(deployment_of(None), Ok("default".to_owned()));
        assert_eq!(deployment_of(Some("")), Ok("default".to_owned()));
        assert_eq!(deployment_of(Some("staging-2")), Ok("staging-2".to_owned()));
        for bad in ["Staging", "a b", "x".repeat(33).as_str(), "prod\n"] {
            let error = deployment_of(Some(bad)).unwrap_err();
            assert!(error.contains("SIP_TRUNKS_DEPLOYMENT"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn kamailio_without_its_rpc_secret_refuses_to_start_and_says_which_setting() {
        let args = InfrastructureArgs {
            kamailio_db_url: Some(SecretUrl("sqlite:///tmp/edge.db".into())),
            kamailio_rpc_url: "http://127.0.0.1:5071/RPC".into(),
            ..InfrastructureArgs::default()
        };
        assert!(std::env::var_os(KAMAILIO_RPC_SECRET_ENV).is_none());
        let error = args.infrastructure().unwrap_err().to_string();
        assert!(error.contains("KAMAILIO_RPC_SECRET"), "{error}");
    }

    #[test]
    fn the_rpc_secret_file_is_read_trimmed_and_never_shown_by_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.secret");
        std::fs::write(&path, "Rpc-Secret-1\n").unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(&path, permissions).unwrap();
        let args = InfrastructureArgs {
            kamailio_db_url: Some(SecretUrl("sqlite:///tmp/edge.db".into())),
            kamailio_rpc_url: "http://127.0.0.1:5071/RPC".into(),
            kamailio_rpc_secret_file: Some(path),
            ..InfrastructureArgs::default()
        };
        let Ok(Infrastructure::Kamailio(settings)) = args.infrastructure() else {
            panic!("kamailio expected");
        };
        assert_eq!(
            settings.rpc_secret.as_ref().map(EdgeSecret::expose_secret),
            Some("Rpc-Secret-1")
        );
        assert!(!format!("{settings:?}").contains("Rpc-Secret-1"));
    }
}
