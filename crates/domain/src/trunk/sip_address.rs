//! `SipAddress`: the carrier's SIP server, a bare host (name, IPv4 or IPv6).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use compact_str::CompactString;

use crate::FieldError;

/// The host of the carrier's SIP server: an RFC 1123 hostname, an IPv4 address or an IPv6
/// address, stored lower-case (IPv6 in its canonical compressed form). A port, a `sip:`
/// scheme, a user part, parameters, a path, brackets or spaces are refused, each with a
/// sentence saying which.
///
/// ```
/// use domain::SipAddress;
///
/// assert_eq!(SipAddress::parse("SIP.Example.COM").unwrap().as_str(), "sip.example.com");
/// assert_eq!(SipAddress::parse("2001:DB8:0:0::1").unwrap().as_str(), "2001:db8::1");
/// assert!(SipAddress::parse("sip.example.com:5060").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipAddress(CompactString);

impl SipAddress {
    /// Longest hostname (RFC 1123, without a trailing dot).
    pub const MAX_LEN: usize = 253;

    /// Checks `raw` and gives its canonical lower-case form.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new("SIP server address is required."));
        }
        if let Some(reason) = forbidden_part(raw) {
            return Err(FieldError::new(format!(
                "The SIP server address must be a bare host name or IP address: {reason}."
            )));
        }
        if let Ok(v4) = raw.parse::<Ipv4Addr>() {
            return Ok(Self(compact_str::format_compact!("{v4}")));
        }
        if let Ok(v6) = raw.parse::<Ipv6Addr>() {
            return Ok(Self(compact_str::format_compact!("{v6}")));
        }
        if raw.contains(':') {
            return Err(FieldError::new(if is_host_and_port(raw) {
                "The SIP server address must be a bare host name or IP address: no port."
            } else {
                "The SIP server address is not a valid IPv6 address."
            }));
        }
        let lower = if raw.bytes().any(|b| b.is_ascii_uppercase()) {
            CompactString::from(raw.to_ascii_lowercase())
        } else {
            CompactString::from(raw)
        };
        if is_hostname(&lower) {
            Ok(Self(lower))
        } else {
            Err(FieldError::new(
                "The SIP server address must be a valid host name (letters, digits and hyphens in dot-separated labels of at most 63 characters), an IPv4 address or an IPv6 address.",
            ))
        }
    }

    /// [`SipAddress::parse`] of a value read back from storage, kept as it is (no copy) when
    /// it is already in canonical form, as every value this service stored is.
    pub fn from_stored(raw: impl Into<CompactString>) -> Result<Self, FieldError> {
        let raw = raw.into();
        // A lower-case host name is its own canonical form; it cannot be an IP address (its
        // last label is not all digits, and it holds no `:`).
        if is_hostname(&raw) {
            Ok(Self(raw))
        } else {
            Self::parse(&raw)
        }
    }

    /// The host as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names the first part of a SIP URI or URL found in `raw`, if any.
fn forbidden_part(raw: &str) -> Option<&'static str> {
    let starts_with = |scheme: &str| {
        raw.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    };
    if raw.contains("://") || starts_with("sip:") || starts_with("sips:") {
        Some("no scheme such as sip:")
    } else if raw.contains('@') {
        Some("no user part (@)")
    } else if raw.contains(';') {
        Some("no parameters (;)")
    } else if raw.contains('/') {
        Some("no path (/)")
    } else if raw.contains('[') || raw.contains(']') {
        Some("no brackets around an IPv6 address")
    } else if raw.chars().any(char::is_whitespace) {
        Some("no spaces")
    } else {
        None
    }
}

fn is_host_and_port(raw: &str) -> bool {
    match raw.rsplit_once(':') {
        Some((host, port)) => {
            !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// RFC 1123 host name in lower case; the last label must not be all digits, so that a
/// mistyped IPv4 address such as `10.0.0.256` is not taken for a name.
fn is_hostname(host: &str) -> bool {
    if host.is_empty() || host.len() > SipAddress::MAX_LEN {
        return false;
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.split('.').all(label_ok)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for SipAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_address_reads_as_parse_would_read_it() {
        for raw in [
            "sip.example.com",
            "SIP.Example.COM",
            "10.0.0.1",
            "2001:DB8:0:0::1",
            "::1",
            "a-b.c1",
            "host",
            "10.0.0.256",
            "sip.example.com:5060",
            "sip:host",
            "-bad.example",
            "",
        ] {
            assert_eq!(
                SipAddress::from_stored(raw.to_owned()),
                SipAddress::parse(raw),
                "{raw:?}"
            );
        }
    }

    fn parse(raw: &str) -> Result<String, String> {
        SipAddress::parse(raw)
            .map(|address| address.as_str().to_owned())
            .map_err(|error| error.message().to_owned())
    }

    #[test]
    fn a_hostname_is_accepted_and_lower_cased() {
        assert_eq!(
            parse("Sip.Carrier-1.Example.COM").unwrap(),
            "sip.carrier-1.example.com"
        );
    }

    #[test]
    fn a_single_label_hostname_is_accepted() {
        assert_eq!(parse("pbx").unwrap(), "pbx");
    }

    #[test]
    fn an_ipv4_address_is_accepted() {
        assert_eq!(parse("203.0.113.10").unwrap(), "203.0.113.10");
    }

    #[test]
    fn an_ipv6_address_is_stored_in_canonical_lower_case() {
        assert_eq!(
            parse("2001:0DB8:0000:0000:0000:0000:0000:0001").unwrap(),
            "2001:db8::1"
        );
        assert_eq!(parse("::1").unwrap(), "::1");
    }

    #[test]
    fn an_empty_address_uses_the_documented_required_message() {
        assert_eq!(parse("").unwrap_err(), "SIP server address is required.");
    }

    #[test]
    fn a_port_is_refused_with_a_message_naming_it() {
        assert!(parse("sip.example.com:5060")
            .unwrap_err()
            .contains("no port"));
        assert!(parse("203.0.113.10:5060").unwrap_err().contains("no port"));
    }

    #[test]
    fn a_scheme_is_refused() {
        for raw in [
            "sip:sip.example.com",
            "SIPS:host",
            "udp://host",
            "https://x.example",
        ] {
            assert!(parse(raw).unwrap_err().contains("scheme"), "{raw}");
        }
    }

    #[test]
    fn a_user_part_parameters_and_paths_are_refused() {
        assert!(parse("user@sip.example.com")
            .unwrap_err()
            .contains("user part"));
        assert!(parse("sip.example.com;transport=tcp")
            .unwrap_err()
            .contains("parameters"));
        assert!(parse("sip.example.com/path").unwrap_err().contains("path"));
    }

    #[test]
    fn spaces_anywhere_are_refused() {
        for raw in [" sip.example.com", "sip.example.com ", "sip example.com"] {
            assert!(parse(raw).unwrap_err().contains("spaces"), "{raw:?}");
        }
    }

    #[test]
    fn a_bracketed_ipv6_address_is_refused() {
        assert!(parse("[2001:db8::1]").unwrap_err().contains("brackets"));
    }

    #[test]
    fn malformed_hostnames_are_refused() {
        for raw in [
            "-bad.example.com",
            "bad-.example.com",
            "bad..example.com",
            ".example.com",
            "example.com.",
            "under_score.example.com",
            "exa!mple.com",
            "bücher.example",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn a_label_longer_than_63_or_a_name_longer_than_253_is_refused() {
        assert!(parse(&format!("{}.com", "a".repeat(63))).is_ok());
        assert!(parse(&format!("{}.com", "a".repeat(64))).is_err());
        let long = vec!["a".repeat(50); 5].join(".");
        assert!(long.len() > 253);
        assert!(parse(&long).is_err());
    }

    #[test]
    fn a_malformed_ipv4_address_is_not_taken_for_a_hostname() {
        for raw in ["10.0.0.256", "10.0.0", "1.2.3.4.5", "010.0.0.1"] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn a_malformed_ipv6_address_says_so() {
        assert_eq!(
            parse("2001:db8:::1").unwrap_err(),
            "The SIP server address is not a valid IPv6 address."
        );
        assert!(parse("fe80::1%eth0").is_err());
    }
}
