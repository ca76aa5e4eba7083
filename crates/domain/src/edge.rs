//! The SIP edge's rules, written once: how a called number names a trunk, which source an
//! allow-list admits, and how an outbound called number is written in a trunk's calling
//! format. The Kamailio adapter writes the edge's rows with these functions (the inbound key,
//! the allow-list rows, the dialing columns), and the call simulator decides with the same
//! functions, so that what the simulator says is what the edge does; a differential test
//! sends generated calls through the real edge to prove it (tests/e2e/simulator.rs).
//! `deploy/kamailio/kamailio.cfg` is the edge's side of each rule; each function names it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{CallingFormat, CountryCode};

/// The longest key the edge matches (its pattern is `^[0-9A-Za-z*#._-]{1,64}$`).
pub const KEY_MAX_LEN: usize = 64;

/// What the edge matches a called number against: the number without its `+` (carriers send
/// either form), in the character set the edge's pattern admits; `None` when the edge cannot
/// route to it. The same function gives a stored number's key (written to the edge) and a
/// called number's (`route[INBOUND]`: `+` stripped, pattern checked).
///
/// ```
/// use domain::edge::number_key;
///
/// assert_eq!(number_key("+14155550100").as_deref(), Some("14155550100"));
/// assert_eq!(number_key("14155550100").as_deref(), Some("14155550100"));
/// assert_eq!(number_key("1000#").as_deref(), Some("1000#"));
/// assert_eq!(number_key("+"), None);
/// assert_eq!(number_key("41 55"), None);
/// ```
pub fn number_key(number: &str) -> Option<String> {
    let key = number.strip_prefix('+').unwrap_or(number);
    let fits = (1..=KEY_MAX_LEN).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "*#._-".contains(c));
    fits.then(|| key.to_owned())
}

/// The key of a call's Request-URI user part as the edge reads it: `%XX` escapes decoded
/// first (`$(rU{s.unescape.user})`: RFC 3261 writes an extension's `#` as `%23`), then
/// [`number_key`]. A malformed escape is kept as it is, and then fails the pattern.
///
/// ```
/// use domain::edge::called_key;
///
/// assert_eq!(called_key("1000%23").as_deref(), Some("1000#"));
/// assert_eq!(called_key("%2B14155550100").as_deref(), Some("14155550100"));
/// assert_eq!(called_key("100%2"), None);
/// ```
pub fn called_key(user: &str) -> Option<String> {
    number_key(&unescape(user))
}

fn unescape(user: &str) -> String {
    let bytes = user.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One allow-list entry as the edge's `address` table holds it: an address and a mask length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowRow {
    /// The network's address (host bits cleared).
    pub ip: IpAddr,
    /// The prefix length (32 or 128 for one address).
    pub mask: u8,
}

impl AllowRow {
    /// The row of a stored entry (`203.0.113.9`, `198.51.100.0/24`); `None` for anything else
    /// (the edge would skip such a row without a word, so the adapter refuses it).
    pub fn parse(entry: &str) -> Option<Self> {
        let network: IpNet = if entry.contains('/') {
            entry.parse().ok()?
        } else {
            IpNet::from(entry.parse::<IpAddr>().ok()?)
        };
        (network.addr() == network.network()).then_some(Self {
            ip: network.addr(),
            mask: network.prefix_len(),
        })
    }

    /// Whether the edge's `allow_source_address` admits `source` by this row: same family,
    /// and the first `mask` bits equal.
    pub fn admits(&self, source: IpAddr) -> bool {
        IpNet::new(self.ip, self.mask).is_ok_and(|network| network.contains(&source))
    }

    /// The entry as clients write it.
    pub fn entry(&self) -> String {
        if u32::from(self.mask) == if self.ip.is_ipv4() { 32 } else { 128 } {
            self.ip.to_string()
        } else {
            format!("{}/{}", self.ip, self.mask)
        }
    }
}

/// The first entry of `entries` that admits `source`, if any.
pub fn admitting_entry(entries: &[AllowRow], source: IpAddr) -> Option<AllowRow> {
    entries.iter().copied().find(|row| row.admits(source))
}

/// What an outbound leg's row says about the called number's form (its `calling_format`,
/// `calling_code` and `national_prefix` columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeDialing {
    /// The trunk's calling format.
    pub format: CallingFormat,
    /// The country's calling code (`44`); empty for a country with no numbering plan.
    pub calling_code: String,
    /// What the national form writes in place of `+code` (`0`; often empty).
    pub national_prefix: String,
}

impl EdgeDialing {
    /// The columns for `format` in `country`. A country with no numbering plan has nothing to
    /// strip: `national` leaves the number as the platform sent it.
    pub fn of(format: CallingFormat, country: CountryCode) -> Self {
        let (calling_code, national_prefix) = match country.national_dialing() {
            Some(dialing) => (dialing.calling_code.to_string(), dialing.national_prefix),
            None => (String::new(), String::new()),
        };
        Self {
            format,
            calling_code,
            national_prefix,
        }
    }

    /// The Request-URI user the carrier receives for `called` (`+` and digits, as the
    /// platform sends it), as `route[OUTBOUND]` writes it: `+e164` as sent, `e164` without
    /// the `+`, `national` with a matching `+code` replaced by the national prefix (another
    /// country's number as sent).
    pub fn called_number(&self, called: &str) -> String {
        match self.format {
            CallingFormat::PlusE164 => called.to_owned(),
            CallingFormat::E164 => called.strip_prefix('+').unwrap_or(called).to_owned(),
            CallingFormat::National if self.calling_code.is_empty() => called.to_owned(),
            CallingFormat::National => {
                match called.strip_prefix(&format!("+{}", self.calling_code)) {
                    Some(rest) => format!("{}{rest}", self.national_prefix),
                    None => called.to_owned(),
                }
            }
        }
    }
}

/// The Request-URI the edge sends an outbound call to: `sip:USER@HOST`, an IPv6 host in
/// brackets.
pub fn carrier_uri(user: &str, host: &str) -> String {
    if host.contains(':') {
        format!("sip:{user}@[{host}]")
    } else {
        format!("sip:{user}@{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_row_admits_its_network_only_and_never_the_other_family() {
        let row = AllowRow::parse("198.51.100.0/24").unwrap();
        assert!(row.admits(ip("198.51.100.77")));
        assert!(!row.admits(ip("198.51.101.1")));
        assert!(!row.admits(ip("::ffff:198.51.100.77")));
        let one = AllowRow::parse("2001:db8::1").unwrap();
        assert_eq!(one.mask, 128);
        assert!(one.admits(ip("2001:db8::1")) && !one.admits(ip("2001:db8::2")));
        assert_eq!(one.entry(), "2001:db8::1");
        assert_eq!(row.entry(), "198.51.100.0/24");
        assert_eq!(AllowRow::parse("198.51.100.1/24"), None, "host bits set");
        assert_eq!(AllowRow::parse("not-an-ip"), None);
    }

    #[test]
    fn the_calling_formats_write_the_number_as_the_edge_does() {
        let gb = |format| EdgeDialing::of(format, CountryCode::parse("GB").unwrap());
        assert_eq!(
            gb(CallingFormat::PlusE164).called_number("+442079460000"),
            "+442079460000"
        );
        assert_eq!(
            gb(CallingFormat::E164).called_number("+442079460000"),
            "442079460000"
        );
        assert_eq!(
            gb(CallingFormat::National).called_number("+442079460000"),
            "02079460000"
        );
        assert_eq!(
            gb(CallingFormat::National).called_number("+14155550100"),
            "+14155550100",
            "another country's number is sent as it is"
        );
        let us = EdgeDialing::of(CallingFormat::National, CountryCode::parse("US").unwrap());
        assert_eq!(us.called_number("+14155550100"), "4155550100");
        assert_eq!(
            carrier_uri("4155550100", "2001:db8::5"),
            "sip:4155550100@[2001:db8::5]"
        );
    }

    #[test]
    fn a_called_key_decodes_escapes_before_it_strips_the_plus() {
        assert_eq!(called_key("%2b1415").as_deref(), Some("1415"));
        assert_eq!(called_key("ext%2A9").as_deref(), Some("ext*9"));
        assert_eq!(called_key("a%20b"), None, "a space is not in the pattern");
        assert_eq!(called_key(&"9".repeat(65)), None);
    }
}
