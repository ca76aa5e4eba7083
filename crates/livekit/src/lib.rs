//! LiveKit as the voice infrastructure: the domain's [`VoiceInfrastructure`] port over
//! LiveKit's SIP service, through `livekit-api`'s `SIPClient` (Twirp, protobuf bodies, an
//! HS256 token with the `sip.admin` grant signed per request).
//!
//! Every trunk gets one inbound trunk and one outbound trunk there. Both carry the registry's
//! tag in their `metadata` (trunk id, owner, when and by which attempt they were made), so
//! that the reconciler can tell the registry's legs from other systems' and find orphans.
//!
//! Calls are bounded: a timeout per request, a few attempts with exponential back-off for
//! what is worth retrying (no answer, 429, 5xx), none for what is not (400, 401, 403, 404).
//! LiveKit has no idempotency, so a create whose answer was lost may have happened: a retried
//! create looks for the legs its earlier attempts made (by the attempt tag), keeps one and
//! removes the others, and an inbound number "taken" by such an earlier attempt is adopted.

mod errors;
mod listing;
mod tag;

use std::fmt;
use std::time::Duration;

use domain::{
    AllowListDigest, InboundAccess, InboundLeg, LegId, LegKind, LegOwner, OutboundLeg,
    ProvisionError, ProvisionFuture, RemoteLeg, VoiceInfrastructure,
};
use livekit_api::services::sip::{
    CreateSIPInboundTrunkOptions, CreateSIPOutboundTrunkOptions, SIPClient,
};
use livekit_protocol as proto;

use errors::{classify, Failure};
use listing::Lister;
pub use tag::{LegTag, DEFAULT_DEPLOYMENT};

/// The LiveKit API secret; `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiSecret(String);

impl ApiSecret {
    /// Wraps the secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret([redacted])")
    }
}

/// How the adapter reaches LiveKit.
#[derive(Debug, Clone)]
pub struct LiveKitSettings {
    /// `LIVEKIT_URL`: `https://…`, `wss://…` (taken as https) or `http://…`.
    pub url: String,
    /// `LIVEKIT_API_KEY`.
    pub api_key: String,
    /// `LIVEKIT_API_SECRET`.
    pub api_secret: ApiSecret,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Requests per call at most (1: no retry).
    pub attempts: u32,
    /// The wait before the first retry; it doubles for each next one.
    pub first_backoff: Duration,
    /// This registry's name in its legs' tags (`SIP_TRUNKS_DEPLOYMENT`): legs tagged by
    /// another deployment (a tag without one is `default`'s) are never touched ([`LegTag`]).
    pub deployment: String,
}

impl LiveKitSettings {
    /// The defaults for `url`, `api_key` and `api_secret`: 3 s per request, 3 attempts, 200 ms
    /// then 400 ms between them (about 10 s for a call at worst).
    pub fn new(url: impl Into<String>, api_key: impl Into<String>, api_secret: ApiSecret) -> Self {
        Self {
            url: url.into(),
            api_key: api_key.into(),
            api_secret,
            request_timeout: Duration::from_secs(3),
            attempts: 3,
            first_backoff: Duration::from_millis(200),
            deployment: DEFAULT_DEPLOYMENT.to_owned(),
        }
    }
}

/// The port on LiveKit.
pub struct LiveKit {
    client: SIPClient,
    lister: Lister,
    settings: LiveKitSettings,
}

impl fmt::Debug for LiveKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LiveKit({}, key {})",
            self.settings.url, self.settings.api_key
        )
    }
}

impl LiveKit {
    /// A client of the LiveKit project `settings` name. Region failover (a LiveKit Cloud
    /// feature that re-sends a request to another region) is off: a re-sent create is a
    /// duplicate, and the retries here are counted and bounded.
    pub fn new(settings: LiveKitSettings) -> Self {
        let client =
            SIPClient::with_api_key(&settings.url, &settings.api_key, &settings.api_secret.0)
                .with_failover(false)
                .with_request_timeout(settings.request_timeout);
        let lister = Lister::new(
            &settings.url,
            &settings.api_key,
            &settings.api_secret.0,
            settings.request_timeout,
        );
        Self {
            client,
            lister,
            settings,
        }
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts are spent; gives the
    /// outcome and how many requests were sent.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut call: F) -> (Result<T, Failure>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = livekit_api::services::ServiceResult<T>>,
    {
        let mut backoff = self.settings.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call().await.map_err(classify) {
                Ok(value) => return (Ok(value), attempt),
                Err(Failure::Retry(reason)) if attempt < self.settings.attempts => {
                    log::warn!(
                        "LiveKit {what}: attempt {attempt} failed ({reason}); retrying in {backoff:?}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(failure) => return (Err(failure), attempt),
            }
        }
    }

    /// Hands every trunk of one kind to `each`, a page at a time (`fetch` reads the page after
    /// an id), so that only what `each` keeps stays in memory. Each page is retried on its own.
    async fn each_trunk<T, Fut>(
        &self,
        what: &str,
        fetch: impl Fn(String) -> Fut,
        id: impl Fn(&T) -> &str,
        mut each: impl FnMut(T) -> Result<(), ProvisionError>,
    ) -> Result<(), ProvisionError>
    where
        Fut: std::future::Future<Output = livekit_api::services::ServiceResult<Vec<T>>>,
    {
        let mut after = String::new();
        loop {
            let (outcome, _) = self.with_retries(what, || fetch(after.clone())).await;
            let page = outcome.map_err(Failure::into_error)?;
            let (fresh, last) = listing::new_after(page, &after, &id);
            if fresh.is_empty() {
                return Ok(());
            }
            fresh.into_iter().try_for_each(&mut each)?;
            after = last;
        }
    }

    /// Every inbound trunk, a page at a time.
    async fn each_inbound(
        &self,
        each: impl FnMut(proto::SipInboundTrunkInfo) -> Result<(), ProvisionError>,
    ) -> Result<(), ProvisionError> {
        self.each_trunk(
            "list inbound trunks",
            |after| self.lister.inbound_page(after),
            |trunk: &proto::SipInboundTrunkInfo| trunk.sip_trunk_id.as_str(),
            each,
        )
        .await
    }

    /// Every outbound trunk, a page at a time.
    async fn each_outbound(
        &self,
        each: impl FnMut(proto::SipOutboundTrunkInfo) -> Result<(), ProvisionError>,
    ) -> Result<(), ProvisionError> {
        self.each_trunk(
            "list outbound trunks",
            |after| self.lister.outbound_page(after),
            |trunk: &proto::SipOutboundTrunkInfo| trunk.sip_trunk_id.as_str(),
            each,
        )
        .await
    }

    /// After a create that took more than one request: the legs of `kind` that attempt
    /// `attempt_id` made, but `keep`, are removed (best effort; the reconciler removes what
    /// is left). Gives the id of one such leg when `keep` is `None` (an adopted leg).
    async fn settle_attempt(
        &self,
        kind: LegKind,
        attempt_id: &str,
        keep: Option<&str>,
    ) -> Result<Option<String>, ProvisionError> {
        let mut made: Vec<String> = Vec::new();
        let mut keep_made = |metadata: &str, id: String| {
            if LegTag::parse(metadata).is_some_and(|tag| tag.attempt == attempt_id) {
                made.push(id);
            }
            Ok(())
        };
        match kind {
            LegKind::Inbound => {
                self.each_inbound(|t| keep_made(&t.metadata, t.sip_trunk_id))
                    .await?;
            }
            LegKind::Outbound => {
                self.each_outbound(|t| keep_made(&t.metadata, t.sip_trunk_id))
                    .await?;
            }
        }
        let kept = keep.map(str::to_owned).or_else(|| made.first().cloned());
        for id in made
            .iter()
            .filter(|id| Some(id.as_str()) != kept.as_deref())
        {
            log::warn!(
                "LiveKit: removing {id}, a duplicate {} leg a retried create made",
                kind.as_str()
            );
            if let Err(error) = self.delete(id).await {
                log::warn!("LiveKit: could not remove the duplicate {id}: {error}");
            }
        }
        Ok(kept)
    }

    async fn delete(&self, id: &str) -> Result<(), ProvisionError> {
        let (outcome, _) = self
            .with_retries("delete trunk", || self.client.delete_sip_trunk(id))
            .await;
        match outcome {
            Ok(_) | Err(Failure::NotFound) => Ok(()),
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn create_inbound_leg(&self, leg: &InboundLeg) -> Result<LegId, ProvisionError> {
        let tag = LegTag::new(
            &self.settings.deployment,
            leg.trunk,
            leg.owner,
            LegKind::Inbound,
        );
        let mut options = CreateSIPInboundTrunkOptions {
            metadata: Some(tag.to_metadata(None)),
            ..Default::default()
        };
        match &leg.access {
            InboundAccess::Credentials { username, password } => {
                options.auth_username = Some(username.clone());
                options.auth_password = Some(password.expose_secret().to_owned());
            }
            InboundAccess::AllowList(entries) => options.allowed_addresses = Some(entries.clone()),
        }
        let name = tag.name();
        let (outcome, attempts) = self
            .with_retries("create inbound trunk", || {
                self.client.create_sip_inbound_trunk(
                    name.clone(),
                    vec![leg.number.clone()],
                    options.clone(),
                )
            })
            .await;
        match outcome {
            Ok(created) => {
                if attempts > 1 {
                    self.settle_attempt(
                        LegKind::Inbound,
                        &tag.attempt,
                        Some(&created.sip_trunk_id),
                    )
                    .await?;
                }
                leg_id(created.sip_trunk_id)
            }
            // An earlier attempt of this very create may hold the number: then it is ours.
            Err(Failure::NumberTaken) if attempts > 1 => {
                match self
                    .settle_attempt(LegKind::Inbound, &tag.attempt, None)
                    .await?
                {
                    Some(id) => leg_id(id),
                    None => Err(ProvisionError::NumberTaken),
                }
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn create_outbound_leg(&self, leg: &OutboundLeg) -> Result<LegId, ProvisionError> {
        let tag = LegTag::new(
            &self.settings.deployment,
            leg.trunk,
            leg.owner,
            LegKind::Outbound,
        );
        let options = CreateSIPOutboundTrunkOptions {
            metadata: tag.to_metadata(Some(leg.fixed_ip)),
            auth_username: leg.username.clone(),
            auth_password: leg.password.expose_secret().to_owned(),
            ..Default::default()
        };
        let name = tag.name();
        let (outcome, attempts) = self
            .with_retries("create outbound trunk", || {
                self.client.create_sip_outbound_trunk(
                    name.clone(),
                    leg.address.clone(),
                    vec![leg.number.clone()],
                    options.clone(),
                )
            })
            .await;
        let created = outcome.map_err(Failure::into_error)?;
        if attempts > 1 {
            self.settle_attempt(LegKind::Outbound, &tag.attempt, Some(&created.sip_trunk_id))
                .await?;
        }
        leg_id(created.sip_trunk_id)
    }

    /// The trunk a leg was made for, when this deployment made it; `None` for a leg of
    /// another deployment or another system (never touched, its numbers still taken).
    fn own_leg(&self, metadata: &str) -> Option<LegOwner> {
        LegTag::parse(metadata)
            .filter(|tag| tag.deployment == self.settings.deployment)
            .map(|tag| tag.owner())
    }

    /// Every leg LiveKit holds, read a page at a time: each is kept as a [`RemoteLeg`], whose
    /// allow-list is a digest, so the whole listing stays small (about 250 bytes a leg).
    async fn all_legs(&self) -> Result<Vec<RemoteLeg>, ProvisionError> {
        let mut legs = Vec::new();
        self.each_inbound(|trunk| {
            legs.push(self.inbound_leg(trunk)?);
            Ok(())
        })
        .await?;
        self.each_outbound(|trunk| {
            legs.push(RemoteLeg {
                id: leg_id(trunk.sip_trunk_id)?,
                kind: LegKind::Outbound,
                owner: self.own_leg(&trunk.metadata),
                numbers: trunk.numbers,
                address: trunk.address,
                username: trunk.auth_username,
                allow_list: AllowListDigest::default(),
                dialing: None,
            });
            Ok(())
        })
        .await?;
        Ok(legs)
    }

    fn inbound_leg(&self, trunk: proto::SipInboundTrunkInfo) -> Result<RemoteLeg, ProvisionError> {
        Ok(RemoteLeg {
            id: leg_id(trunk.sip_trunk_id)?,
            kind: LegKind::Inbound,
            owner: self.own_leg(&trunk.metadata),
            numbers: trunk.numbers,
            address: String::new(),
            username: trunk.auth_username,
            allow_list: AllowListDigest::of(&trunk.allowed_addresses),
            dialing: None,
        })
    }

    /// The inbound legs that hold `number`, asked of LiveKit with its number filter (checked
    /// again here: a server without the filter answers every trunk).
    async fn inbound_legs_holding(&self, number: &str) -> Result<Vec<RemoteLeg>, ProvisionError> {
        let (outcome, _) = self
            .with_retries("list inbound trunks by number", || {
                self.lister.inbound_holding(number.to_owned())
            })
            .await;
        outcome
            .map_err(Failure::into_error)?
            .into_iter()
            .filter(|trunk| trunk.numbers.iter().any(|held| held == number))
            .map(|trunk| self.inbound_leg(trunk))
            .collect()
    }
}

fn leg_id(id: String) -> Result<LegId, ProvisionError> {
    LegId::new(id)
        .ok_or_else(|| ProvisionError::Refused("LiveKit answered without a trunk id".into()))
}

impl VoiceInfrastructure for LiveKit {
    fn name(&self) -> &'static str {
        "livekit"
    }

    fn create_inbound<'a>(&'a self, leg: &'a InboundLeg) -> ProvisionFuture<'a, LegId> {
        Box::pin(self.create_inbound_leg(leg))
    }

    fn create_outbound<'a>(&'a self, leg: &'a OutboundLeg) -> ProvisionFuture<'a, LegId> {
        Box::pin(self.create_outbound_leg(leg))
    }

    fn delete_leg<'a>(&'a self, _kind: LegKind, id: &'a LegId) -> ProvisionFuture<'a, ()> {
        Box::pin(self.delete(id.as_str()))
    }

    fn list_legs(&self) -> ProvisionFuture<'_, Vec<RemoteLeg>> {
        Box::pin(self.all_legs())
    }

    fn inbound_legs_holding<'a>(&'a self, number: &'a str) -> ProvisionFuture<'a, Vec<RemoteLeg>> {
        Box::pin(self.inbound_legs_holding(number))
    }
}
