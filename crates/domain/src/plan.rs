//! Which steps bring a trunk's legs to what its settings need: one pure decision, used by
//! the request path (an update) and by the reconciler (a repair), unit-tested without async
//! code or infrastructure. The service carries a plan out within a deadline and compensates.

use crate::provisioning::{LegKind, RemoteLeg};
use crate::trunk::{LegChanges, LegEffect, LegId, SipTrunk, TrunkField};

/// What the infrastructure can do that changes a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// It writes the called number in the trunk's calling format itself (Kamailio): a change
    /// of format or country must restyle the outbound leg.
    pub writes_called_numbers: bool,
    /// It swaps an inbound leg for another make before break (Kamailio); otherwise the old
    /// leg must go before the new one can hold the number (LiveKit).
    pub replaces_inbound_in_place: bool,
}

/// How the new inbound leg comes to hold the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundStep {
    /// In place of `old`, make before break.
    Swap {
        /// The leg it replaces.
        old: LegId,
    },
    /// These legs hold the number and are removed first; then the new leg is made.
    RemoveThenCreate {
        /// In this order.
        remove_first: Vec<LegId>,
    },
}

/// The steps, in the order they are carried out: restyle, outbound, inbound; then the store
/// is told the new ids and the legs to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegPlan {
    /// The outbound leg that stays but takes the new calling format or country.
    pub restyle_outbound: Option<LegId>,
    /// A new outbound leg is made: `Some(old)` (the leg it replaces, if any) is queued for
    /// removal with the commit.
    pub new_outbound: Option<Option<LegId>>,
    /// A new inbound leg is made, this way.
    pub new_inbound: Option<InboundStep>,
    /// Legs made for this trunk that it will not reference (left by a holder that died
    /// mid-update), queued for removal with the commit.
    pub stray: Vec<(LegKind, LegId)>,
}

impl LegPlan {
    /// The plan of an update from `current` to `next`, which re-creates `legs`.
    pub fn for_update(
        current: &SipTrunk,
        next: &SipTrunk,
        legs: LegChanges,
        can: Capabilities,
    ) -> Self {
        let (before, after) = (&current.settings, &next.settings);
        let restyled = TrunkField::changed(before, after)
            .into_iter()
            .any(|field| field.effect() == LegEffect::Restyle);
        let new_inbound = legs.inbound.then(|| match &current.inbound_trunk_id {
            Some(old) if can.replaces_inbound_in_place => InboundStep::Swap { old: old.clone() },
            old => InboundStep::RemoveThenCreate {
                remove_first: old.iter().cloned().collect(),
            },
        });
        Self {
            restyle_outbound: (can.writes_called_numbers && restyled && !legs.outbound)
                .then(|| current.outbound_trunk_id.clone())
                .flatten(),
            new_outbound: legs.outbound.then(|| current.outbound_trunk_id.clone()),
            new_inbound,
            stray: Vec::new(),
        }
    }

    /// The plan that gives `current` legs serving its stored settings, given the legs the
    /// infrastructure holds (`remote`): each stored leg that serves is kept, each that does
    /// not is replaced (inbound: the legs holding the number go first), and legs tagged for
    /// the trunk that nothing will reference are queued for removal.
    pub fn for_repair(current: &SipTrunk, remote: &[RemoteLeg]) -> Self {
        let stored = |leg: &Option<LegId>| {
            leg.as_ref()
                .and_then(|leg| remote.iter().find(|remote| remote.id == *leg))
        };
        let outbound_serves =
            stored(&current.outbound_trunk_id).is_some_and(|leg| leg.serves_outbound_of(current));
        let inbound_serves =
            stored(&current.inbound_trunk_id).is_some_and(|leg| leg.serves_inbound_of(current));
        let ours = |leg: &&RemoteLeg| leg.owner.is_some_and(|o| o.trunk == current.id);
        let number = current.settings.phone_number.as_str();
        // The stored leg if it still exists, and legs tagged for this trunk that hold its
        // number (left by an earlier attempt): each would make the create conflict.
        let remove_first: Vec<LegId> = remote
            .iter()
            .filter(|leg| leg.kind == LegKind::Inbound)
            .filter(|leg| {
                Some(&leg.id) == current.inbound_trunk_id.as_ref()
                    || (ours(leg) && leg.numbers.iter().any(|n| n == number))
            })
            .map(|leg| leg.id.clone())
            .collect();
        let new_outbound = (!outbound_serves).then(|| current.outbound_trunk_id.clone());
        let new_inbound =
            (!inbound_serves).then_some(InboundStep::RemoveThenCreate { remove_first });
        let kept = |id: &LegId| {
            (inbound_serves && current.inbound_trunk_id.as_ref() == Some(id))
                || (outbound_serves && current.outbound_trunk_id.as_ref() == Some(id))
        };
        let handled = |id: &LegId| {
            matches!(&new_outbound, Some(Some(old)) if old == id)
                || matches!(&new_inbound, Some(InboundStep::RemoveThenCreate { remove_first }) if remove_first.contains(id))
        };
        let stray = remote
            .iter()
            .filter(ours)
            .filter(|leg| !kept(&leg.id) && !handled(&leg.id))
            .map(|leg| (leg.kind, leg.id.clone()))
            .collect();
        Self {
            restyle_outbound: None,
            new_outbound,
            new_inbound,
            stray,
        }
    }

    /// True when the plan makes or removes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::LegOwner;
    use crate::{CallingFormat, CountryCode};

    fn leg(id: &str) -> LegId {
        LegId::new(id).unwrap()
    }

    fn trunk() -> SipTrunk {
        let mut trunk = crate::fixtures::stored_trunk("auth");
        trunk.inbound_trunk_id = Some(leg("IN_old"));
        trunk.outbound_trunk_id = Some(leg("OUT_old"));
        trunk
    }

    const LIVEKIT: Capabilities = Capabilities {
        writes_called_numbers: false,
        replaces_inbound_in_place: false,
    };
    const KAMAILIO: Capabilities = Capabilities {
        writes_called_numbers: true,
        replaces_inbound_in_place: true,
    };

    /// A leg the infrastructure holds, as the trunk's settings need it.
    fn remote(id: &str, kind: LegKind, trunk: &SipTrunk) -> RemoteLeg {
        let settings = &trunk.settings;
        RemoteLeg {
            id: leg(id),
            kind,
            owner: Some(LegOwner {
                trunk: trunk.id,
                owner: trunk.owner,
                created_unix: 0,
            }),
            numbers: vec![settings.phone_number.as_str().to_owned()],
            address: match kind {
                LegKind::Outbound => settings.sip_address.as_str().to_owned(),
                LegKind::Inbound => String::new(),
            },
            username: settings.sip_username.as_str().to_owned(),
            allow_list: crate::AllowListDigest::default(),
            dialing: None,
        }
    }

    #[test]
    fn an_update_that_changes_both_legs_replaces_the_outbound_and_the_inbound_the_infrastructures_way(
    ) {
        let current = trunk();
        let both = LegChanges::BOTH;
        let livekit = LegPlan::for_update(&current, &current, both, LIVEKIT);
        assert_eq!(livekit.new_outbound, Some(Some(leg("OUT_old"))));
        assert_eq!(
            livekit.new_inbound,
            Some(InboundStep::RemoveThenCreate {
                remove_first: vec![leg("IN_old")]
            })
        );
        let kamailio = LegPlan::for_update(&current, &current, both, KAMAILIO);
        assert_eq!(
            kamailio.new_inbound,
            Some(InboundStep::Swap { old: leg("IN_old") })
        );
        assert_eq!(
            kamailio.restyle_outbound, None,
            "a new outbound leg is styled anyway"
        );
    }

    #[test]
    fn a_format_or_country_change_restyles_the_outbound_leg_only_where_the_infrastructure_writes_numbers(
    ) {
        let current = trunk();
        let mut next = current.clone();
        next.settings.calling_format = CallingFormat::parse("national").unwrap();
        let none = LegChanges::default();
        assert!(LegPlan::for_update(&current, &next, none, LIVEKIT).is_empty());
        assert_eq!(
            LegPlan::for_update(&current, &next, none, KAMAILIO).restyle_outbound,
            Some(leg("OUT_old"))
        );
        let mut next = current.clone();
        next.settings.country_code = CountryCode::parse("GB").unwrap();
        assert_eq!(
            LegPlan::for_update(&current, &next, none, KAMAILIO).restyle_outbound,
            Some(leg("OUT_old"))
        );
        assert!(LegPlan::for_update(&current, &current, none, KAMAILIO).is_empty());
    }

    #[test]
    fn a_first_inbound_leg_is_simply_created() {
        let mut current = trunk();
        current.inbound_trunk_id = None;
        let inbound = LegChanges {
            inbound: true,
            outbound: false,
        };
        for can in [LIVEKIT, KAMAILIO] {
            assert_eq!(
                LegPlan::for_update(&current, &current, inbound, can).new_inbound,
                Some(InboundStep::RemoveThenCreate {
                    remove_first: Vec::new()
                })
            );
        }
    }

    #[test]
    fn a_repair_keeps_legs_that_serve_and_plans_nothing_when_all_do() {
        let current = trunk();
        let held = [
            remote("IN_old", LegKind::Inbound, &current),
            remote("OUT_old", LegKind::Outbound, &current),
        ];
        assert!(LegPlan::for_repair(&current, &held).is_empty());
    }

    #[test]
    fn a_repair_replaces_missing_or_wrong_legs_and_clears_what_holds_the_number() {
        let current = trunk();
        let mut wrong_outbound = remote("OUT_old", LegKind::Outbound, &current);
        wrong_outbound.address = "elsewhere.example".into();
        let leftover = remote("IN_leftover", LegKind::Inbound, &current);
        let mut stray = remote("OUT_stray", LegKind::Outbound, &current);
        stray.numbers = vec!["+14155550000".into()];
        let mut someone_elses = remote("IN_other", LegKind::Inbound, &current);
        someone_elses.owner = None;
        let plan = LegPlan::for_repair(&current, &[wrong_outbound, leftover, stray, someone_elses]);
        assert_eq!(plan.new_outbound, Some(Some(leg("OUT_old"))));
        assert_eq!(
            plan.new_inbound,
            Some(InboundStep::RemoveThenCreate {
                remove_first: vec![leg("IN_leftover")]
            }),
            "the stored inbound leg is gone; the leftover holding the number goes first"
        );
        assert_eq!(
            plan.stray,
            vec![(LegKind::Outbound, leg("OUT_stray"))],
            "a leg without the registry's tag is never touched"
        );
    }
}
