//! "Why doesn't my trunk take calls?", second half: what the SIP edge would do with a call,
//! decided with the edge's own rules ([`crate::edge`]) over one account's trunks only
//! (docs/diagnostics.md). Pure: the caller reads the trunks and checks a password through a
//! closure, so that a password is opened only for the one trunk the call reaches.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::edge::{called_key, carrier_uri, number_key, AllowRow, EdgeDialing};
use crate::{InboundAuthorization, SipPassword, SipTrunk, TrunkId, TrunkType};

/// Whose rules a simulation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulationRules {
    /// The Kamailio edge's (`deploy/kamailio/kamailio.cfg`), proven against the real edge.
    Kamailio,
    /// LiveKit's documented inbound matching (numbers, allowed addresses, credentials).
    LiveKit,
    /// No infrastructure: the stored trunk's rules alone (those the Kamailio edge applies).
    Stored,
}

impl SimulationRules {
    /// The rules of the infrastructure named `name` (`None`: no infrastructure).
    pub fn of(name: Option<&str>) -> Self {
        match name {
            Some("kamailio") => Self::Kamailio,
            Some(_) => Self::LiveKit,
            None => Self::Stored,
        }
    }

    /// `kamailio`, `livekit` or `stored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kamailio => "kamailio",
            Self::LiveKit => "livekit",
            Self::Stored => "stored",
        }
    }

    /// The code of a digest challenge: Kamailio's edge is a proxy (407), LiveKit a user
    /// agent (401).
    fn challenge_code(self) -> u16 {
        match self {
            Self::LiveKit => 401,
            Self::Kamailio | Self::Stored => 407,
        }
    }

    /// The code for a source outside an allow-list: the edge finds the trunk by number, then
    /// forbids (403); LiveKit matches number and source together, so no trunk matches (404).
    fn not_allowed_code(self) -> u16 {
        match self {
            Self::LiveKit => 404,
            Self::Kamailio | Self::Stored => 403,
        }
    }
}

/// A password offered to the simulator: never stored, never shown (`Debug` hides it),
/// compared in constant time.
#[derive(Clone)]
pub struct OfferedPassword(String);

impl OfferedPassword {
    /// Wraps `password`.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// Whether it is `stored`, in time that depends on neither (both are hashed first, so
    /// not even the length is compared directly).
    pub fn matches(&self, stored: &SipPassword) -> bool {
        let offered = Sha256::digest(self.0.as_bytes());
        let stored = Sha256::digest(stored.expose_secret().as_bytes());
        offered.ct_eq(&stored).into()
    }
}

impl fmt::Debug for OfferedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OfferedPassword([redacted])")
    }
}

/// An INVITE from a carrier.
#[derive(Debug, Clone)]
pub struct InboundCall {
    /// Where it comes from.
    pub source: IpAddr,
    /// The called number: the Request-URI's user part, or the whole `sip:` URI.
    pub to: String,
    /// The digest username it answers a challenge with, if any.
    pub username: Option<String>,
    /// The password it answers with, if any.
    pub password: Option<OfferedPassword>,
}

/// What the edge does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Inbound: relayed to the platform.
    Admitted,
    /// Inbound: answered with a digest challenge; credentials would follow.
    Challenged,
    /// Refused with [`Simulation::sip_code`].
    Refused,
    /// Outbound: sent to the carrier.
    Sent,
}

impl Verdict {
    /// `admitted`, `challenged`, `refused` or `sent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admitted => "admitted",
            Self::Challenged => "challenged",
            Self::Refused => "refused",
            Self::Sent => "sent",
        }
    }
}

/// A stored number close to a called one that matched none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearNumber {
    /// The trunk.
    pub trunk: TrunkId,
    /// Its number as stored.
    pub phone_number: String,
    /// How the called number differs, in a sentence.
    pub why: String,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// The rules followed.
    pub rules: SimulationRules,
    /// What the edge does.
    pub verdict: Verdict,
    /// The SIP code the edge answers with itself (refused, challenged; outbound refused).
    pub sip_code: Option<u16>,
    /// The trunk the call goes through.
    pub trunk: Option<TrunkId>,
    /// Inbound: the number as the edge reads it (its key).
    pub called_number: Option<String>,
    /// Inbound, no trunk found: the closest stored numbers, closest first (at most 3).
    pub closest: Vec<NearNumber>,
    /// Outbound: the carrier's Request-URI.
    pub request_uri: Option<String>,
    /// Outbound: the user part of the To header the carrier receives.
    pub to_user: Option<String>,
    /// Outbound: the username that answers the carrier's challenge (never a password).
    pub auth_username: Option<String>,
    /// Outbound: whether the call leaves through the fixed-IP outbound proxy.
    pub outbound_proxy: Option<bool>,
    /// Why, in plain sentences.
    pub reasons: Vec<String>,
}

impl Simulation {
    fn new(rules: SimulationRules, verdict: Verdict, sip_code: Option<u16>) -> Self {
        Self {
            rules,
            verdict,
            sip_code,
            trunk: None,
            called_number: None,
            closest: Vec::new(),
            request_uri: None,
            to_user: None,
            auth_username: None,
            outbound_proxy: None,
            reasons: Vec::new(),
        }
    }
}

/// The user part of `to`: `sip:USER@host;params`, `sips:`, `tel:USER` or a bare `USER`.
pub fn request_user(to: &str) -> &str {
    let trimmed = to.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest = ["sip:", "sips:", "tel:"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
        .map_or(trimmed, |scheme| &trimmed[scheme.len()..]);
    let rest = rest.split('@').next().unwrap_or(rest);
    rest.split(';').next().unwrap_or(rest)
}

/// Most allow-list entries quoted in a reason.
const QUOTED_ENTRIES: usize = 5;

/// What the edge does with `call`, given the account's `trunks` (by id ascending, as
/// listed). `password_matches` opens the reached trunk's password and compares the offered
/// one ([`OfferedPassword::matches`]); it is called only for an `auth` trunk whose username
/// was offered.
pub fn simulate_inbound<P>(
    rules: SimulationRules,
    trunks: &[SipTrunk<P>],
    call: &InboundCall,
    password_matches: impl FnOnce(TrunkId, &OfferedPassword) -> bool,
) -> Simulation {
    let user = request_user(&call.to);
    let Some(key) = called_key(user) else {
        let mut refused = Simulation::new(rules, Verdict::Refused, Some(404));
        refused.reasons.push(format!(
            "The edge cannot read {user:?} as a number: after `+` it takes 1 to 64 letters, digits and * # . _ -, so it answers 404."
        ));
        return refused;
    };
    // Keys are unique on an infrastructure; with none, the oldest trunk with the number.
    let Some(trunk) = trunks
        .iter()
        .find(|trunk| number_key(trunk.settings.phone_number.as_str()).as_deref() == Some(&key))
    else {
        let mut refused = Simulation::new(rules, Verdict::Refused, Some(404));
        refused.called_number = Some(key.clone());
        refused.reasons.push(format!(
            "The edge reads the called number as {key} (without `+`), and none of your trunks has that number: it answers 404."
        ));
        refused.closest = closest_numbers(&key, trunks);
        if refused.closest.is_empty() {
            refused
                .reasons
                .push("No stored number of yours is close to it.".into());
        }
        return refused;
    };
    let found = |verdict, code: Option<u16>, reason: String| {
        let mut simulation = Simulation::new(rules, verdict, code);
        simulation.trunk = Some(trunk.id);
        simulation.called_number = Some(key.clone());
        simulation.reasons.push(format!(
            "The edge reads the called number as {key}: trunk {} ({}) has it.",
            trunk.id,
            trunk.settings.phone_number.as_str()
        ));
        simulation.reasons.push(reason);
        simulation
    };
    match &trunk.settings.inbound_authorization {
        InboundAuthorization::AllowList(list) => {
            let rows: Vec<AllowRow> = list
                .iter()
                .map(|network| AllowRow {
                    ip: network.addr(),
                    mask: network.prefix_len(),
                })
                .collect();
            match crate::edge::admitting_entry(&rows, call.source) {
                Some(row) => found(
                    Verdict::Admitted,
                    None,
                    format!(
                        "The source {} is in the allow-list entry {}: the call goes through.",
                        call.source,
                        row.entry()
                    ),
                ),
                None => {
                    let mut quoted: Vec<String> = rows
                        .iter()
                        .take(QUOTED_ENTRIES)
                        .map(AllowRow::entry)
                        .collect();
                    if rows.len() > QUOTED_ENTRIES {
                        quoted.push(format!("and {} more", rows.len() - QUOTED_ENTRIES));
                    }
                    found(
                        Verdict::Refused,
                        Some(rules.not_allowed_code()),
                        format!(
                            "The source {} is in none of the trunk's allow-list entries ({}): add an entry that includes it, such as {}.",
                            call.source,
                            quoted.join(", "),
                            call.source
                        ),
                    )
                }
            }
        }
        InboundAuthorization::Credentials => {
            let code = rules.challenge_code();
            match &call.username {
                None => found(
                    Verdict::Challenged,
                    Some(code),
                    format!(
                        "The trunk takes credentials, and the call offers none: the edge challenges it ({code}), and the carrier must answer with the trunk's username and password."
                    ),
                ),
                Some(username) if username != trunk.settings.sip_username.as_str() => found(
                    Verdict::Refused,
                    Some(403),
                    format!(
                        "The username {username:?} does not exist on this trunk (its username is {:?}): the edge refuses the answer to its challenge with 403.",
                        trunk.settings.sip_username.as_str()
                    ),
                ),
                Some(_) => {
                    let empty = OfferedPassword::new("");
                    let offered = call.password.as_ref().unwrap_or(&empty);
                    if password_matches(trunk.id, offered) {
                        found(
                            Verdict::Admitted,
                            None,
                            "The username and the password match the trunk's: after the challenge the call goes through.".into(),
                        )
                    } else {
                        found(
                            Verdict::Refused,
                            Some(403),
                            "The username is the trunk's, but the password does not match: the edge refuses the answer to its challenge with 403.".into(),
                        )
                    }
                }
            }
        }
    }
}

/// The stored numbers closest to `key`, closest first, at most 3.
fn closest_numbers<P>(key: &str, trunks: &[SipTrunk<P>]) -> Vec<NearNumber> {
    let mut near: Vec<(usize, NearNumber)> = trunks
        .iter()
        .filter_map(|trunk| {
            let stored = number_key(trunk.settings.phone_number.as_str())?;
            let (distance, why) = how_near(key, &stored, trunk.trunk_type())?;
            Some((
                distance,
                NearNumber {
                    trunk: trunk.id,
                    phone_number: trunk.settings.phone_number.as_str().to_owned(),
                    why,
                },
            ))
        })
        .collect();
    near.sort_by_key(|(distance, number)| (*distance, number.trunk));
    near.into_iter().take(3).map(|(_, number)| number).collect()
}

/// How `called` differs from `stored` (both keys), when it is near: a distance to sort by and
/// a sentence.
fn how_near(called: &str, stored: &str, kind: TrunkType) -> Option<(usize, String)> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if digits(called) && digits(stored) {
        if kind == TrunkType::Extension && called.len() > stored.len() && called.ends_with(stored) {
            return Some((
                1,
                format!(
                    "an extension: the call names the full number {called}, which ends in the extension {stored}; the edge matches the whole number"
                ),
            ));
        }
        if stored.len() > called.len()
            && stored.len() - called.len() <= 3
            && stored.ends_with(called)
        {
            return Some((
                1,
                format!(
                    "the called number lacks the leading {} (a country code or prefix) of the stored number",
                    &stored[..stored.len() - called.len()]
                ),
            ));
        }
        if called.len() > stored.len()
            && called.len() - stored.len() <= 3
            && called.ends_with(stored)
        {
            return Some((
                1,
                format!(
                    "the called number has {} before the stored number",
                    &called[..called.len() - stored.len()]
                ),
            ));
        }
    }
    let distance = edit_distance(called, stored);
    if distance == 0 || distance > 2 {
        return None;
    }
    let why = if called.len() == stored.len() && digits(called) && digits(stored) {
        let differing = called
            .bytes()
            .zip(stored.bytes())
            .filter(|(a, b)| a != b)
            .count();
        if differing == 1 {
            "one digit differs".to_owned()
        } else {
            format!("{differing} digits differ")
        }
    } else if called.eq_ignore_ascii_case(stored) {
        "letters differ in case (the edge matches exactly)".to_owned()
    } else {
        format!("{distance} characters differ")
    };
    Some((1 + distance, why))
}

/// Levenshtein distance; both sides are at most 64 bytes (the key pattern's bound).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// What the edge does with the platform's call to `to` through `trunk`.
pub fn simulate_outbound<P>(rules: SimulationRules, trunk: &SipTrunk<P>, to: &str) -> Simulation {
    let called = request_user(to);
    let settings = &trunk.settings;
    if !called.starts_with('+') {
        let mut refused = Simulation::new(rules, Verdict::Refused, Some(484));
        refused.trunk = Some(trunk.id);
        refused.reasons.push(format!(
            "The platform's calls name E.164 numbers with `+`; {called:?} has none, so the edge answers 484 Address Incomplete."
        ));
        return refused;
    }
    let dialing = EdgeDialing::of(settings.calling_format, settings.country_code);
    let number = dialing.called_number(called);
    let mut sent = Simulation::new(rules, Verdict::Sent, None);
    sent.trunk = Some(trunk.id);
    sent.request_uri = Some(carrier_uri(&number, settings.sip_address.as_str()));
    sent.to_user = Some(match rules {
        // The edge rewrites the Request-URI only; the To header stays the platform's.
        SimulationRules::Kamailio => called.to_owned(),
        SimulationRules::LiveKit | SimulationRules::Stored => number.clone(),
    });
    sent.auth_username = Some(settings.sip_username.as_str().to_owned());
    sent.outbound_proxy = Some(settings.outbound_proxy);
    sent.reasons.push(format!(
        "In the trunk's calling format ({}, country {}), {called} is written {number}.",
        settings.calling_format.as_str(),
        settings.country_code.as_str()
    ));
    sent.reasons.push(format!(
        "If the carrier challenges (401 or 407), the call answers as {:?} with the trunk's password, in the realm the carrier names.",
        settings.sip_username.as_str()
    ));
    sent.reasons.push(if settings.outbound_proxy {
        "outbound_proxy is on: the call leaves through the fixed-IP outbound proxy, so the carrier sees the proxy's address.".into()
    } else {
        "outbound_proxy is off: the call leaves from the voice infrastructure's own addresses.".into()
    });
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_part_is_read_from_a_uri_or_taken_as_it_is() {
        assert_eq!(
            request_user("sip:+14155550100@edge.example;user=phone"),
            "+14155550100"
        );
        assert_eq!(request_user("SIPS:1000@pbx"), "1000");
        assert_eq!(request_user("tel:+4420"), "+4420");
        assert_eq!(request_user(" 1000 "), "1000");
    }

    #[test]
    fn near_numbers_name_the_difference() {
        let near = |called, stored, kind| how_near(called, stored, kind).map(|(_, why)| why);
        assert_eq!(
            near("4155550100", "14155550100", TrunkType::Number).unwrap(),
            "the called number lacks the leading 1 (a country code or prefix) of the stored number"
        );
        assert_eq!(
            near("14155550109", "14155550100", TrunkType::Number).unwrap(),
            "one digit differs"
        );
        assert!(near("14155551000", "1000", TrunkType::Extension)
            .unwrap()
            .starts_with("an extension"));
        assert_eq!(near("99999999", "14155550100", TrunkType::Number), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn an_offered_password_matches_only_its_own_and_hides_in_debug() {
        let stored = SipPassword::parse("Right-Pass-1").unwrap();
        assert!(OfferedPassword::new("Right-Pass-1").matches(&stored));
        assert!(!OfferedPassword::new("Right-Pass-2").matches(&stored));
        assert!(!OfferedPassword::new("").matches(&stored));
        assert!(!format!("{:?}", OfferedPassword::new("Right-Pass-1")).contains("Right"));
    }
}
