//! The registry's tag on the legs it creates, kept in each LiveKit trunk's `metadata`:
//! `{"sip_trunks":{"deployment":"prod","trunk_id":42,"user_id":7,"leg":"inbound",
//! "created":1764633600,"attempt":"9f…"}}` (outbound legs add `"outbound_proxy"`). The
//! reconciler matches legs to trunks by it; a create that had to retry finds its earlier
//! attempts' legs by `attempt`.
//!
//! `deployment` says which registry made the leg, so that several (production and staging)
//! can share one LiveKit project: a registry takes only legs of its own deployment as its own
//! (to repair or to remove as orphans); any other leg is another system's, left alone, its
//! numbers still taken. Tags written before deployments existed have no `deployment`: they
//! are read as [`DEFAULT_DEPLOYMENT`]'s, the name of a registry that sets none, so a registry
//! that upgrades without naming itself keeps every leg it made.

use std::time::{SystemTime, UNIX_EPOCH};

use domain::{LegKind, LegOwner, TrunkId, UserId};
use serde::{Deserialize, Serialize};

/// The deployment of a registry that names none, and of tags written before names existed.
pub const DEFAULT_DEPLOYMENT: &str = "default";

/// What the registry writes on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegTag {
    /// The registry that made it.
    pub deployment: String,
    /// The trunk.
    pub trunk: TrunkId,
    /// Its owner.
    pub owner: UserId,
    /// Which leg.
    pub kind: LegKind,
    /// When it was created (Unix seconds).
    pub created_unix: i64,
    /// A random id of the create call (the same for all its attempts).
    pub attempt: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    sip_trunks: Body,
}

#[derive(Serialize, Deserialize)]
struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<String>,
    trunk_id: i64,
    user_id: i64,
    leg: String,
    created: i64,
    attempt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbound_proxy: Option<bool>,
}

impl LegTag {
    /// A tag for a leg of `trunk` created now by `deployment`.
    pub fn new(deployment: &str, trunk: TrunkId, owner: UserId, kind: LegKind) -> Self {
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        Self {
            deployment: deployment.to_owned(),
            trunk,
            owner,
            kind,
            created_unix,
            attempt: hex::encode(rand::random::<[u8; 8]>()),
        }
    }

    /// The trunk's readable name there: `sip-trunks 42 inbound (user 7)`, with the
    /// deployment after `sip-trunks` unless it is the default one.
    pub fn name(&self) -> String {
        let deployment = if self.deployment == DEFAULT_DEPLOYMENT {
            String::new()
        } else {
            format!(" {}", self.deployment)
        };
        format!(
            "sip-trunks{deployment} {} {} (user {})",
            self.trunk,
            self.kind.as_str(),
            self.owner
        )
    }

    /// The `metadata` text; `outbound_proxy` is recorded for outbound legs (LiveKit has no
    /// per-trunk field for it).
    pub fn to_metadata(&self, outbound_proxy: Option<bool>) -> String {
        serde_json::to_string(&Envelope {
            sip_trunks: Body {
                deployment: Some(self.deployment.clone()),
                trunk_id: self.trunk.get(),
                user_id: self.owner.get(),
                leg: self.kind.as_str().to_owned(),
                created: self.created_unix,
                attempt: self.attempt.clone(),
                outbound_proxy,
            },
        })
        .unwrap_or_default()
    }

    /// The tag in a leg's `metadata`; `None` when the leg is not the registry's.
    pub fn parse(metadata: &str) -> Option<Self> {
        let body = serde_json::from_str::<Envelope>(metadata).ok()?.sip_trunks;
        Some(Self {
            deployment: body
                .deployment
                .unwrap_or_else(|| DEFAULT_DEPLOYMENT.to_owned()),
            trunk: TrunkId::new(body.trunk_id)?,
            owner: UserId::new(body.user_id)?,
            kind: match body.leg.as_str() {
                "inbound" => LegKind::Inbound,
                "outbound" => LegKind::Outbound,
                _ => return None,
            },
            created_unix: body.created,
            attempt: body.attempt,
        })
    }

    /// The owner as the port reports it.
    pub fn owner(&self) -> LegOwner {
        LegOwner {
            trunk: self.trunk,
            owner: self.owner,
            created_unix: self.created_unix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_round_trips_through_metadata() {
        let tag = LegTag::new(
            "staging",
            TrunkId::new(42).unwrap(),
            UserId::new(7).unwrap(),
            LegKind::Outbound,
        );
        let text = tag.to_metadata(Some(true));
        assert!(text.contains("\"outbound_proxy\":true"), "{text}");
        assert_eq!(LegTag::parse(&text), Some(tag));
    }

    #[test]
    fn a_tag_from_before_deployments_belongs_to_the_default_deployment() {
        let old = r#"{"sip_trunks":{"trunk_id":42,"user_id":7,"leg":"inbound","created":1,"attempt":"ab"}}"#;
        let tag = LegTag::parse(old).unwrap();
        assert_eq!(tag.deployment, DEFAULT_DEPLOYMENT);
        assert_eq!(tag.name(), "sip-trunks 42 inbound (user 7)");
        let named = LegTag::new("staging", tag.trunk, tag.owner, LegKind::Inbound);
        assert_eq!(named.name(), "sip-trunks staging 42 inbound (user 7)");
        assert!(named
            .to_metadata(None)
            .contains(r#""deployment":"staging""#));
    }

    #[test]
    fn metadata_of_other_systems_is_not_a_tag() {
        for other in ["", "{}", "not json", r#"{"sip_trunks":{"trunk_id":0}}"#] {
            assert_eq!(LegTag::parse(other), None, "{other}");
        }
    }
}
