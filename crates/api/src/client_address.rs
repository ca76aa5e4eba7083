//! Who the client is: the TCP peer, or, when the peer is a trusted proxy, the address that
//! proxy says it forwarded for (`X-Forwarded-For`). Only the failed-authentication limit uses
//! it, so a wrong answer here can only misplace that limit, never grant access.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// `X-Forwarded-For`: each proxy appends the address it received the request from.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed (none by default).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Reads addresses and CIDR ranges (`10.0.0.0/8`, `::1`); the error names the first entry
    /// that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| entry.as_ref().trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The client of a request from `peer` with `headers`. The peer, unless it is trusted;
    /// then `X-Forwarded-For` is read from the right (the entry the nearest proxy wrote)
    /// past every trusted hop, and the first untrusted address is the client. An entry that
    /// is not an address stops the walk at the hop that wrote it.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = canonical(peer?);
        if !self.trusts(client) {
            return Some(client);
        }
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match parse_hop(hop.trim()) {
                Some(address) => {
                    client = address;
                    if !self.trusts(address) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is, so one client is one key.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `192.0.2.1`, `2001:db8::1`, or with a port (`192.0.2.1:4000`, `[2001:db8::1]:4000`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_static(FORWARDED_FOR),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.1"), &headers(&["203.0.113.9"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_a_spoofed_left_part_is_ignored() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
        let forwarded = headers(&["198.51.100.66, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &forwarded),
            ip("203.0.113.9"),
            "the first untrusted hop from the right, not the client-supplied left end"
        );
        assert_eq!(
            trusted.client(ip("::1"), &headers(&["[2001:db8::5]:4000"])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn an_untrusted_peer_or_a_malformed_hop_is_not_looked_past() {
        let trusted = TrustedProxies::parse(&["10.0.0.1"]).unwrap();
        assert_eq!(
            trusted.client(ip("192.0.2.1"), &headers(&["203.0.113.9"])),
            ip("192.0.2.1")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &headers(&["203.0.113.9, not-an-ip"])),
            ip("10.0.0.1")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &headers(&[])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_is_the_ipv4_client() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), &headers(&["192.0.2.4"])),
            ip("192.0.2.4")
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let error = TrustedProxies::parse(&["10.0.0.0/8", "proxy.local"]).unwrap_err();
        assert!(error.contains("proxy.local"), "{error}");
    }
}
