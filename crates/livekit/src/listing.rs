//! LiveKit's SIP trunks read a page at a time. `livekit-api`'s `SIPClient` lists every trunk
//! of a kind in one answer (its list calls leave `page` unset); at 30,000 trunks of 100 IPv6
//! entries that answer is about 135 MB, decoded into as much again, and the reconciler's
//! full scan peaked at 407 MiB. The list calls here send the same Twirp request with
//! `page = {after_id, limit}`, which LiveKit answers with the trunks whose ids sort after
//! `after_id`, at most `limit` of them, in id order.
//!
//! A server that ignores `page` (an older LiveKit) answers everything every time: a page
//! only counts the trunks whose ids sort after the last page's largest, so the second call
//! finds nothing new and the listing ends, as complete as one unpaged call. A listing ends
//! at the first page with nothing new, not at a short page: LiveKit drops a trunk deleted
//! between its two reads of a page, so a short page is not the last one.
//!
//! The request is what `livekit-api` sends (same path, protobuf body, `Authorization:
//! Bearer` with an HS256 token carrying the `sip.admin` grant, same TLS set-up), and its
//! failures are the crate's own error type, so that they are classified and retried like
//! every other call.

use std::sync::Arc;
use std::time::Duration;

use livekit_api::access_token::{AccessToken, SIPGrants};
use livekit_api::services::{ServerError, ServerErrorCode, ServiceError, ServiceResult};
use livekit_protocol as proto;
use prost::Message;

/// Trunks asked for per page: LiveKit's own default page size. A page of inbound trunks with
/// 100 IPv6 entries each is about 2.5 MB on the wire.
pub(crate) const PAGE_SIZE: i32 = 1000;

/// A paged reader of one LiveKit project's SIP trunks.
pub(crate) struct Lister {
    http: reqwest::Client,
    /// `https://host[:port]` (a `wss://` URL is taken as https, as `livekit-api` does).
    base: String,
    api_key: String,
    api_secret: String,
    timeout: Duration,
}

impl Lister {
    /// A reader of the project at `url`; each request may take `timeout`.
    pub(crate) fn new(url: &str, api_key: &str, api_secret: &str, timeout: Duration) -> Self {
        let base = if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            url.to_owned()
        };
        Self {
            http: http_client(),
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
            timeout,
        }
    }

    /// The inbound trunks whose ids sort after `after` (all with `""`), at most
    /// [`PAGE_SIZE`].
    pub(crate) async fn inbound_page(
        &self,
        after: String,
    ) -> ServiceResult<Vec<proto::SipInboundTrunkInfo>> {
        let request = proto::ListSipInboundTrunkRequest {
            page: Some(page_after(after)),
            ..Default::default()
        };
        let answer: proto::ListSipInboundTrunkResponse =
            self.call("ListSIPInboundTrunk", &request).await?;
        Ok(answer.items)
    }

    /// The outbound trunks whose ids sort after `after`, at most [`PAGE_SIZE`].
    pub(crate) async fn outbound_page(
        &self,
        after: String,
    ) -> ServiceResult<Vec<proto::SipOutboundTrunkInfo>> {
        let request = proto::ListSipOutboundTrunkRequest {
            page: Some(page_after(after)),
            ..Default::default()
        };
        let answer: proto::ListSipOutboundTrunkResponse =
            self.call("ListSIPOutboundTrunk", &request).await?;
        Ok(answer.items)
    }

    /// The inbound trunks that hold `number` (and those that hold none, which LiveKit's filter
    /// keeps), in one unpaged call: LiveKit filters after it pages, so a paged filtered
    /// listing may answer an empty page before its end.
    pub(crate) async fn inbound_holding(
        &self,
        number: String,
    ) -> ServiceResult<Vec<proto::SipInboundTrunkInfo>> {
        let request = proto::ListSipInboundTrunkRequest {
            numbers: vec![number],
            ..Default::default()
        };
        let answer: proto::ListSipInboundTrunkResponse =
            self.call("ListSIPInboundTrunk", &request).await?;
        Ok(answer.items)
    }

    async fn call<R: Message + Default>(
        &self,
        method: &str,
        request: &impl Message,
    ) -> ServiceResult<R> {
        let token = AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_sip_grants(SIPGrants {
                admin: true,
                ..Default::default()
            })
            .to_jwt()?;
        let url = format!("{}/twirp/livekit.SIP/{method}", self.base);
        let answer = self
            .http
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/protobuf")
            .body(request.encode_to_vec())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(request_error)?;
        if answer.status() == reqwest::StatusCode::OK {
            let body = answer.bytes().await.map_err(request_error)?;
            return R::decode(body).map_err(|error| ServiceError::Twirp(ServerError::Prost(error)));
        }
        let code: ServerErrorCode = answer.json().await.map_err(request_error)?;
        Err(ServiceError::Twirp(ServerError::Twirp(code)))
    }
}

fn page_after(after: String) -> proto::Pagination {
    proto::Pagination {
        after_id: after,
        limit: PAGE_SIZE,
    }
}

fn request_error(error: reqwest::Error) -> ServiceError {
    ServiceError::Twirp(ServerError::Request(error))
}

/// The HTTP client `livekit-api` builds: rustls on the ring provider with the web PKI roots
/// (reqwest 0.13 would default to aws-lc-rs, and a process with two providers and no default
/// fails every TLS set-up).
fn http_client() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = reqwest::Client::builder();
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(config) => builder
            .tls_backend_preconfigured(config.with_root_certificates(roots).with_no_client_auth()),
        // Not reached with ring, which has every default version; plain HTTP still works.
        Err(error) => {
            log::warn!("LiveKit listing: no TLS configuration ({error})");
            builder
        }
    };
    builder.build().unwrap_or_else(|error| {
        log::warn!("LiveKit listing: default HTTP client ({error})");
        reqwest::Client::new()
    })
}

/// The trunks of `page` whose ids sort after `after` (a server that ignores paging answers
/// the earlier ones again), and the largest id among them.
pub(crate) fn new_after<T>(page: Vec<T>, after: &str, id: impl Fn(&T) -> &str) -> (Vec<T>, String) {
    let fresh: Vec<T> = page.into_iter().filter(|t| id(t) > after).collect();
    let last = fresh.iter().map(&id).max().unwrap_or(after).to_owned();
    (fresh, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_only_the_ids_after_the_last_one_seen_and_reports_the_largest() {
        let page = vec!["ST_b", "ST_a", "ST_d", "ST_c"];
        let (fresh, last) = new_after(page, "ST_b", |id| id);
        assert_eq!((fresh, last.as_str()), (vec!["ST_d", "ST_c"], "ST_d"));
        let (fresh, last) = new_after(vec!["ST_a"], "ST_b", |id| id);
        assert_eq!((fresh, last.as_str()), (Vec::<&str>::new(), "ST_b"));
    }
}
