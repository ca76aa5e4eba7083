//! The bodies of `GET …/sip-trunks/{id}/status`, `POST …/status/probe` and `POST …/simulate`,
//! keys in the order docs/diagnostics.md gives. Written once for the wire and the OpenAPI
//! document, like [`crate::views`].

use domain::simulation::Simulation;
use domain::{CarrierHealth, LegStatus, ProbeResponse};
use serde::Serialize;
use service::TrunkStatus;
use utoipa::ToSchema;

use crate::views::Time;

/// `{"data": {"provisioning": {...}, "carrier": {...}}}`
#[derive(Serialize, ToSchema)]
pub struct TrunkStatusData {
    pub(crate) data: TrunkStatusView,
}

/// Why a trunk may not take calls: its legs on the voice infrastructure, and its carrier.
#[derive(Serialize, ToSchema)]
pub struct TrunkStatusView {
    pub(crate) provisioning: ProvisioningView,
    pub(crate) carrier: CarrierView,
}

/// Where the trunk's legs stand with the voice infrastructure.
#[derive(Serialize, ToSchema)]
pub struct ProvisioningView {
    /// `ready`: its legs were made for its settings. `repairing`: they are being changed, or
    /// may be missing or out of date and the registry re-creates them. `creating` and
    /// `removing` are the hidden phases before a trunk appears and after it is deleted (a
    /// 404 for clients). `none`: no voice infrastructure is configured.
    #[schema(value_type = String, example = "ready")]
    pub(crate) state: &'static str,
    /// `kamailio` or `livekit`; `null` with `none`.
    #[schema(example = "kamailio")]
    pub(crate) infrastructure: Option<&'static str>,
    /// Each leg as the reconciler last saw it; `null` with `none`.
    pub(crate) legs: Option<LegsView>,
    /// The last provisioning failure, if any (kept after a later success, with its time).
    pub(crate) last_error: Option<ProvisioningErrorView>,
}

/// The trunk's two legs.
#[derive(Serialize, ToSchema)]
pub struct LegsView {
    pub(crate) inbound: LegView,
    pub(crate) outbound: LegView,
}

/// One leg.
#[derive(Serialize, ToSchema)]
pub struct LegView {
    /// Its id on the infrastructure; `null` when the trunk has none stored.
    pub(crate) id: Option<String>,
    /// Whether the infrastructure held it as stored when last checked; `null`: not checked
    /// since the leg was made or the trunk last changed.
    pub(crate) held: Option<bool>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) checked_at: Option<Time>,
}

/// A provisioning failure, in a sentence that names no internals.
#[derive(Serialize, ToSchema)]
pub struct ProvisioningErrorView {
    /// `number_taken`, `refused`, `unauthorized` or `unavailable`.
    #[schema(example = "unavailable")]
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) at: Time,
}

/// The carrier (`sip_address`) as SIP OPTIONS probes see it.
#[derive(Serialize, ToSchema)]
pub struct CarrierView {
    /// The address probed: the trunk's `sip_address`.
    #[schema(example = "sip.carrier.example")]
    pub(crate) address: String,
    /// `reachable` (it answers SIP, whatever the code), `unreachable` (3 failed probes in a
    /// row), or `unknown` (not probed yet, or not decided yet).
    #[schema(example = "reachable")]
    pub(crate) state: &'static str,
    /// When the state was entered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) since: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) last_probe_at: Option<Time>,
    pub(crate) last_response: Option<ProbeResponseView>,
    /// The last answer's round trip, in milliseconds.
    pub(crate) rtt_ms: Option<u64>,
}

/// What the last probe got back.
#[derive(Serialize, ToSchema)]
pub struct ProbeResponseView {
    /// `answered`, `timeout`, `icmp_unreachable` or `dns_failure`.
    #[schema(example = "answered")]
    pub(crate) kind: &'static str,
    /// With `answered`: the SIP status code.
    #[schema(example = 200)]
    pub(crate) code: Option<u16>,
    /// With `answered`: the reason phrase (at most 64 characters).
    #[schema(example = "OK")]
    pub(crate) reason: Option<String>,
}

impl TrunkStatusData {
    /// The body for `status`.
    pub fn of(status: &TrunkStatus) -> Self {
        let provisioning = &status.provisioning;
        let legs =
            (provisioning.infrastructure.is_some() && provisioning.legs.len() == 2).then(|| {
                LegsView {
                    inbound: LegView::of(&provisioning.legs[0]),
                    outbound: LegView::of(&provisioning.legs[1]),
                }
            });
        Self {
            data: TrunkStatusView {
                provisioning: ProvisioningView {
                    state: provisioning.phase.as_str(),
                    infrastructure: provisioning.infrastructure,
                    legs,
                    last_error: provisioning.last_error.map(|(failure, at)| {
                        ProvisioningErrorView {
                            code: failure.code(),
                            message: failure.sentence(),
                            at: Time(at),
                        }
                    }),
                },
                carrier: CarrierView::of(&status.carrier, &status.carrier_address),
            },
        }
    }
}

impl LegView {
    fn of(leg: &LegStatus) -> Self {
        Self {
            id: leg.id.as_ref().map(|id| id.as_str().to_owned()),
            held: leg.held,
            checked_at: leg.checked_at.map(Time),
        }
    }
}

impl CarrierView {
    fn of(health: &CarrierHealth, address: &str) -> Self {
        let probe = health.last_probe.as_ref();
        Self {
            address: address.to_owned(),
            state: health.state.as_str(),
            since: health.since.map(Time),
            last_probe_at: probe.map(|p| Time(p.at)),
            last_response: probe.map(|p| ProbeResponseView::of(&p.response)),
            rtt_ms: probe
                .and_then(|p| p.rtt)
                .map(|rtt| u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl ProbeResponseView {
    fn of(response: &ProbeResponse) -> Self {
        let (kind, code, reason) = match response {
            ProbeResponse::Answered { code, reason } => {
                ("answered", Some(*code), Some(reason.clone()))
            }
            ProbeResponse::Timeout => ("timeout", None, None),
            ProbeResponse::IcmpUnreachable => ("icmp_unreachable", None, None),
            ProbeResponse::DnsFailure => ("dns_failure", None, None),
        };
        Self { kind, code, reason }
    }
}

/// `{"data": {...}}`: what the edge would do with the call.
#[derive(Serialize, ToSchema)]
pub struct SimulationData {
    pub(crate) data: SimulationView,
}

/// What the edge would do with a call, and why. Every key is always present; those of the
/// other direction are `null`.
#[derive(Serialize, ToSchema)]
pub struct SimulationView {
    #[schema(example = "inbound")]
    pub(crate) direction: &'static str,
    /// Whose rules: `kamailio` (the edge, proven against it), `livekit` (LiveKit's
    /// documented inbound matching), `stored` (no infrastructure: the stored trunk's rules).
    #[schema(example = "kamailio")]
    pub(crate) rules: &'static str,
    /// Inbound: `admitted`, `challenged` (a digest challenge would follow) or `refused`.
    /// Outbound: `sent` or `refused`.
    #[schema(example = "refused")]
    pub(crate) verdict: &'static str,
    /// The SIP code the edge answers itself: 403, 404, 407 (401 with LiveKit), 484; `null`
    /// when the call goes on.
    #[schema(example = 404)]
    pub(crate) sip_code: Option<u16>,
    /// The trunk the call reaches or goes through.
    pub(crate) trunk_id: Option<i64>,
    /// Inbound: the called number as the edge reads it (without `+`).
    #[schema(example = "14155550100")]
    pub(crate) called_number: Option<String>,
    /// Inbound, no trunk found: your closest stored numbers, closest first (at most 3).
    pub(crate) closest_numbers: Option<Vec<NearNumberView>>,
    /// Outbound: the Request-URI the carrier receives.
    #[schema(example = "sip:4155550100@sip.carrier.example")]
    pub(crate) request_uri: Option<String>,
    /// Outbound: the user part of the To header the carrier receives.
    pub(crate) to_user: Option<String>,
    /// Outbound: the username that answers the carrier's challenge (never a password).
    pub(crate) auth_username: Option<String>,
    /// Outbound: whether the call leaves through the fixed-IP outbound proxy.
    pub(crate) outbound_proxy: Option<bool>,
    /// Why, in plain sentences.
    pub(crate) reasons: Vec<String>,
}

/// A stored number near the called one.
#[derive(Serialize, ToSchema)]
pub struct NearNumberView {
    pub(crate) trunk_id: i64,
    #[schema(example = "+14155550100")]
    pub(crate) phone_number: String,
    #[schema(example = "one digit differs")]
    pub(crate) why: String,
}

impl SimulationData {
    /// The body for `simulation` of a call in `direction`.
    pub fn of(direction: &'static str, simulation: Simulation) -> Self {
        let inbound = direction == "inbound";
        Self {
            data: SimulationView {
                direction,
                rules: simulation.rules.as_str(),
                verdict: simulation.verdict.as_str(),
                sip_code: simulation.sip_code,
                trunk_id: simulation.trunk.map(|id| id.get()),
                called_number: simulation.called_number,
                closest_numbers: inbound.then(|| {
                    simulation
                        .closest
                        .into_iter()
                        .map(|near| NearNumberView {
                            trunk_id: near.trunk.get(),
                            phone_number: near.phone_number,
                            why: near.why,
                        })
                        .collect()
                }),
                request_uri: simulation.request_uri,
                to_user: simulation.to_user,
                auth_username: simulation.auth_username,
                outbound_proxy: simulation.outbound_proxy,
                reasons: simulation.reasons,
            },
        }
    }
}
