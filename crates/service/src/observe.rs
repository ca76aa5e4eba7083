//! What the use cases report as they work, for whoever watches (the API's metrics): a port,
//! so that the use cases know no global and a test can watch them too.

/// A watcher of the use cases. Every method has an empty default.
pub trait Observe: Send + Sync {
    /// A write to `owner`'s trunks ended, done or not (what was cached of them may be stale).
    fn written(&self, owner: domain::UserId) {
        let _ = owner;
    }

    /// One call to the voice infrastructure ended: `infrastructure` is its name
    /// (`kamailio`), `operation` what was asked (`create inbound leg`), `outcome` one of
    /// `ok`, `number_taken`, `refused`, `unauthorized`, `unavailable`. All three come from
    /// fixed sets: a stranger cannot add values.
    fn infrastructure_call(&self, infrastructure: &str, operation: &str, outcome: &str) {
        let _ = (infrastructure, operation, outcome);
    }

    /// The stored work failed in a way the operator should count: `kind` is `unavailable`,
    /// `corrupt` or `internal`.
    fn storage_failed(&self, kind: &'static str) {
        let _ = kind;
    }

    /// A reconciler pass, or one trunk's repair in it, failed: `error` is a
    /// [`crate::ReconcileError::metric_label`], from a fixed set.
    fn reconciler_failed(&self, error: &'static str) {
        let _ = error;
    }

    /// A reconciler pass found `count` removals due.
    fn due_removals(&self, count: usize) {
        let _ = count;
    }

    /// A reconciler pass claimed `count` trunks whose lease ran out.
    fn due_trunks(&self, count: usize) {
        let _ = count;
    }

    /// A carrier was probed: `outcome` is `answered`, `timeout`, `icmp_unreachable` or
    /// `dns_failure` ([`crate::carriers::outcome_label`]), never the carrier's own text.
    fn carrier_probed(&self, outcome: &'static str) {
        let _ = outcome;
    }

    /// The stored trunks counted by their carrier's state, after a prober pass.
    fn carrier_trunks(&self, counts: domain::TrunksByCarrierState) {
        let _ = counts;
    }
}

/// Watches nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl Observe for Unobserved {}
