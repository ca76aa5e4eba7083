//! The registry's tag on the legs it creates, kept in each LiveKit trunk's `metadata`:
//! `{"sip_trunks":{"trunk_id":42,"user_id":7,"leg":"inbound","created":1764633600,
//! "attempt":"9f…"}}` (outbound legs add `"outbound_proxy"`). The reconciler matches legs to
//! trunks by it; a create that had to retry finds its earlier attempts' legs by `attempt`.

use std::time::{SystemTime, UNIX_EPOCH};

use domain::{LegKind, LegOwner, TrunkId, UserId};
use serde::{Deserialize, Serialize};

/// What the registry writes on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegTag {
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
    trunk_id: i64,
    user_id: i64,
    leg: String,
    created: i64,
    attempt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbound_proxy: Option<bool>,
}

impl LegTag {
    /// A tag for a leg of `trunk` created now.
    pub fn new(trunk: TrunkId, owner: UserId, kind: LegKind) -> Self {
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        Self {
            trunk,
            owner,
            kind,
            created_unix,
            attempt: hex::encode(rand::random::<[u8; 8]>()),
        }
    }

    /// The trunk's readable name there: `sip-trunks 42 inbound (user 7)`.
    pub fn name(&self) -> String {
        format!(
            "sip-trunks {} {} (user {})",
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
            TrunkId::new(42).unwrap(),
            UserId::new(7).unwrap(),
            LegKind::Outbound,
        );
        let text = tag.to_metadata(Some(true));
        assert!(text.contains("\"outbound_proxy\":true"), "{text}");
        assert_eq!(LegTag::parse(&text), Some(tag));
    }

    #[test]
    fn metadata_of_other_systems_is_not_a_tag() {
        for other in ["", "{}", "not json", r#"{"sip_trunks":{"trunk_id":0}}"#] {
            assert_eq!(LegTag::parse(other), None, "{other}");
        }
    }
}
