//! Which legs on the voice infrastructure a change of a trunk re-creates.

use super::{TrunkField, TrunkSettings};

/// The legs a change re-creates: the union of [`TrunkField::effect`] over the fields that
/// changed (the contract's provisioning table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegChanges {
    /// The inbound leg is re-created (gets a new id).
    pub inbound: bool,
    /// The outbound leg is re-created (gets a new id).
    pub outbound: bool,
}

impl LegChanges {
    /// Both legs: what a new trunk needs.
    pub const BOTH: Self = Self {
        inbound: true,
        outbound: true,
    };

    /// The legs that going from `before` to `after` re-creates.
    pub fn between(before: &TrunkSettings, after: &TrunkSettings) -> Self {
        TrunkField::changed(before, after)
            .into_iter()
            .map(TrunkField::effect)
            .fold(Self::default(), |legs, effect| Self {
                inbound: legs.inbound || effect.recreates_inbound(),
                outbound: legs.outbound || effect.recreates_outbound(),
            })
    }

    /// True when at least one leg is re-created.
    pub fn any(self) -> bool {
        self.inbound || self.outbound
    }
}
