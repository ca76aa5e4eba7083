//! The voice infrastructure port: what the registry asks of the SIP servers that carry the
//! calls (LiveKit, or a SIP edge of our own). Every stored trunk has two legs there: an
//! inbound leg that accepts the carrier's calls for its number, and an outbound leg that
//! places calls through the carrier.
//!
//! The port is asynchronous (a remote call takes milliseconds to seconds), but the domain
//! depends on no runtime: its futures are plain `std::future::Future`s, boxed.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::pin::Pin;
use std::sync::OnceLock;

use crate::{
    AllowedIps, CallingFormat, CountryCode, LegId, SipPassword, SipTrunk, TrunkField, TrunkId,
    TrunkSettings, UserId,
};

/// Which of a trunk's two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegKind {
    /// Accepts calls from the carrier to the trunk's number.
    Inbound,
    /// Places calls through the carrier.
    Outbound,
}

impl LegKind {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Who may call in on an inbound leg.
#[derive(Clone, PartialEq, Eq)]
pub enum InboundAccess {
    /// A digest challenge the carrier answers with the trunk's credentials.
    Credentials {
        /// The trunk's SIP username.
        username: String,
        /// The trunk's SIP password.
        password: SipPassword,
    },
    /// Calls from these addresses and ranges only (canonical form).
    AllowList(Vec<String>),
}

impl fmt::Debug for InboundAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credentials { username, .. } => f
                .debug_struct("Credentials")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Self::AllowList(entries) => f.debug_tuple("AllowList").field(entries).finish(),
        }
    }
}

/// What a trunk's inbound leg must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundLeg {
    /// The trunk the leg belongs to.
    pub trunk: TrunkId,
    /// Its owner.
    pub owner: UserId,
    /// The number (or extension) the leg accepts calls for.
    pub number: String,
    /// Who may call in.
    pub access: InboundAccess,
}

impl InboundLeg {
    /// The inbound leg `trunk` needs.
    pub fn of(trunk: &SipTrunk) -> Self {
        let settings = &trunk.settings;
        let access = match settings.inbound_authorization.allowed_ips() {
            Some(list) => InboundAccess::AllowList(list.to_strings()),
            None => InboundAccess::Credentials {
                username: settings.sip_username.as_str().to_owned(),
                password: settings.sip_password.clone(),
            },
        };
        Self {
            trunk: trunk.id,
            owner: trunk.owner,
            number: settings.phone_number.as_str().to_owned(),
            access,
        }
    }
}

/// What a trunk's outbound leg must be.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundLeg {
    /// The trunk the leg belongs to.
    pub trunk: TrunkId,
    /// Its owner.
    pub owner: UserId,
    /// The number calls are placed from.
    pub number: String,
    /// The carrier's SIP server.
    pub address: String,
    /// The credentials the carrier challenges for.
    pub username: String,
    /// The trunk's SIP password.
    pub password: SipPassword,
    /// The trunk's `outbound_proxy` flag: calls should leave from a fixed address.
    pub fixed_ip: bool,
    /// How the called number is written to the carrier.
    pub calling_format: CallingFormat,
    /// The trunk's country (what `national` means).
    pub country: CountryCode,
}

impl fmt::Debug for OutboundLeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundLeg")
            .field("trunk", &self.trunk)
            .field("owner", &self.owner)
            .field("number", &self.number)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("fixed_ip", &self.fixed_ip)
            .field("calling_format", &self.calling_format)
            .field("country", &self.country)
            .finish()
    }
}

impl OutboundLeg {
    /// The outbound leg `trunk` needs.
    pub fn of(trunk: &SipTrunk) -> Self {
        let settings = &trunk.settings;
        Self {
            trunk: trunk.id,
            owner: trunk.owner,
            number: settings.phone_number.as_str().to_owned(),
            address: settings.sip_address.as_str().to_owned(),
            username: settings.sip_username.as_str().to_owned(),
            password: settings.sip_password.clone(),
            fixed_ip: settings.outbound_proxy,
            calling_format: settings.calling_format,
            country: settings.country_code,
        }
    }
}

/// Which trunk a leg found on the infrastructure says it belongs to (from what the registry
/// wrote on it when it created it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegOwner {
    /// The trunk.
    pub trunk: TrunkId,
    /// Its owner.
    pub owner: UserId,
    /// When the registry created the leg (Unix seconds): a leg no trunk references is only
    /// an orphan once it is older than any request that could still be storing it.
    pub created_unix: i64,
}

/// A leg as the infrastructure holds it, with what can be compared of it (a password is not
/// read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLeg {
    /// Its id there.
    pub id: LegId,
    /// Inbound or outbound.
    pub kind: LegKind,
    /// The trunk it was created for, when the registry created it.
    pub owner: Option<LegOwner>,
    /// The numbers it serves.
    pub numbers: Vec<String>,
    /// Outbound: the carrier's server; inbound: empty.
    pub address: String,
    /// The SIP username (inbound: empty for an allow-list leg).
    pub username: String,
    /// Inbound: the allow-list (empty for a credentials leg), as a digest; outbound: empty.
    pub allow_list: AllowListDigest,
    /// Outbound, on an infrastructure that writes the called number itself
    /// ([`VoiceInfrastructure::writes_called_numbers`]): the calling format and country it
    /// holds; `None` elsewhere.
    pub dialing: Option<(CallingFormat, CountryCode)>,
}

impl RemoteLeg {
    /// True when this leg is the inbound leg `trunk`'s settings need, as far as can be seen
    /// (the password cannot): the check of a full scan, which never opens passwords.
    pub fn serves_inbound_of<P>(&self, trunk: &SipTrunk<P>) -> bool {
        self.kind == LegKind::Inbound
            && TrunkField::ALL
                .into_iter()
                .all(|field| self.inbound_shows(field, &trunk.settings))
    }

    /// True when this leg is the outbound leg `trunk`'s settings need, as far as can be
    /// seen.
    pub fn serves_outbound_of<P>(&self, trunk: &SipTrunk<P>) -> bool {
        self.kind == LegKind::Outbound
            && TrunkField::ALL
                .into_iter()
                .all(|field| self.outbound_shows(field, &trunk.settings))
    }

    /// True when this (inbound) leg shows `field` as `settings` have it, or cannot show it.
    fn inbound_shows<P>(&self, field: TrunkField, settings: &TrunkSettings<P>) -> bool {
        let allow_list = settings.inbound_authorization.allowed_ips();
        match field {
            TrunkField::PhoneNumber => self.numbers == [settings.phone_number.as_str()],
            // An allow-list leg challenges nobody, so it holds no username.
            TrunkField::SipUsername => {
                self.username == allow_list.map_or(settings.sip_username.as_str(), |_| "")
            }
            TrunkField::InboundAuthorizationType | TrunkField::AllowedInboundIps => {
                let wanted = allow_list.map(AllowedIps::to_strings).unwrap_or_default();
                self.allow_list == AllowListDigest::of(&wanted)
            }
            // Never read back.
            TrunkField::SipPassword => true,
            // Not part of an inbound leg.
            TrunkField::Nickname
            | TrunkField::SipAddress
            | TrunkField::CallingFormat
            | TrunkField::CountryCode
            | TrunkField::OutboundProxy => true,
        }
    }

    /// True when this (outbound) leg shows `field` as `settings` have it, or cannot show it.
    fn outbound_shows<P>(&self, field: TrunkField, settings: &TrunkSettings<P>) -> bool {
        match field {
            TrunkField::PhoneNumber => self.numbers == [settings.phone_number.as_str()],
            TrunkField::SipAddress => self.address == settings.sip_address.as_str(),
            TrunkField::SipUsername => self.username == settings.sip_username.as_str(),
            // Only an infrastructure that writes the called number itself holds these.
            TrunkField::CallingFormat | TrunkField::CountryCode => self
                .dialing
                .is_none_or(|held| held == (settings.calling_format, settings.country_code)),
            // Never read back.
            TrunkField::SipPassword | TrunkField::OutboundProxy => true,
            // Not part of an outbound leg.
            TrunkField::Nickname
            | TrunkField::InboundAuthorizationType
            | TrunkField::AllowedInboundIps => true,
        }
    }

    /// True when this leg serves `wanted` as far as can be seen (the password cannot).
    pub fn matches_inbound(&self, wanted: &InboundLeg) -> bool {
        let (username, allowed): (&str, &[String]) = match &wanted.access {
            InboundAccess::Credentials { username, .. } => (username, &[]),
            InboundAccess::AllowList(list) => ("", list),
        };
        self.kind == LegKind::Inbound
            && self.numbers == [wanted.number.clone()]
            && self.username == username
            && self.allow_list == AllowListDigest::of(allowed)
    }

    /// True when this leg serves `wanted` as far as can be seen (the password cannot).
    pub fn matches_outbound(&self, wanted: &OutboundLeg) -> bool {
        self.kind == LegKind::Outbound
            && self.numbers == [wanted.number.clone()]
            && self.address == wanted.address
            && self.username == wanted.username
            && self
                .dialing
                .is_none_or(|held| held == (wanted.calling_format, wanted.country))
    }
}

/// An inbound leg's allow-list as the registry compares it: the number of entries and a
/// 64-bit digest of them in sorted order (so the order they are held in does not matter).
///
/// A full scan holds one per leg the infrastructure has: 16 bytes where the entries
/// themselves took about 6 KB a leg at 100 IPv6 ranges (170 MB at 30,000 trunks). The
/// digest is keyed per process (`RandomState`), so that nobody can choose two lists that
/// collide; it is never stored or sent, only compared within the process that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllowListDigest {
    entries: usize,
    digest: u64,
}

impl AllowListDigest {
    /// The digest of `entries` (order-free; an empty list gives the default).
    pub fn of<S: AsRef<str>>(entries: &[S]) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        if entries.is_empty() {
            return Self::default();
        }
        let mut sorted: Vec<&str> = entries.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
        for entry in &sorted {
            entry.hash(&mut hasher);
        }
        Self {
            entries: sorted.len(),
            digest: hasher.finish(),
        }
    }

    /// How many entries the list has.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True for no list (a credentials leg, or an outbound one).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// Why the infrastructure did not do what was asked. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// Another trunk (of any account) already receives calls for the number.
    #[error("another trunk already receives calls for this number")]
    NumberTaken,
    /// The request was refused as it stands; asking again will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The registry's own credentials were refused.
    #[error("the voice infrastructure refused the registry's credentials: {0}")]
    Unauthorized(String),
    /// No answer, a timeout, or a "not now" (rate limit, server error): worth asking later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future of the port.
pub type ProvisionFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProvisionError>> + Send + 'a>>;

/// The voice infrastructure: creates and removes legs, and says which it holds.
///
/// Implementations bound every call in time and retry what is worth retrying; a create whose
/// answer was lost may have happened anyway, so a caller that gets an error after a create
/// must expect a leg it does not know of (the reconciler removes such orphans).
pub trait VoiceInfrastructure: Send + Sync {
    /// A name for logs (`livekit`).
    fn name(&self) -> &'static str;

    /// Creates `leg`; gives its id. `NumberTaken` when another inbound leg has the number.
    fn create_inbound<'a>(&'a self, leg: &'a InboundLeg) -> ProvisionFuture<'a, LegId>;

    /// Creates `leg`; gives its id.
    fn create_outbound<'a>(&'a self, leg: &'a OutboundLeg) -> ProvisionFuture<'a, LegId>;

    /// Removes leg `id`; a leg the infrastructure does not know counts as removed.
    fn delete_leg<'a>(&'a self, kind: LegKind, id: &'a LegId) -> ProvisionFuture<'a, ()>;

    /// Every leg the infrastructure holds, the registry's and others'.
    fn list_legs(&self) -> ProvisionFuture<'_, Vec<RemoteLeg>>;

    /// The inbound legs that hold `number`, the registry's and others'. The default lists
    /// every leg; an infrastructure that can look a number up answers without doing so.
    fn inbound_legs_holding<'a>(&'a self, number: &'a str) -> ProvisionFuture<'a, Vec<RemoteLeg>> {
        Box::pin(async move {
            let legs = self.list_legs().await?;
            Ok(legs
                .into_iter()
                .filter(|leg| {
                    leg.kind == LegKind::Inbound && leg.numbers.iter().any(|held| held == number)
                })
                .collect())
        })
    }

    /// True when the infrastructure writes the called number of an outbound call in the
    /// trunk's calling format itself (Kamailio), so that a change of `sip_calling_format` or
    /// `country_code` must reach it; false when the platform does (LiveKit).
    fn writes_called_numbers(&self) -> bool {
        false
    }

    /// Gives outbound leg `id` the calling format and country of `leg`, in place: the leg
    /// keeps its id (the contract: those fields re-create nothing). Only called when
    /// [`VoiceInfrastructure::writes_called_numbers`]; the default does nothing.
    fn restyle_outbound<'a>(
        &'a self,
        id: &'a LegId,
        leg: &'a OutboundLeg,
    ) -> ProvisionFuture<'a, ()> {
        let _ = (id, leg);
        Box::pin(async { Ok(()) })
    }

    /// Whether the infrastructure answers now (for readiness reports): one cheap call, no
    /// retry. The default says yes without asking (an infrastructure reached only through
    /// the calls above shows its state there).
    fn check_reachable(&self) -> ProvisionFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// True when [`VoiceInfrastructure::replace_inbound`] swaps inbound legs with no gap
    /// (Kamailio); false when an inbound leg must be removed before its replacement can hold
    /// the number (LiveKit refuses two inbound trunks with one number).
    fn replaces_inbound_in_place(&self) -> bool {
        false
    }

    /// Puts `leg` in force in place of inbound leg `old`, make before break: at every
    /// instant the one or the other takes the calls, and on an error `old` is still in
    /// force, untouched, and nothing of `leg` is. `NumberTaken` when a leg other than `old`
    /// has the number. Only called when [`VoiceInfrastructure::replaces_inbound_in_place`];
    /// the default refuses.
    fn replace_inbound<'a>(
        &'a self,
        old: &'a LegId,
        leg: &'a InboundLeg,
    ) -> ProvisionFuture<'a, LegId> {
        let _ = (old, leg);
        Box::pin(async {
            Err(ProvisionError::Refused(
                "this infrastructure cannot replace an inbound leg in place".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(auth: &str) -> SipTrunk {
        crate::fixtures::stored_trunk(auth)
    }

    #[test]
    fn a_credentials_trunk_gets_a_challenging_inbound_leg_and_an_outbound_leg() {
        let trunk = trunk("auth");
        let inbound = InboundLeg::of(&trunk);
        assert_eq!(inbound.number, "+14155551234");
        match &inbound.access {
            InboundAccess::Credentials { username, password } => {
                assert_eq!(username, "acme_user");
                assert_eq!(password.expose_secret(), "Secret-Pass-1");
            }
            other => panic!("{other:?}"),
        }
        let outbound = OutboundLeg::of(&trunk);
        assert_eq!(
            (
                outbound.address.as_str(),
                outbound.username.as_str(),
                outbound.fixed_ip
            ),
            ("sip.carrier.example", "acme_user", true)
        );
    }

    #[test]
    fn an_ip_trunk_gets_an_allow_list_inbound_leg() {
        let inbound = InboundLeg::of(&trunk("ip"));
        assert_eq!(
            inbound.access,
            InboundAccess::AllowList(vec!["198.51.100.0/24".into(), "203.0.113.9".into()])
        );
    }

    #[test]
    fn debug_never_shows_a_password() {
        let trunk = trunk("auth");
        let shown = format!("{:?} {:?}", InboundLeg::of(&trunk), OutboundLeg::of(&trunk));
        assert!(!shown.contains("Secret-Pass-1"), "{shown}");
    }

    #[test]
    fn a_remote_leg_matches_only_what_it_serves() {
        let trunk = trunk("ip");
        let wanted = InboundLeg::of(&trunk);
        let mut remote = RemoteLeg {
            id: LegId::new("ST_1").unwrap(),
            kind: LegKind::Inbound,
            owner: None,
            numbers: vec!["+14155551234".into()],
            address: String::new(),
            username: String::new(),
            allow_list: AllowListDigest::of(&["203.0.113.9", "198.51.100.0/24"]),
            dialing: None,
        };
        assert!(
            remote.matches_inbound(&wanted),
            "order of the list does not matter"
        );
        remote.allow_list = AllowListDigest::of(&["203.0.113.9"]);
        assert!(!remote.matches_inbound(&wanted));
        let outbound = OutboundLeg::of(&trunk);
        let remote = RemoteLeg {
            kind: LegKind::Outbound,
            address: "sip.carrier.example".into(),
            username: "acme_user".into(),
            allow_list: AllowListDigest::default(),
            ..remote
        };
        assert!(remote.matches_outbound(&outbound));
        assert!(!remote.matches_inbound(&wanted));
    }
}
