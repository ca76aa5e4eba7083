//! Inbound authorization: by SIP credentials, or by a non-empty IP allow-list.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::{FieldError, ValidationErrors};

/// The field the allow-list is reported under; its entries are `allowed_inbound_ips.N`.
pub const ALLOWED_IPS_FIELD: &str = "allowed_inbound_ips";

/// The contract's sentence for an `ip` trunk without a list.
pub const ALLOW_LIST_REQUIRED: &str =
    "At least one allowed IP address is required when authorization type is \"ip\".";

/// The wire value of `inbound_authorization_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationType {
    /// Inbound calls authenticate with the trunk's username and password.
    Auth,
    /// Inbound calls are accepted from the allow-list's addresses.
    Ip,
}

impl AuthorizationType {
    /// Accepts exactly `auth` or `ip`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "auth" => Ok(Self::Auth),
            "ip" => Ok(Self::Ip),
            _ => Err(FieldError::new(
                "The inbound authorization type must be one of: auth, ip.",
            )),
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Ip => "ip",
        }
    }
}

impl fmt::Display for AuthorizationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty list of at most 100 IPv4/IPv6 addresses and CIDR ranges, in canonical form
/// (a range's host bits cleared, a full-length range written as its address), duplicates
/// removed keeping the first one seen. An IPv4 range is a /16 or narrower and an IPv6 range a
/// /32 or narrower: wider ones would let a few entries (`0.0.0.0/1` + `128.0.0.0/1`) admit
/// every address.
///
/// Addresses follow the standard library's strict syntax (no leading zeros in IPv4 octets,
/// which other tools read as octal); a prefix length is 1 to 3 decimal digits without a
/// leading zero. The limit counts entries as sent, duplicates included, so that it can be
/// stated as `maxItems` in the published schema.
///
/// ```
/// use domain::AllowedIps;
///
/// let ips = AllowedIps::parse(&["203.0.113.7/24", "2001:DB8::1", "203.0.113.0/24", "198.51.100.1/32"]).unwrap();
/// assert_eq!(ips.to_strings(), ["203.0.113.0/24", "2001:db8::1", "198.51.100.1"]);
/// assert!(AllowedIps::parse(&["0.0.0.0/0"]).is_err());
/// assert!(AllowedIps::parse(&["0.0.0.0/1", "128.0.0.0/1"]).is_err());
/// assert!(AllowedIps::parse(&["10.0.0.0/16", "2001:db8::/32"]).is_ok());
/// assert!(AllowedIps::parse::<&str>(&[]).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AllowedIps(Vec<IpNet>);

impl AllowedIps {
    /// Most entries a list may hold.
    pub const MAX_ENTRIES: usize = 100;

    /// Parses every entry; failures are reported as `allowed_inbound_ips.N` (N from 0) and
    /// list-wide failures (empty, too long) as `allowed_inbound_ips`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationErrors> {
        Self::parse_with(entries, RangeBound::Contract)
    }

    /// Reads a list written by an earlier version, which allowed ranges wider than /16 or /32
    /// (but never /0): such a trunk keeps loading and keeps its list until a client changes
    /// it, when the list is checked as on create. Everything else is checked as by `parse`.
    pub fn from_stored<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationErrors> {
        Self::parse_with(entries, RangeBound::Stored)
    }

    fn parse_with<S: AsRef<str>>(
        entries: &[S],
        bound: RangeBound,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let mut networks: Vec<IpNet> = Vec::with_capacity(entries.len().min(Self::MAX_ENTRIES));
        for (index, entry) in entries.iter().enumerate() {
            // The field's name is only made for an error: every stored list is read this way.
            match parse_entry(entry.as_ref(), bound) {
                Ok(network) => {
                    if !networks.contains(&network) {
                        networks.push(network);
                    }
                }
                Err(error) => errors.add(format!("{ALLOWED_IPS_FIELD}.{index}"), error.message()),
            }
        }
        if entries.is_empty() {
            errors.add(ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED);
        } else if entries.len() > Self::MAX_ENTRIES {
            errors.add(
                ALLOWED_IPS_FIELD,
                "The allowed inbound ips may not have more than 100 items.",
            );
        }
        errors.into_result(|| Self(networks))
    }

    /// The entries in canonical form.
    pub fn iter(&self) -> impl Iterator<Item = &IpNet> {
        self.0.iter()
    }

    /// How many entries there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an allow-list is never empty. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as the strings shown to clients and stored.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(canonical).collect()
    }

    /// The entries as [`AllowedIps::to_strings`] writes them, each written where it is
    /// displayed (no string made per entry).
    pub fn shown(&self) -> impl ExactSizeIterator<Item = ShownEntry<'_>> {
        self.0.iter().map(ShownEntry)
    }
}

/// An allow-list entry as shown: an address alone when the range is a single address
/// (`10.0.0.1`), a range otherwise (`10.0.0.0/24`).
#[derive(Debug, Clone, Copy)]
pub struct ShownEntry<'a>(&'a IpNet);

impl fmt::Display for ShownEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            fmt::Display::fmt(&self.0.addr(), f)
        } else {
            fmt::Display::fmt(self.0, f)
        }
    }
}

/// How wide a range may be.
#[derive(Clone, Copy)]
enum RangeBound {
    /// The contract's bound: IPv4 /16, IPv6 /32.
    Contract,
    /// Anything but /0, as stored before the bound existed.
    Stored,
}

/// The contract's sentence for a range wider than /16 (IPv4) or /32 (IPv6).
pub const RANGE_TOO_WIDE: &str =
    "Each allowed IP range must be at most a /16 (IPv4) or a /32 (IPv6).";

/// The widest range an IPv4 entry may be.
pub const WIDEST_IPV4_PREFIX: u8 = 16;
/// The widest range an IPv6 entry may be.
pub const WIDEST_IPV6_PREFIX: u8 = 32;

fn parse_entry(raw: &str, bound: RangeBound) -> Result<IpNet, FieldError> {
    let invalid = || {
        FieldError::new(
            "Each allowed inbound IP must be a valid IPv4 or IPv6 address or CIDR range.",
        )
    };
    // ipnet's own parser accepts leading zeros (`010.0.0.0/08`) where `IpAddr` refuses them,
    // so the address and the prefix are read separately to give one strict syntax.
    let (address, prefix) = match raw.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (raw, None),
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let max_prefix = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max_prefix,
        Some(digits) => parse_prefix(digits)
            .filter(|length| *length <= max_prefix)
            .ok_or_else(invalid)?,
    };
    let network = IpNet::new(address, prefix).map_err(|_| invalid())?.trunc();
    let widest = match (bound, network) {
        (RangeBound::Contract, IpNet::V4(_)) => WIDEST_IPV4_PREFIX,
        (RangeBound::Contract, IpNet::V6(_)) => WIDEST_IPV6_PREFIX,
        (RangeBound::Stored, _) => 1,
    };
    if network.prefix_len() < widest {
        return Err(FieldError::new(RANGE_TOO_WIDE));
    }
    Ok(network)
}

/// A prefix length: 1 to 3 ASCII digits, no leading zero (but `0` itself, refused later as a
/// range too wide).
fn parse_prefix(digits: &str) -> Option<u8> {
    let well_formed = (1..=3).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    well_formed.then(|| digits.parse().ok()).flatten()
}

fn canonical(network: &IpNet) -> String {
    ShownEntry(network).to_string()
}

impl fmt::Debug for AllowedIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_strings()).finish()
    }
}

/// How inbound calls to a trunk are authorized. An `ip` trunk always has a list; an `auth`
/// trunk never has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InboundAuthorization {
    /// The trunk's SIP username and password (`auth`).
    Credentials,
    /// The source address must be on the list (`ip`).
    AllowList(AllowedIps),
}

impl InboundAuthorization {
    /// The wire value of `inbound_authorization_type`.
    pub fn kind(&self) -> AuthorizationType {
        match self {
            Self::Credentials => AuthorizationType::Auth,
            Self::AllowList(_) => AuthorizationType::Ip,
        }
    }

    /// The allow-list, for an `ip` trunk.
    pub fn allowed_ips(&self) -> Option<&AllowedIps> {
        match self {
            Self::Credentials => None,
            Self::AllowList(ips) => Some(ips),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(entries: &[&str]) -> Vec<String> {
        AllowedIps::parse(entries).unwrap().to_strings()
    }

    #[test]
    fn authorization_type_accepts_exactly_auth_and_ip() {
        assert_eq!(
            AuthorizationType::parse("auth"),
            Ok(AuthorizationType::Auth)
        );
        assert_eq!(AuthorizationType::parse("ip"), Ok(AuthorizationType::Ip));
        for raw in ["", "IP", "Auth", "credentials", "both"] {
            assert!(AuthorizationType::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn ipv4_and_ipv6_addresses_are_accepted() {
        assert_eq!(
            strings(&["203.0.113.5", "2001:db8::5"]),
            ["203.0.113.5", "2001:db8::5"]
        );
    }

    #[test]
    fn cidr_ranges_are_accepted_with_host_bits_cleared() {
        assert_eq!(
            strings(&["10.1.2.3/16", "2001:db8::1/32"]),
            ["10.1.0.0/16", "2001:db8::/32"]
        );
    }

    #[test]
    fn a_full_length_range_is_written_as_its_address() {
        assert_eq!(
            strings(&["198.51.100.1/32", "2001:db8::1/128"]),
            ["198.51.100.1", "2001:db8::1"]
        );
    }

    #[test]
    fn ipv6_is_lower_cased_and_compressed() {
        assert_eq!(
            strings(&["2001:0DB8:0000:0000:0000:0000:0000:00AB"]),
            ["2001:db8::ab"]
        );
    }

    #[test]
    fn duplicates_are_removed_keeping_first_seen_order() {
        assert_eq!(
            strings(&[
                "198.51.100.2",
                "198.51.100.1",
                "198.51.100.2/32",
                "198.51.100.1"
            ]),
            ["198.51.100.2", "198.51.100.1"]
        );
    }

    #[test]
    fn an_empty_list_gets_the_documented_message() {
        let errors = AllowedIps::parse::<&str>(&[]).unwrap_err();
        assert_eq!(
            errors.messages("allowed_inbound_ips"),
            [ALLOW_LIST_REQUIRED]
        );
    }

    #[test]
    fn every_bad_entry_is_reported_under_its_index() {
        let errors = AllowedIps::parse(&["198.51.100.1", "not-an-ip", "300.1.1.1", "10.0.0.0/33"])
            .unwrap_err();
        let fields: Vec<&str> = errors.fields().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                "allowed_inbound_ips.1",
                "allowed_inbound_ips.2",
                "allowed_inbound_ips.3"
            ]
        );
    }

    #[test]
    fn ranges_covering_everyone_are_refused() {
        for raw in ["0.0.0.0/0", "::/0", "10.0.0.0/0"] {
            let errors = AllowedIps::parse(&[raw]).unwrap_err();
            assert_eq!(
                errors.messages("allowed_inbound_ips.0"),
                [RANGE_TOO_WIDE],
                "{raw}"
            );
        }
    }

    #[test]
    fn ranges_wider_than_a_slash_16_or_a_slash_32_are_refused_each_under_its_index() {
        let errors =
            AllowedIps::parse(&["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]).unwrap_err();
        for index in 0..4 {
            let field = format!("allowed_inbound_ips.{index}");
            assert_eq!(errors.messages(&field), [RANGE_TOO_WIDE], "{field}");
        }
        for raw in ["10.0.0.0/15", "2001:db8::/31", "10.0.0.0/8"] {
            assert!(AllowedIps::parse(&[raw]).is_err(), "{raw}");
        }
        assert_eq!(
            strings(&["10.0.0.0/16", "2001:db8::/32"]),
            ["10.0.0.0/16", "2001:db8::/32"]
        );
    }

    #[test]
    fn a_stored_list_from_before_the_bound_still_loads_but_never_with_a_slash_0() {
        let stored = AllowedIps::from_stored(&["10.0.0.0/8", "0.0.0.0/1"]).unwrap();
        assert_eq!(stored.to_strings(), ["10.0.0.0/8", "0.0.0.0/1"]);
        assert!(AllowedIps::from_stored(&["0.0.0.0/0"]).is_err());
        assert!(AllowedIps::from_stored(&["010.0.0.0/8"]).is_err());
    }

    #[test]
    fn a_hundred_entries_are_accepted_and_a_hundred_and_one_refused() {
        let hundred: Vec<String> = (0..100).map(|i| format!("10.0.{i}.1")).collect();
        assert_eq!(AllowedIps::parse(&hundred).unwrap().len(), 100);
        let more: Vec<String> = (0..101).map(|i| format!("10.0.{i}.1")).collect();
        assert!(AllowedIps::parse(&more)
            .unwrap_err()
            .contains("allowed_inbound_ips"));
    }

    #[test]
    fn the_limit_counts_entries_as_sent_duplicates_included() {
        let mut entries: Vec<String> = (0..100).map(|i| format!("10.0.{i}.1")).collect();
        entries.push("10.0.0.1".into());
        assert!(AllowedIps::parse(&entries)
            .unwrap_err()
            .contains("allowed_inbound_ips"));
    }

    #[test]
    fn leading_zeros_in_octets_and_prefixes_are_refused() {
        for raw in [
            "010.0.0.1",
            "010.0.0.0/8",
            "10.0.0.0/08",
            "2001:db8::/032",
            "10.0.0.0/00",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/1000",
        ] {
            assert!(AllowedIps::parse(&[raw]).is_err(), "{raw:?}");
        }
        assert_eq!(
            strings(&["10.0.0.0/16", "::ffff:10.0.0.1/128"]),
            ["10.0.0.0/16", "::ffff:10.0.0.1"]
        );
    }

    #[test]
    fn hostnames_ports_zones_and_padding_are_refused() {
        for raw in [
            "example.com",
            "10.0.0.1:5060",
            "fe80::1%eth0",
            " 10.0.0.1",
            "",
            "10.0.0.1/",
            "/24",
        ] {
            assert!(AllowedIps::parse(&[raw]).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn the_inbound_authorization_reports_its_kind_and_list() {
        let list = AllowedIps::parse(&["198.51.100.1"]).unwrap();
        let by_ip = InboundAuthorization::AllowList(list.clone());
        assert_eq!(by_ip.kind(), AuthorizationType::Ip);
        assert_eq!(by_ip.allowed_ips(), Some(&list));
        assert_eq!(
            InboundAuthorization::Credentials.kind(),
            AuthorizationType::Auth
        );
        assert_eq!(InboundAuthorization::Credentials.allowed_ips(), None);
    }
}
