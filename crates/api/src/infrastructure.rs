//! Which voice infrastructure the trunks' legs go to, from the command line and the
//! environment: LiveKit when `LIVEKIT_URL`, `LIVEKIT_API_KEY` and the secret are all given,
//! none (registry only) when none is, and a refusal to start for anything in between.
//!
//! The secret is never a flag (a flag shows in the process list): `LIVEKIT_API_SECRET`, or a
//! file (mode 0600) named by `--livekit-api-secret-file` / `LIVEKIT_API_SECRET_FILE`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use domain::{ProvisioningLedger, VoiceInfrastructure};
use livekit_adapter::{ApiSecret, LiveKit, LiveKitSettings};

use crate::provisioning::Provisioner;
use crate::server::StartError;

/// LiveKit's own variable for the API secret.
pub const SECRET_ENV: &str = "LIVEKIT_API_SECRET";

/// Where LiveKit is.
#[derive(Debug, Clone, Default, Args)]
pub struct LiveKitArgs {
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
}

impl LiveKitArgs {
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

    /// The LiveKit settings, `None` when nothing of LiveKit is configured; a clear error for
    /// a half configuration.
    pub fn settings(&self) -> Result<Option<LiveKitSettings>, StartError> {
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
                Ok(Some(LiveKitSettings::new(url, key, secret)))
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

    /// The provisioner over `ledger`, `None` when no infrastructure is configured.
    pub fn provisioner(
        &self,
        ledger: Arc<dyn ProvisioningLedger>,
    ) -> Result<Option<Arc<Provisioner>>, StartError> {
        Ok(self.settings()?.map(|settings| {
            let livekit: Arc<dyn VoiceInfrastructure> = Arc::new(LiveKit::new(settings));
            Arc::new(Provisioner::new(livekit, ledger))
        }))
    }
}
