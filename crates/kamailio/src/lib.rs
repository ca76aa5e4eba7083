//! Kamailio as the voice infrastructure: the domain's [`VoiceInfrastructure`] port over the
//! SIP edge of `deploy/kamailio/kamailio.cfg`. A leg is rows in Kamailio's database, which
//! the adapter writes in one transaction per leg, plus a reload of what Kamailio caches:
//!
//! - every leg: a row of `sip_trunks_legs` (ours), which the edge reads on every call to find
//!   the trunk a call belongs to (never cached: a change is seen by the next call);
//! - an inbound `ip` leg: `address` rows of a group of its own, cached by the permissions
//!   module until `permissions.addressReload`, which the adapter calls (JSON-RPC over HTTP)
//!   and whose answer it reads; entries are validated before they are written, because
//!   Kamailio silently skips a malformed row;
//! - an inbound `auth` leg: a `subscriber` row with the digest HA1 only (never the
//!   password), in a realm of the leg's own;
//! - an outbound leg: the carrier's address and credentials (the password in clear: the
//!   edge must answer a challenge in whatever realm the carrier names), and the calling
//!   format with what `national` means for the trunk's country.
//!
//! If the process dies between the transaction and the reload, the rows are there and the
//! cache is not: the leg is not committed on the registry's side, so the reconciler finds it
//! (an orphan) and removes it; a later reload or a Kamailio restart loads the table anyway.

mod db;
mod rpc;
#[cfg(feature = "test-support")]
pub mod testing;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use domain::edge::{number_key, AllowRow, EdgeDialing};
use domain::{
    AllowListDigest, CallingFormat, CountryCode, InboundAccess, InboundLeg, LegId, LegKind,
    LegOwner, OutboundLeg, ProvisionError, ProvisionFuture, RemoteLeg, TrunkId, UserId,
    VoiceInfrastructure,
};
use md5::{Digest, Md5};
use rand::Rng;

use db::{address, sip_trunks_legs, subscriber, Edge, EdgeDatabase, EdgeFailure};
use rpc::{RpcClient, RpcFailure};

/// A secret shared with the edge (the RPC secret, the platform's secret): `Debug` never
/// shows it; the edge is given only its SHA-256 ([`EdgeSecret::sha256_hex`]).
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeSecret(String);

impl EdgeSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one header that carries it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Lower-case hex SHA-256 of the secret: what the edge's configuration is given
    /// (`-A 'RPC_SECRET_SHA256="…"'`), so that neither its command line nor its files hold
    /// the secret.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for EdgeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeSecret([redacted])")
    }
}

/// How the adapter reaches the SIP edge. `Debug` leaves the database URL out (it may carry
/// a password) and the RPC secret.
#[derive(Clone)]
pub struct KamailioSettings {
    /// `KAMAILIO_DB_URL`: the database Kamailio reads (`postgres://…`, `sqlite://PATH`).
    pub database_url: String,
    /// `KAMAILIO_RPC_URL`: its JSON-RPC endpoint (`http://127.0.0.1:5071/RPC`).
    pub rpc_url: String,
    /// `KAMAILIO_RPC_SECRET`: sent with every RPC call; the edge refuses calls without it.
    pub rpc_secret: Option<EdgeSecret>,
    /// `KAMAILIO_DB_GROUP`: a SQLite edge file is shared with this group (Kamailio's), mode
    /// 0660, instead of private to the service (0600).
    pub database_group: Option<u32>,
    /// How long one RPC call or one database transaction may take.
    pub request_timeout: Duration,
    /// RPC calls per reload at most (1: no retry).
    pub attempts: u32,
    /// The wait before the first retry; it doubles for each next one.
    pub first_backoff: Duration,
}

impl KamailioSettings {
    /// The defaults: 2 s per call, 3 attempts, 100 ms then 200 ms between them.
    pub fn new(database_url: impl Into<String>, rpc_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            rpc_url: rpc_url.into(),
            rpc_secret: None,
            database_group: None,
            request_timeout: Duration::from_secs(2),
            attempts: 3,
            first_backoff: Duration::from_millis(100),
        }
    }

    /// The same, sharing a SQLite edge file with `group` (a name or a number): Kamailio
    /// runs as a user of its own (Debian's `kamailio`), which must open the file the service
    /// creates.
    pub fn with_database_group(mut self, group: &str) -> Result<Self, String> {
        self.database_group = Some(db::group_id(group)?);
        Ok(self)
    }

    /// The same, sending `secret` with every RPC call.
    pub fn with_rpc_secret(mut self, secret: EdgeSecret) -> Self {
        self.rpc_secret = Some(secret);
        self
    }
}

impl std::fmt::Debug for KamailioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KamailioSettings")
            .field("database_url", &"[redacted]")
            .field("rpc_url", &self.rpc_url)
            .field("rpc_secret", &self.rpc_secret)
            .field("database_group", &self.database_group)
            .field("request_timeout", &self.request_timeout)
            .field("attempts", &self.attempts)
            .field("first_backoff", &self.first_backoff)
            .finish()
    }
}

/// The Kamailio adapter.
pub struct Kamailio {
    edge: Arc<Edge>,
    rpc: Arc<RpcClient>,
    settings: KamailioSettings,
}

impl Kamailio {
    /// Opens Kamailio's database and creates the tables it needs (blocking: call it at
    /// start-up). Kamailio itself need not be running.
    pub fn open(settings: KamailioSettings) -> Result<Self, String> {
        let database = EdgeDatabase::parse(&settings.database_url)?;
        if !settings.rpc_url.starts_with("http://") && !settings.rpc_url.starts_with("https://") {
            return Err("the Kamailio RPC URL must be http://HOST:PORT/RPC".into());
        }
        let edge = Edge::open(database, settings.database_group)?;
        Ok(Self {
            edge: Arc::new(edge),
            rpc: Arc::new(RpcClient::new(
                &settings.rpc_url,
                settings.request_timeout,
                settings.rpc_secret.clone(),
            )),
            settings,
        })
    }

    /// Asks Kamailio to reload the allow-lists, retrying what is worth retrying.
    async fn reload_allow_lists(&self) -> Result<(), ProvisionError> {
        let mut wait = self.settings.first_backoff;
        let mut attempt = 1;
        loop {
            let rpc = self.rpc.clone();
            let answer = self
                .blocking(move || Ok(rpc.call("permissions.addressReload")))
                .await?;
            match answer {
                Ok(_) => return Ok(()),
                Err(RpcFailure::Refused(why)) => return Err(ProvisionError::Refused(why)),
                Err(RpcFailure::Unreachable(why)) if attempt >= self.settings.attempts.max(1) => {
                    return Err(ProvisionError::Unavailable(why))
                }
                Err(RpcFailure::Unreachable(why)) => {
                    log::warn!("kamailio: reload attempt {attempt} failed: {why}");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// Runs `work` on the blocking pool, bounded in time.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
    ) -> Result<T, ProvisionError> {
        let limit = self.settings.request_timeout * (self.settings.attempts.max(1) + 1);
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProvisionError::Unavailable(
                "the blocking pool is shut down".into(),
            )),
            Err(_) => Err(ProvisionError::Unavailable(
                "the Kamailio database did not answer in time".into(),
            )),
        }
    }

    async fn insert_inbound(&self, leg: &InboundLeg) -> Result<LegId, ProvisionError> {
        let prepared = PreparedInbound::of(leg)?;
        let id = prepared.id.clone();
        let with_list = prepared.entries.is_some();
        let edge = self.edge.clone();
        self.blocking(move || write_inbound(&edge, &prepared, None))
            .await?;
        if with_list {
            if let Err(error) = self.reload_allow_lists().await {
                // The leg is not in effect: take the rows back (best effort; an orphan left
                // behind is the reconciler's).
                self.take_back(&id).await;
                return Err(error);
            }
        }
        Ok(id)
    }

    /// Make before break (see [`VoiceInfrastructure::replace_inbound`]). An `auth` leg is
    /// swapped in one transaction. An `ip` leg is written inactive (no `inbound_key`: no call
    /// finds it), its allow-list loaded, and then, in one transaction, the old leg's rows go
    /// and the new one gets the number; the old leg is untouched until then. Whatever fails
    /// takes the new rows back.
    async fn swap_inbound(&self, old: &LegId, leg: &InboundLeg) -> Result<LegId, ProvisionError> {
        let prepared = PreparedInbound::of(leg)?;
        let id = prepared.id.clone();
        let old_id = old.as_str().to_owned();
        let edge = self.edge.clone();
        if prepared.entries.is_none() {
            let dropped_list = self
                .blocking(move || write_inbound(&edge, &prepared, Some(Swap::Now(&old_id))))
                .await?;
            self.drop_stale_list(dropped_list, old).await;
            return Ok(id);
        }
        let key = prepared.key.clone();
        self.blocking(move || write_inbound(&edge, &prepared, Some(Swap::Inactive(&old_id))))
            .await?;
        if let Err(error) = self.reload_allow_lists().await {
            self.take_back(&id).await;
            return Err(error);
        }
        let edge = self.edge.clone();
        let old_id = old.as_str().to_owned();
        let new_id = id.as_str().to_owned();
        let activated = self
            .blocking(move || activate_inbound(&edge, &new_id, &old_id, &key))
            .await;
        match activated {
            Ok(dropped_list) => {
                self.drop_stale_list(dropped_list, old).await;
                Ok(id)
            }
            Err(error) => {
                self.take_back(&id).await;
                Err(error)
            }
        }
    }

    /// Removes the rows of leg `id`, which never took a call (best effort: an orphan left
    /// behind is the reconciler's).
    async fn take_back(&self, id: &LegId) {
        let edge = self.edge.clone();
        let leg_id = id.as_str().to_owned();
        if let Err(error) = self.blocking(move || delete_rows(&edge, &leg_id)).await {
            log::warn!(
                "kamailio: leg {} left for the reconciler: {error}",
                id.as_str()
            );
        }
    }

    /// After `old`'s allow-list rows were deleted (`dropped`): drops them from Kamailio's cache
    /// too. Only tidiness: no leg row names the group any more, so the edge uses it for no
    /// call, and any later reload (or a restart) drops it as well.
    async fn drop_stale_list(&self, dropped: bool, old: &LegId) {
        if dropped {
            if let Err(error) = self.reload_allow_lists().await {
                log::warn!(
                    "kamailio: leg {} removed, reload failed: {error}",
                    old.as_str()
                );
            }
        }
    }
}

/// An inbound leg, ready to be written: its row, its allow-list or its digest HA1.
struct PreparedInbound {
    id: LegId,
    /// What the edge matches the Request-URI against ([`inbound_key`]).
    key: String,
    /// The row, without its key (the writer sets it when the leg is to take calls).
    row: NewLeg,
    /// An `ip` leg's allow-list; `None` for an `auth` leg.
    entries: Option<Vec<AllowRow>>,
    /// An `auth` leg's digest HA1 (empty for an `ip` leg).
    ha1: String,
}

impl PreparedInbound {
    fn of(leg: &InboundLeg) -> Result<Self, ProvisionError> {
        let key = inbound_key(&leg.number)?;
        let entries = match &leg.access {
            InboundAccess::AllowList(list) => Some(
                list.iter()
                    .map(|entry| allow_row(entry))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            InboundAccess::Credentials { .. } => None,
        };
        let id = new_leg_id();
        let (username, ha1) = match &leg.access {
            InboundAccess::Credentials { username, password } => (
                username.clone(),
                digest_ha1(username, id.as_str(), password.expose_secret()),
            ),
            InboundAccess::AllowList(_) => (String::new(), String::new()),
        };
        let allowed = match &leg.access {
            InboundAccess::AllowList(list) => list.join(","),
            InboundAccess::Credentials { .. } => String::new(),
        };
        let row = NewLeg {
            id: id.as_str().to_owned(),
            kind: LegKind::Inbound,
            trunk: leg.trunk,
            owner: leg.owner,
            number: leg.number.clone(),
            access: if entries.is_some() { "ip" } else { "auth" },
            realm: if entries.is_some() {
                String::new()
            } else {
                id.as_str().to_owned()
            },
            username,
            allowed,
            address: String::new(),
            password: String::new(),
            dialing: None,
            fixed_ip: false,
        };
        Ok(Self {
            id,
            key,
            row,
            entries,
            ha1,
        })
    }
}

/// How a new inbound leg takes the place of an old one.
#[derive(Clone, Copy)]
enum Swap<'a> {
    /// In the same transaction: the old leg's rows go, the new leg has the number.
    Now(&'a str),
    /// The new leg is written without its number; [`activate_inbound`] swaps later.
    Inactive(&'a str),
}

/// A leg row about to be written.
struct NewLeg {
    id: String,
    kind: LegKind,
    trunk: TrunkId,
    owner: UserId,
    number: String,
    access: &'static str,
    realm: String,
    username: String,
    allowed: String,
    address: String,
    password: String,
    dialing: Option<Dialing>,
    fixed_ip: bool,
}

/// What an outbound leg row says about the called number's form: the domain's
/// [`EdgeDialing`] (the rule the simulator decides with too), and the country it came from.
#[derive(Clone)]
struct Dialing {
    edge: EdgeDialing,
    country: CountryCode,
}

impl Dialing {
    fn of(format: CallingFormat, country: CountryCode) -> Self {
        Self {
            edge: EdgeDialing::of(format, country),
            country,
        }
    }
}

/// One allow-list entry as `address` holds it ([`AllowRow`]), refused when malformed, since
/// Kamailio would skip the row without a word.
fn allow_row(entry: &str) -> Result<AllowRow, ProvisionError> {
    AllowRow::parse(entry)
        .ok_or_else(|| ProvisionError::Refused(format!("not an address or network: {entry}")))
}

/// What the edge matches an inbound call's Request-URI user against ([`number_key`]).
fn inbound_key(number: &str) -> Result<String, ProvisionError> {
    number_key(number).ok_or_else(|| {
        ProvisionError::Refused(format!("the edge cannot route calls to {number:?}"))
    })
}

/// `KM_` and 24 hex digits.
fn new_leg_id() -> LegId {
    let bytes: [u8; 12] = rand::rng().random();
    // `LegId::new` refuses only the empty string.
    LegId::new(format!("KM_{}", hex::encode(bytes))).expect("a non-empty id")
}

/// The digest HA1 (RFC 2617): MD5 of `username:realm:password`, lower-case hex.
pub fn digest_ha1(username: &str, realm: &str, password: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(format!("{username}:{realm}:{password}").as_bytes());
    hex::encode(md5.finalize())
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn provision_error(failure: EdgeFailure) -> ProvisionError {
    match failure {
        EdgeFailure::Taken(what) => ProvisionError::Refused(format!("already there: {what}")),
        EdgeFailure::Unreachable(why) => ProvisionError::Unavailable(why),
        EdgeFailure::Other(why) => ProvisionError::Unavailable(why),
    }
}

fn insert_leg(
    conn: &mut db::EdgeConnection,
    row: &NewLeg,
    inbound_key: Option<&str>,
    group: Option<i32>,
) -> QueryResult<()> {
    use sip_trunks_legs::dsl as l;
    let dialing = row.dialing.clone();
    diesel::insert_into(l::sip_trunks_legs)
        .values((
            l::id.eq(&row.id),
            l::kind.eq(row.kind.as_str()),
            l::trunk_id.eq(row.trunk.get()),
            l::user_id.eq(row.owner.get()),
            l::created_unix.eq(now_micros() / 1_000_000),
            l::seq.eq(now_micros()),
            l::number.eq(&row.number),
            l::inbound_key.eq(inbound_key),
            l::access.eq(row.access),
            l::grp.eq(group),
            l::realm.eq(&row.realm),
            l::username.eq(&row.username),
            l::allowed.eq(&row.allowed),
            l::address.eq(&row.address),
            l::password.eq(&row.password),
            l::calling_format.eq(dialing.as_ref().map_or("", |d| d.edge.format.as_str())),
            l::country.eq(dialing.as_ref().map_or("", |d| d.country.as_str())),
            l::calling_code.eq(dialing
                .as_ref()
                .map_or("", |d| d.edge.calling_code.as_str())),
            l::national_prefix.eq(dialing
                .as_ref()
                .map_or("", |d| d.edge.national_prefix.as_str())),
            l::fixed_ip.eq(i32::from(row.fixed_ip)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Writes an inbound leg: the leg row, then its allow-list or its subscriber row; with
/// `swap`, in place of the old leg (see [`Swap`]). Gives whether allow-list rows of the old
/// leg were deleted (its group is then stale in Kamailio's cache).
fn write_inbound(
    edge: &Edge,
    leg: &PreparedInbound,
    swap: Option<Swap<'_>>,
) -> Result<bool, ProvisionError> {
    let replaced = match swap {
        Some(Swap::Now(old) | Swap::Inactive(old)) => old,
        None => "",
    };
    let active = !matches!(swap, Some(Swap::Inactive(_)));
    // A group id is drawn at random; a collision (unique index) draws again.
    for _ in 0..5 {
        let group = leg
            .entries
            .as_ref()
            .map(|_| rand::rng().random_range(1..i32::MAX));
        let written = edge.transaction(|conn| {
            if held_by_another(conn, &leg.key, &[replaced])? {
                return Ok(None);
            }
            let dropped_list = match swap {
                Some(Swap::Now(old)) => delete_leg_rows(conn, old)?.1,
                _ => false,
            };
            let key = active.then_some(leg.key.as_str());
            insert_leg(conn, &leg.row, key, group)?;
            match (&leg.entries, group) {
                (Some(entries), Some(group)) => {
                    for entry in entries {
                        diesel::insert_into(address::table)
                            .values((
                                address::grp.eq(group),
                                address::ip_addr.eq(entry.ip.to_string()),
                                address::mask.eq(i32::from(entry.mask)),
                                address::port.eq(0_i16),
                                address::tag.eq(Some(&leg.row.id)),
                            ))
                            .execute(conn)?;
                    }
                }
                _ => {
                    diesel::insert_into(subscriber::table)
                        .values((
                            subscriber::username.eq(&leg.row.username),
                            subscriber::domain.eq(&leg.row.realm),
                            subscriber::password.eq(""),
                            subscriber::ha1.eq(&leg.ha1),
                            subscriber::ha1b.eq(""),
                        ))
                        .execute(conn)?;
                }
            }
            Ok(Some(dropped_list))
        });
        match written {
            Ok(Some(dropped_list)) => return Ok(dropped_list),
            Ok(None) => return Err(ProvisionError::NumberTaken),
            Err(EdgeFailure::Taken(what)) if what.contains("inbound_key") => {
                return Err(ProvisionError::NumberTaken)
            }
            Err(EdgeFailure::Taken(what)) if what.contains("grp") => continue,
            Err(other) => return Err(provision_error(other)),
        }
    }
    Err(ProvisionError::Unavailable(
        "no free address group after 5 draws".into(),
    ))
}

/// The swap of an `ip` leg written inactive: in one transaction, the old leg's rows go and
/// the new leg gets the number. Gives whether allow-list rows of the old leg were deleted.
fn activate_inbound(edge: &Edge, new: &str, old: &str, key: &str) -> Result<bool, ProvisionError> {
    /// What the swap's transaction found.
    enum Found {
        Swapped { dropped_list: bool },
        NumberTaken,
        NewLegGone,
    }
    let swapped = edge.transaction(|conn| {
        use sip_trunks_legs::dsl as l;
        if held_by_another(conn, key, &[old, new])? {
            return Ok(Found::NumberTaken);
        }
        let present: i64 = l::sip_trunks_legs
            .filter(l::id.eq(new))
            .count()
            .get_result(conn)?;
        if present == 0 {
            // Its rows went (a reconciler took it for an orphan): keep the old leg.
            return Ok(Found::NewLegGone);
        }
        let (_, dropped_list) = delete_leg_rows(conn, old)?;
        diesel::update(l::sip_trunks_legs.filter(l::id.eq(new)))
            .set(l::inbound_key.eq(Some(key)))
            .execute(conn)?;
        Ok(Found::Swapped { dropped_list })
    });
    match swapped {
        Ok(Found::Swapped { dropped_list }) => Ok(dropped_list),
        Ok(Found::NumberTaken) | Err(EdgeFailure::Taken(_)) => Err(ProvisionError::NumberTaken),
        Ok(Found::NewLegGone) => Err(ProvisionError::Unavailable(
            "the new leg went away before it took the number".into(),
        )),
        Err(other) => Err(provision_error(other)),
    }
}

/// True when a leg other than `except` has inbound key `key`.
fn held_by_another(conn: &mut db::EdgeConnection, key: &str, except: &[&str]) -> QueryResult<bool> {
    use sip_trunks_legs::dsl as l;
    let holders: Vec<String> = l::sip_trunks_legs
        .filter(l::inbound_key.eq(key))
        .select(l::id)
        .load(conn)?;
    Ok(holders
        .iter()
        .any(|holder| !except.contains(&holder.as_str())))
}

/// Deletes every row of leg `id`: gives how many, and whether allow-list rows were among them.
fn delete_leg_rows(conn: &mut db::EdgeConnection, id: &str) -> QueryResult<(usize, bool)> {
    let addresses =
        diesel::delete(address::table.filter(address::tag.eq(Some(id)))).execute(conn)?;
    let subscribers =
        diesel::delete(subscriber::table.filter(subscriber::domain.eq(id))).execute(conn)?;
    let legs =
        diesel::delete(sip_trunks_legs::table.filter(sip_trunks_legs::id.eq(id))).execute(conn)?;
    Ok((addresses + subscribers + legs, addresses > 0))
}

/// Removes every row of leg `id`; true when there were any.
fn delete_rows(edge: &Edge, id: &str) -> Result<bool, ProvisionError> {
    edge.transaction(|conn| delete_leg_rows(conn, id).map(|(rows, _)| rows > 0))
        .map_err(provision_error)
}

fn remote_leg(row: db::LegRow) -> Option<RemoteLeg> {
    let kind = match row.kind.as_str() {
        "inbound" => LegKind::Inbound,
        "outbound" => LegKind::Outbound,
        _ => return None,
    };
    let owner = TrunkId::new(row.trunk_id)
        .zip(UserId::new(row.user_id))
        .map(|(trunk, owner)| LegOwner {
            trunk,
            owner,
            created_unix: row.created_unix,
        });
    let allow_list = if row.allowed.is_empty() {
        AllowListDigest::default()
    } else {
        AllowListDigest::of(&row.allowed.split(',').collect::<Vec<_>>())
    };
    let dialing = match kind {
        LegKind::Outbound => CallingFormat::parse(&row.calling_format)
            .ok()
            .zip(CountryCode::parse(&row.country).ok()),
        LegKind::Inbound => None,
    };
    Some(RemoteLeg {
        id: LegId::new(row.id)?,
        kind,
        owner,
        numbers: vec![row.number],
        address: row.address,
        username: if row.access == "ip" {
            String::new()
        } else {
            row.username
        },
        allow_list,
        dialing,
    })
}

impl VoiceInfrastructure for Kamailio {
    fn name(&self) -> &'static str {
        "kamailio"
    }

    fn create_inbound<'a>(&'a self, leg: &'a InboundLeg) -> ProvisionFuture<'a, LegId> {
        Box::pin(self.insert_inbound(leg))
    }

    fn replaces_inbound_in_place(&self) -> bool {
        true
    }

    /// `core.uptime` over the RPC (the method the edge serves for this): Kamailio runs and
    /// takes the service's reloads.
    fn check_reachable(&self) -> ProvisionFuture<'_, ()> {
        Box::pin(async move {
            let rpc = self.rpc.clone();
            match self.blocking(move || Ok(rpc.call("core.uptime"))).await? {
                Ok(_) => Ok(()),
                Err(RpcFailure::Refused(why)) => Err(ProvisionError::Refused(why)),
                Err(RpcFailure::Unreachable(why)) => Err(ProvisionError::Unavailable(why)),
            }
        })
    }

    fn replace_inbound<'a>(
        &'a self,
        old: &'a LegId,
        leg: &'a InboundLeg,
    ) -> ProvisionFuture<'a, LegId> {
        Box::pin(self.swap_inbound(old, leg))
    }

    fn create_outbound<'a>(&'a self, leg: &'a OutboundLeg) -> ProvisionFuture<'a, LegId> {
        Box::pin(async move {
            let id = new_leg_id();
            let row = NewLeg {
                id: id.as_str().to_owned(),
                kind: LegKind::Outbound,
                trunk: leg.trunk,
                owner: leg.owner,
                number: leg.number.clone(),
                access: "",
                realm: String::new(),
                username: leg.username.clone(),
                allowed: String::new(),
                address: leg.address.clone(),
                password: leg.password.expose_secret().to_owned(),
                dialing: Some(Dialing::of(leg.calling_format, leg.country)),
                fixed_ip: leg.fixed_ip,
            };
            let edge = self.edge.clone();
            self.blocking(move || {
                edge.transaction(|conn| insert_leg(conn, &row, None, None))
                    .map_err(provision_error)
            })
            .await?;
            Ok(id)
        })
    }

    fn delete_leg<'a>(&'a self, kind: LegKind, id: &'a LegId) -> ProvisionFuture<'a, ()> {
        Box::pin(async move {
            let edge = self.edge.clone();
            let leg = id.as_str().to_owned();
            self.blocking(move || delete_rows(&edge, &leg)).await?;
            if kind == LegKind::Inbound {
                // The leg row is gone, so the edge refuses the number's calls already; the
                // reload only drops the stale allow-list from the cache, and any later
                // reload (or a restart) does the same, so a failure here is not the delete's.
                if let Err(error) = self.reload_allow_lists().await {
                    log::warn!(
                        "kamailio: leg {} removed, reload failed: {error}",
                        id.as_str()
                    );
                }
            }
            Ok(())
        })
    }

    fn list_legs(&self) -> ProvisionFuture<'_, Vec<RemoteLeg>> {
        Box::pin(async move {
            let edge = self.edge.clone();
            let rows = self
                .blocking(move || edge.transaction(db::all_legs).map_err(provision_error))
                .await?;
            Ok(rows.into_iter().filter_map(remote_leg).collect())
        })
    }

    fn writes_called_numbers(&self) -> bool {
        true
    }

    fn restyle_outbound<'a>(
        &'a self,
        id: &'a LegId,
        leg: &'a OutboundLeg,
    ) -> ProvisionFuture<'a, ()> {
        Box::pin(async move {
            let dialing = Dialing::of(leg.calling_format, leg.country);
            let edge = self.edge.clone();
            let leg_id = id.as_str().to_owned();
            let changed = self
                .blocking(move || {
                    use sip_trunks_legs::dsl as l;
                    edge.transaction(|conn| {
                        diesel::update(
                            l::sip_trunks_legs
                                .filter(l::id.eq(&leg_id))
                                .filter(l::kind.eq("outbound")),
                        )
                        .set((
                            l::calling_format.eq(dialing.edge.format.as_str()),
                            l::country.eq(dialing.country.as_str()),
                            l::calling_code.eq(&dialing.edge.calling_code),
                            l::national_prefix.eq(&dialing.edge.national_prefix),
                        ))
                        .execute(conn)
                    })
                    .map_err(provision_error)
                })
                .await?;
            if changed == 0 {
                // A leg that is gone is drift: the reconciler makes it again, from the
                // stored trunk (which by then has the new format).
                log::warn!(
                    "kamailio: outbound leg {} not found to restyle",
                    id.as_str()
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ha1_is_the_rfc_2617_digest_of_user_realm_and_password() {
        // RFC 2617 section 3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn allow_list_entries_become_an_address_and_a_mask() {
        let row = allow_row("198.51.100.0/24").unwrap();
        assert_eq!((row.ip.to_string(), row.mask), ("198.51.100.0".into(), 24));
        assert_eq!(allow_row("203.0.113.9").unwrap().mask, 32);
        assert_eq!(allow_row("2001:db8::1").unwrap().mask, 128);
        assert_eq!(allow_row("2001:db8::/32").unwrap().mask, 32);
        for bad in ["198.51.100.1/24", "nonsense", "10.0.0.0/33", ""] {
            assert!(allow_row(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_inbound_key_is_the_number_without_its_plus() {
        assert_eq!(inbound_key("+14155551234").unwrap(), "14155551234");
        assert_eq!(inbound_key("1001").unwrap(), "1001");
        assert!(inbound_key("10'01").is_err());
        assert!(inbound_key("+").is_err());
    }

    #[test]
    fn debug_never_shows_the_database_url() {
        let settings = KamailioSettings::new("postgres://k:Db-Secret-1@db/edge", "http://x/RPC");
        assert!(!format!("{settings:?}").contains("Db-Secret-1"));
    }

    #[test]
    fn leg_ids_are_distinct_and_fit_a_realm() {
        let a = new_leg_id();
        let b = new_leg_id();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 27);
        assert!(a.as_str().starts_with("KM_"));
    }
}
