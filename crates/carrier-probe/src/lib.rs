//! The carrier probe: the domain's [`CarrierProbe`] port as one SIP OPTIONS request over UDP,
//! as RFC 3261 sends a non-INVITE request (retransmitted at 500 ms, 1 s, 2 s, ... until the
//! probe's time is up), to the carrier's address as RFC 3263 finds it: the SRV record
//! `_sip._udp.<name>` when the name has one, else its A/AAAA record on port 5060; an IP
//! address as it is.
//!
//! Only a response to this very probe counts: it must come from the address the probe went
//! to (the socket is connected, so the kernel drops other sources), carry the probe's Call-ID
//! and the branch of its Via. A forged datagram from elsewhere, or a stale answer to an
//! earlier probe, makes no carrier look alive. A connected UDP socket also hears the ICMP
//! "port unreachable" of a host with nothing on the port, which is reported as such.
//!
//! The messages are rsip's: it builds the request and parses whatever comes back (a
//! malformed datagram is ignored like a forged one). The lookups are hickory's, with their own
//! short timeout, outside the probe's SIP time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use domain::{
    CarrierProbe, ProbeOutcome, ProbeResponse, ProvisionError, ProvisionFuture, Timestamp,
};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use rand::distr::{Alphanumeric, SampleString};
use rsip::headers::UntypedHeader;
use rsip::prelude::{HeadersExt, ToTypedHeader};
use tokio::net::UdpSocket;

/// SIP's port when a name has no SRV record.
pub const SIP_PORT: u16 = 5060;

/// RFC 3261's T1: the first retransmission interval, doubled each time (up to T2, 4 s).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// SRV targets tried at most, best first: a name's DNS is the trunk owner's to write, and
/// each target costs lookups.
const SRV_TARGETS_TRIED: usize = 3;

/// The whole location (SRV, its targets, A/AAAA) may take this many DNS timeouts at most.
const DNS_TIMEOUTS_PER_LOCATION: u32 = 4;

/// The largest datagram read; a SIP response to OPTIONS is a few hundred bytes.
const DATAGRAM: usize = 8 * 1024;

/// How probes are sent.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// How long a probe waits for a response, retransmissions included.
    pub timeout: Duration,
    /// The address probes are sent from (`0.0.0.0`: any; an IPv6 carrier is probed from
    /// `[::]` unless this is an IPv6 address).
    pub source: IpAddr,
    /// The port of a carrier given by address or by a name without SRV record.
    pub default_port: u16,
    /// How long one DNS lookup may take.
    pub dns_timeout: Duration,
}

impl Default for ProbeSettings {
    /// 5 s per probe (seven sends), from any address, port 5060, 2 s per lookup.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            default_port: SIP_PORT,
            dns_timeout: Duration::from_secs(2),
        }
    }
}

/// Probes carriers with SIP OPTIONS over UDP.
pub struct OptionsProbe {
    settings: ProbeSettings,
    resolver: TokioResolver,
}

impl std::fmt::Debug for OptionsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OptionsProbe({:?})", self.settings)
    }
}

impl OptionsProbe {
    /// A probe that resolves names with the system's resolver (`/etc/resolv.conf`); without
    /// one, names cannot be resolved (every probe of a name is a DNS failure) and addresses
    /// still work.
    pub fn new(settings: ProbeSettings) -> Self {
        let builder = TokioResolver::builder_tokio().unwrap_or_else(|error| {
            log::warn!("carrier probe: no system resolver ({error}); names will not resolve");
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::new()),
                TokioConnectionProvider::default(),
            )
        });
        Self::with_builder(settings, builder)
    }

    /// A probe that asks the DNS server at `server` (tests, or a resolver of the operator's).
    pub fn with_nameserver(settings: ProbeSettings, server: SocketAddr) -> Self {
        let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        Self::with_builder(settings, builder)
    }

    fn with_builder(
        settings: ProbeSettings,
        mut builder: hickory_resolver::ResolverBuilder<TokioConnectionProvider>,
    ) -> Self {
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = settings.dns_timeout;
        options.attempts = 1;
        Self {
            resolver: builder.build(),
            settings,
        }
    }

    /// Where `host`'s SIP server listens: the address itself, the SRV target, or the name's
    /// address on the default port.
    async fn locate(&self, host: &str) -> Result<SocketAddr, ProbeResponse> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.settings.default_port));
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        if let Ok(records) = self.resolver.srv_lookup(format!("_sip._udp.{fqdn}")).await {
            let mut records: Vec<_> = records.iter().cloned().collect();
            records.sort_by_key(|srv| (srv.priority(), std::cmp::Reverse(srv.weight())));
            for srv in records.into_iter().take(SRV_TARGETS_TRIED) {
                if let Ok(ips) = self.resolver.lookup_ip(srv.target().clone()).await {
                    if let Some(ip) = ips.iter().next() {
                        return Ok(SocketAddr::new(ip, srv.port()));
                    }
                }
            }
        }
        match self.resolver.lookup_ip(fqdn).await {
            Ok(ips) => ips
                .iter()
                .next()
                .map(|ip| SocketAddr::new(ip, self.settings.default_port))
                .ok_or(ProbeResponse::DnsFailure),
            Err(_) => Err(ProbeResponse::DnsFailure),
        }
    }

    async fn probe_host(&self, host: &str) -> Result<ProbeOutcome, ProvisionError> {
        let at = Timestamp::now();
        let budget = self.settings.dns_timeout * DNS_TIMEOUTS_PER_LOCATION;
        let located = tokio::time::timeout(budget, self.locate(host))
            .await
            .unwrap_or(Err(ProbeResponse::DnsFailure));
        let target = match located {
            Ok(target) => target,
            Err(response) => {
                return Ok(ProbeOutcome {
                    response,
                    at,
                    rtt: None,
                })
            }
        };
        let source = match (self.settings.source, target) {
            (source @ IpAddr::V6(_), SocketAddr::V6(_)) => source,
            (_, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            (source, SocketAddr::V4(_)) => source,
        };
        let socket = UdpSocket::bind(SocketAddr::new(source, 0))
            .await
            .map_err(|error| local_error("bind", &error))?;
        socket
            .connect(target)
            .await
            .map_err(|error| local_error("connect", &error))?;
        let local = socket
            .local_addr()
            .map_err(|error| local_error("local address", &error))?;
        let probe = Probe::new(host, local);
        let (response, rtt) = probe.run(&socket, self.settings.timeout).await;
        Ok(ProbeOutcome { response, at, rtt })
    }
}

fn local_error(what: &str, error: &std::io::Error) -> ProvisionError {
    ProvisionError::Unavailable(format!("carrier probe: {what}: {error}"))
}

impl CarrierProbe for OptionsProbe {
    fn probe<'a>(&'a self, host: &'a str) -> ProvisionFuture<'a, ProbeOutcome> {
        Box::pin(self.probe_host(host))
    }
}

/// One OPTIONS transaction: the request and what identifies its responses.
struct Probe {
    request: Vec<u8>,
    call_id: String,
    branch: String,
}

impl Probe {
    fn new(host: &str, local: SocketAddr) -> Self {
        let token = || Alphanumeric.sample_string(&mut rand::rng(), 16);
        let call_id = format!("{}@sip-trunks", token());
        let branch = format!("z9hG4bK{}", token());
        let uri_host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let local_host = match local {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        let mut headers = rsip::Headers::default();
        headers.push(
            rsip::headers::Via::new(format!(
                "SIP/2.0/UDP {local_host}:{};branch={branch};rport",
                local.port()
            ))
            .into(),
        );
        headers.push(rsip::headers::MaxForwards::new("70").into());
        headers.push(
            rsip::headers::From::new(format!("<sip:probe@{local_host}>;tag={}", token())).into(),
        );
        headers.push(rsip::headers::To::new(format!("<sip:{uri_host}>")).into());
        headers.push(rsip::headers::CallId::new(call_id.clone()).into());
        headers.push(rsip::headers::CSeq::new("1 OPTIONS").into());
        headers.push(rsip::headers::UserAgent::new("sip-trunks carrier probe").into());
        headers.push(rsip::headers::ContentLength::new("0").into());
        let uri = rsip::Uri::try_from(format!("sip:{uri_host}")).unwrap_or_else(|_| rsip::Uri {
            scheme: Some(rsip::Scheme::Sip),
            host_with_port: rsip::Domain::from(uri_host.clone()).into(),
            ..Default::default()
        });
        let request = rsip::Request {
            method: rsip::Method::Options,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        };
        Self {
            request: request.to_string().into_bytes(),
            call_id,
            branch,
        }
    }

    /// Sends the request (again at T1, 2·T1, ... up to T2 apart) until a response to it
    /// arrives, the socket hears ICMP unreachable, or `timeout` has passed. A provisional
    /// response (1xx) is kept but waited past for a final one.
    async fn run(
        &self,
        socket: &UdpSocket,
        timeout: Duration,
    ) -> (ProbeResponse, Option<Duration>) {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut interval = T1;
        let mut provisional: Option<(ProbeResponse, Duration)> = None;
        let mut buffer = vec![0u8; DATAGRAM];
        loop {
            if let Err(error) = socket.send(&self.request).await {
                if let Some(response) = unreachable(&error) {
                    return (response, None);
                }
            }
            let resend_at = (Instant::now() + interval).min(deadline);
            interval = (interval * 2).min(T2);
            loop {
                let left = resend_at.saturating_duration_since(Instant::now());
                let received = tokio::time::timeout(left, socket.recv(&mut buffer)).await;
                match received {
                    Err(_) => break,
                    Ok(Err(error)) => {
                        if let Some(response) = unreachable(&error) {
                            return (response, None);
                        }
                    }
                    Ok(Ok(length)) => {
                        let Some(response) = self.response_to_us(&buffer[..length]) else {
                            continue;
                        };
                        let rtt = started.elapsed();
                        match response {
                            ProbeResponse::Answered { code, .. } if code < 200 => {
                                provisional.get_or_insert((response, rtt));
                            }
                            final_response => return (final_response, Some(rtt)),
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return match provisional {
                    Some((response, rtt)) => (response, Some(rtt)),
                    None => (ProbeResponse::Timeout, None),
                };
            }
        }
    }

    /// The datagram as a response to this probe, or `None` (not SIP, a request, another
    /// transaction's).
    fn response_to_us(&self, datagram: &[u8]) -> Option<ProbeResponse> {
        let rsip::SipMessage::Response(response) = rsip::SipMessage::try_from(datagram).ok()?
        else {
            return None;
        };
        let call_id = response.call_id_header().ok()?;
        if call_id.value() != self.call_id {
            return None;
        }
        let via = response.via_header().ok()?.typed().ok()?;
        let branch = via.branch()?.to_string();
        if branch != self.branch {
            return None;
        }
        // The reason phrase as the carrier wrote it (rsip shows its own name for known codes).
        let status_line = datagram
            .split(|byte| *byte == b'\n')
            .next()
            .unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line);
        let reason = status_line
            .trim_end()
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or_default();
        Some(ProbeResponse::answered(response.status_code.code(), reason))
    }
}

/// ICMP unreachable as the socket reports it, if that is what `error` is.
fn unreachable(error: &std::io::Error) -> Option<ProbeResponse> {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable
    )
    .then_some(ProbeResponse::IcmpUnreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe::new("sip.carrier.example", "127.0.0.1:40000".parse().unwrap())
    }

    fn answer(call_id: &str, branch: &str, status: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch={branch};rport=40000\r\nFrom: <sip:probe@127.0.0.1>;tag=a\r\nTo: <sip:sip.carrier.example>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn the_request_is_an_options_to_the_carrier_with_a_fresh_call_id_and_branch() {
        let probe = probe();
        let text = String::from_utf8(probe.request.clone()).unwrap();
        assert!(
            text.starts_with("OPTIONS sip:sip.carrier.example SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!("branch={}", probe.branch)), "{text}");
        assert!(
            text.contains(&format!("Call-ID: {}", probe.call_id)),
            "{text}"
        );
        assert!(text.contains("CSeq: 1 OPTIONS"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        let other = self::probe();
        assert_ne!((other.call_id, other.branch), (probe.call_id, probe.branch));
    }

    #[test]
    fn only_a_response_with_our_call_id_and_branch_counts() {
        let probe = probe();
        let ours = answer(&probe.call_id, &probe.branch, "404 Not Found");
        assert_eq!(
            probe.response_to_us(&ours),
            Some(ProbeResponse::answered(404, "Not Found"))
        );
        let wrong_call = answer("forged@x", &probe.branch, "200 OK");
        assert_eq!(probe.response_to_us(&wrong_call), None);
        let wrong_branch = answer(&probe.call_id, "z9hG4bKforged", "200 OK");
        assert_eq!(probe.response_to_us(&wrong_branch), None);
        assert_eq!(probe.response_to_us(b"\x00\x01garbage"), None);
        let request = probe.request.clone();
        assert_eq!(
            probe.response_to_us(&request),
            None,
            "a request is no answer"
        );
    }

    #[test]
    fn an_ipv6_carrier_is_addressed_in_brackets() {
        let probe = Probe::new("2001:db8::1", "[::1]:40000".parse().unwrap());
        let text = String::from_utf8(probe.request).unwrap();
        assert!(
            text.starts_with("OPTIONS sip:[2001:db8::1] SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP [::1]:40000;"), "{text}");
    }
}
