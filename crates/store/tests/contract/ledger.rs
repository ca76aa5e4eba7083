//! The provisioning ledger's contract: hidden creates, leases, commits that re-apply the
//! client's update, the removal queue, claims, and the one reconciler lease.

use std::time::Duration;

use domain::{
    Lease, LegCommit, LegId, LegKind, Patch, ProvisioningState, RepositoryError,
    SipTrunkPatchInput, Timestamp, TrunkId, TrunkPage, TrunkType,
};

use super::cases::{nickname_patch, number_trunk, patch, user, NO_LIMIT};
use super::fixtures::Fixture;

pub(crate) fn lease(token: &str, seconds: i64) -> Lease {
    Lease {
        token: token.into(),
        until: Timestamp::from_unix_micros(Timestamp::now().unix_micros() + seconds * 1_000_000)
            .unwrap(),
    }
}

fn leg(id: &str) -> LegId {
    LegId::new(id).unwrap()
}

fn queued(fixture: &Fixture) -> Vec<(LegKind, String)> {
    let mut legs: Vec<(LegKind, String)> = fixture
        .ledger
        .due_removals(Timestamp::now(), 1000)
        .unwrap()
        .into_iter()
        .map(|removal| (removal.kind, removal.leg.as_str().to_owned()))
        .collect();
    legs.sort();
    legs
}

pub fn ledger_a_trunk_being_created_is_hidden_until_finished_and_still_holds_its_identity(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let new = number_trunk("+14155551234");
    let pending = fixture
        .ledger
        .begin_create(owner, &new, NO_LIMIT, &lease("creator", 30))
        .unwrap();
    let listed = fixture
        .trunks
        .list_trunks(owner, TrunkPage::first(100))
        .unwrap();
    assert!(listed.trunks.is_empty());
    assert!(matches!(
        fixture.trunks.get_trunk(owner, pending.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.trunks.delete_trunk(owner, pending.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture
            .trunks
            .update_trunk(owner, pending.id, &nickname_patch("x")),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.trunks.create_trunk(owner, &new, NO_LIMIT),
        Err(RepositoryError::Conflict)
    ));
    assert!(matches!(
        fixture.ledger.finish_create(
            owner,
            pending.id,
            "someone else",
            &leg("ST_in"),
            &leg("ST_out")
        ),
        Err(RepositoryError::LeaseLost)
    ));
    let done = fixture
        .ledger
        .finish_create(owner, pending.id, "creator", &leg("ST_in"), &leg("ST_out"))
        .unwrap();
    assert_eq!(done.inbound_trunk_id, Some(leg("ST_in")));
    let read = fixture.trunks.get_trunk(owner, pending.id).unwrap();
    assert_eq!(read.outbound_trunk_id, Some(leg("ST_out")));
    assert_eq!(read.settings, new.clone().without_password());
}

pub fn ledger_an_abandoned_create_is_gone_and_the_legs_it_made_are_queued(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let new = number_trunk("+14155551234");
    let pending = fixture
        .ledger
        .begin_create(owner, &new, NO_LIMIT, &lease("creator", 30))
        .unwrap();
    fixture
        .ledger
        .abandon_create(
            owner,
            pending.id,
            "creator",
            &[(LegKind::Inbound, leg("ST_in"))],
        )
        .unwrap();
    assert_eq!(queued(fixture), [(LegKind::Inbound, "ST_in".to_owned())]);
    // The identity is free again, and the id is never reused.
    let again = fixture.trunks.create_trunk(owner, &new, NO_LIMIT).unwrap();
    assert!(again.id > pending.id);
    assert!(matches!(
        fixture
            .ledger
            .abandon_create(owner, pending.id, "creator", &[]),
        Err(RepositoryError::LeaseLost)
    ));
}

pub fn ledger_a_lease_has_one_holder_until_it_runs_out(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let (opened, state) = fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("first", 30), false)
        .unwrap();
    assert_eq!(opened.settings.sip_password, trunk.settings.sip_password);
    assert_eq!(state, ProvisioningState::Ready);
    assert!(matches!(
        fixture
            .ledger
            .lease_trunk(owner, trunk.id, &lease("second", 30), false),
        Err(RepositoryError::LeaseLost)
    ));
    // The holder may renew; a lease that ran out can be taken over.
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("first", -1), false)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("second", 30), false)
        .unwrap();
    assert!(matches!(
        fixture
            .ledger
            .release_trunk(owner, trunk.id, "first", ProvisioningState::Ready, &[]),
        Err(RepositoryError::LeaseLost)
    ));
    fixture
        .ledger
        .release_trunk(owner, trunk.id, "second", ProvisioningState::Ready, &[])
        .unwrap();
    let other = user(fixture, "b@example.com");
    assert!(matches!(
        fixture
            .ledger
            .lease_trunk(other, trunk.id, &lease("x", 30), false),
        Err(RepositoryError::NotFound)
    ));
}

pub fn ledger_committed_legs_replace_the_old_ones_which_are_queued_for_removal(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let pending = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155551234"),
            NO_LIMIT,
            &lease("c", 30),
        )
        .unwrap();
    fixture
        .ledger
        .finish_create(owner, pending.id, "c", &leg("ST_in1"), &leg("ST_out1"))
        .unwrap();
    let (current, _) = fixture
        .ledger
        .lease_trunk(owner, pending.id, &lease("u", 30), false)
        .unwrap();
    let change = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            sip_address: Patch::Value("sip2.carrier.example".into()),
            ..Default::default()
        },
    );
    let next = change.apply(&current, Timestamp::now()).unwrap();
    assert!(next.legs.outbound && !next.legs.inbound);
    let update = fixture
        .ledger
        .commit_legs(
            owner,
            pending.id,
            "u",
            &LegCommit {
                patch: Some(change.clone()),
                provisioned: next.trunk.settings.clone(),
                inbound: None,
                outbound: Some(leg("ST_out2")),
                remove: vec![(LegKind::Outbound, leg("ST_out1"))],
                state: ProvisioningState::Ready,
            },
        )
        .unwrap();
    assert!(update.changed);
    let read = fixture.trunks.get_trunk(owner, pending.id).unwrap();
    assert_eq!(read.settings.sip_address.as_str(), "sip2.carrier.example");
    assert_eq!(read.inbound_trunk_id, Some(leg("ST_in1")));
    assert_eq!(read.outbound_trunk_id, Some(leg("ST_out2")));
    assert_eq!(queued(fixture), [(LegKind::Outbound, "ST_out1".to_owned())]);
    // The lease ended with the commit.
    fixture
        .ledger
        .lease_trunk(owner, pending.id, &lease("another", 30), false)
        .unwrap();
}

pub fn ledger_a_commit_for_settings_changed_meanwhile_writes_nothing(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let (current, _) = fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("u", 30), false)
        .unwrap();
    // Another replica changed the address while this one made legs for the old one.
    let moved = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            sip_address: Patch::Value("moved.carrier.example".into()),
            ..Default::default()
        },
    );
    fixture
        .trunks
        .update_trunk(owner, trunk.id, &moved)
        .unwrap();
    let outcome = fixture.ledger.commit_legs(
        owner,
        trunk.id,
        "u",
        &LegCommit {
            patch: None,
            provisioned: current.settings.clone(),
            inbound: Some(leg("ST_new")),
            outbound: None,
            remove: vec![],
            state: ProvisioningState::Ready,
        },
    );
    assert!(
        matches!(outcome, Err(RepositoryError::LeaseLost)),
        "{outcome:?}"
    );
    let read = fixture.trunks.get_trunk(owner, trunk.id).unwrap();
    assert_eq!(read.inbound_trunk_id, None);
    assert!(queued(fixture).is_empty());
}

pub fn ledger_a_concurrent_rename_survives_a_commit_of_new_legs(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let (current, _) = fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("u", 30), false)
        .unwrap();
    let change = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            sip_password: Patch::Value("Another-Pass-2".into()),
            ..Default::default()
        },
    );
    let next = change.apply(&current, Timestamp::now()).unwrap();
    fixture
        .trunks
        .update_trunk(owner, trunk.id, &nickname_patch("Renamed meanwhile"))
        .unwrap();
    fixture
        .ledger
        .commit_legs(
            owner,
            trunk.id,
            "u",
            &LegCommit {
                patch: Some(change.clone()),
                provisioned: next.trunk.settings.clone(),
                inbound: Some(leg("ST_in")),
                outbound: Some(leg("ST_out")),
                remove: vec![],
                state: ProvisioningState::Ready,
            },
        )
        .unwrap();
    let read = fixture.trunks.open_trunk(owner, trunk.id).unwrap();
    assert_eq!(
        read.settings.nickname.as_ref().map(|n| n.as_str()),
        Some("Renamed meanwhile")
    );
    assert_eq!(read.settings.sip_password.expose_secret(), "Another-Pass-2");
    assert_eq!(read.inbound_trunk_id, Some(leg("ST_in")));
}

pub fn ledger_a_deleted_trunk_queues_both_legs_and_removals_are_retried_when_due(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let pending = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155551234"),
            NO_LIMIT,
            &lease("c", 30),
        )
        .unwrap();
    fixture
        .ledger
        .finish_create(owner, pending.id, "c", &leg("ST_in"), &leg("ST_out"))
        .unwrap();
    let removals = fixture.ledger.delete_and_queue(owner, pending.id).unwrap();
    assert_eq!(removals.len(), 2);
    assert!(matches!(
        fixture.trunks.get_trunk(owner, pending.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.ledger.delete_and_queue(owner, pending.id),
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(
        queued(fixture),
        [
            (LegKind::Inbound, "ST_in".to_owned()),
            (LegKind::Outbound, "ST_out".to_owned())
        ]
    );
    let later = Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 60_000_000).unwrap();
    fixture
        .ledger
        .removal_failed(removals[0].id, later)
        .unwrap();
    fixture.ledger.removal_done(removals[1].id).unwrap();
    assert!(queued(fixture).is_empty(), "the failed one is not due yet");
    let due = fixture.ledger.due_removals(later, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].attempts), (removals[0].id, 1));
}

pub fn ledger_a_trunk_released_for_repair_is_claimed_once(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    assert!(fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap()
        .is_empty());
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("u", 30), false)
        .unwrap();
    fixture
        .ledger
        .release_trunk(
            owner,
            trunk.id,
            "u",
            ProvisioningState::Repair,
            &[(LegKind::Outbound, leg("ST_made"))],
        )
        .unwrap();
    assert_eq!(queued(fixture), [(LegKind::Outbound, "ST_made".to_owned())]);
    let claimed = fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].owner, claimed[0].id, claimed[0].state),
        (owner, trunk.id, ProvisioningState::Repair)
    );
    assert!(fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r2", 30), 10)
        .unwrap()
        .is_empty());
    // The trunk stays visible while in repair.
    fixture.trunks.get_trunk(owner, trunk.id).unwrap();
    // The claimer commits the repaired legs.
    let (current, state) = fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("r", 30), false)
        .unwrap();
    assert_eq!(state, ProvisioningState::Repair);
    fixture
        .ledger
        .commit_legs(
            owner,
            trunk.id,
            "r",
            &LegCommit {
                patch: None,
                provisioned: current.settings.clone(),
                inbound: Some(leg("ST_in")),
                outbound: Some(leg("ST_out")),
                remove: vec![],
                state: ProvisioningState::Ready,
            },
        )
        .unwrap();
    let far = Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 3_600_000_000).unwrap();
    assert!(fixture
        .ledger
        .claim_due(far, &lease("r3", 30), 10)
        .unwrap()
        .is_empty());
}

pub fn ledger_a_postponed_repair_is_not_claimed_before_its_time_but_a_client_may_lease_it(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("r", 30), true)
        .unwrap();
    let in_a_minute =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 60_000_000).unwrap();
    fixture
        .ledger
        .postpone_repair(
            owner,
            trunk.id,
            "r",
            &[(LegKind::Inbound, leg("PR_made"))],
            in_a_minute,
        )
        .unwrap();
    assert_eq!(queued(fixture), [(LegKind::Inbound, "PR_made".to_owned())]);
    assert!(
        fixture
            .ledger
            .claim_due(Timestamp::now(), &lease("r2", 30), 10)
            .unwrap()
            .is_empty(),
        "claimed before its retry time"
    );
    let later = Timestamp::from_unix_micros(in_a_minute.unix_micros() + 1_000_000).unwrap();
    let claimed = fixture
        .ledger
        .claim_due(later, &lease("r3", 30), 10)
        .unwrap();
    assert_eq!(
        claimed.iter().map(|c| (c.id, c.state)).collect::<Vec<_>>(),
        [(trunk.id, ProvisioningState::Repair)]
    );
    // The lease "r" is gone: a second postpone by the old holder is refused.
    assert!(matches!(
        fixture
            .ledger
            .postpone_repair(owner, trunk.id, "r", &[], in_a_minute),
        Err(RepositoryError::LeaseLost)
    ));

    // A postponed trunk is still open to a client's update.
    let other = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550000"), NO_LIMIT)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, other.id, &lease("r4", 30), true)
        .unwrap();
    fixture
        .ledger
        .postpone_repair(owner, other.id, "r4", &[], in_a_minute)
        .unwrap();
    let (_, state) = fixture
        .ledger
        .lease_trunk(owner, other.id, &lease("client", 30), false)
        .unwrap();
    assert_eq!(state, ProvisioningState::Repair);
}

pub fn ledger_a_create_whose_lease_ran_out_is_claimed_for_rollback(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let pending = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155551234"),
            NO_LIMIT,
            &lease("dead", 1),
        )
        .unwrap();
    assert!(fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap()
        .is_empty());
    std::thread::sleep(Duration::from_millis(1100));
    let claimed = fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].state, ProvisioningState::Creating);
    // Its creator wakes up too late.
    assert!(matches!(
        fixture
            .ledger
            .finish_create(owner, pending.id, "dead", &leg("ST_in"), &leg("ST_out")),
        Err(RepositoryError::LeaseLost)
    ));
    fixture
        .ledger
        .abandon_create(owner, pending.id, "r", &[])
        .unwrap();
    let references = fixture.ledger.leg_references(None, 10).unwrap();
    assert!(references.is_empty());
}

pub fn ledger_the_reconciler_lease_has_one_holder_at_a_time(fixture: &Fixture) {
    let soon = lease("", 30).until;
    assert!(fixture.ledger.take_reconciler_lease("a", soon).unwrap());
    assert!(!fixture.ledger.take_reconciler_lease("b", soon).unwrap());
    assert!(
        fixture.ledger.take_reconciler_lease("a", soon).unwrap(),
        "renewed"
    );
    let past = lease("", -1).until;
    assert!(fixture.ledger.take_reconciler_lease("a", past).unwrap());
    assert!(
        fixture.ledger.take_reconciler_lease("b", soon).unwrap(),
        "taken over once it ran out"
    );
}

pub fn ledger_leg_references_cover_every_trunk_hidden_ones_included(fixture: &Fixture) {
    let alice = user(fixture, "a@example.com");
    let bob = user(fixture, "b@example.com");
    let first = fixture
        .trunks
        .create_trunk(alice, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let hidden = fixture
        .ledger
        .begin_create(
            bob,
            &number_trunk("+14155550000"),
            NO_LIMIT,
            &lease("c", 30),
        )
        .unwrap();
    let references = fixture.ledger.leg_references(None, 10).unwrap();
    let seen: Vec<_> = references
        .iter()
        .map(|r| (r.id, r.owner, r.state, r.leased))
        .collect();
    assert_eq!(
        seen,
        [
            (first.id, alice, ProvisioningState::Ready, false),
            (hidden.id, bob, ProvisioningState::Creating, true)
        ]
    );
    let rest = fixture.ledger.leg_references(Some(first.id), 10).unwrap();
    assert_eq!(rest.len(), 1);
}

pub fn ledger_only_a_ready_trunk_nobody_works_on_is_marked_for_repair(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let free = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let busy = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550000"), NO_LIMIT)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, busy.id, &lease("u", 30), false)
        .unwrap();
    fixture.ledger.mark_for_repair(owner, free.id).unwrap();
    fixture.ledger.mark_for_repair(owner, busy.id).unwrap();
    let claimed = fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap();
    let ids: Vec<_> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(ids, [free.id]);
}

pub fn ledger_a_holder_that_dies_while_changing_legs_leaves_the_trunk_to_the_reconciler(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("dies", 1), true)
        .unwrap();
    assert!(fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap()
        .is_empty());
    std::thread::sleep(Duration::from_millis(1100));
    let claimed = fixture
        .ledger
        .claim_due(Timestamp::now(), &lease("r", 30), 10)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].state, ProvisioningState::Repair);
}

pub fn ledger_a_lease_is_renewed_by_its_holder_only_and_never_after_it_ended(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    fixture
        .ledger
        .lease_trunk(owner, trunk.id, &lease("first", -1), true)
        .unwrap();
    // Ran out, but nobody took it over: still the holder's.
    let later = lease("first", 30).until;
    fixture
        .ledger
        .renew_lease(trunk.id, "first", later)
        .unwrap();
    assert_eq!(
        fixture.ledger.renew_lease(trunk.id, "second", later),
        Err(RepositoryError::LeaseLost)
    );
    // Renewed: another holder cannot take it now.
    assert!(matches!(
        fixture
            .ledger
            .lease_trunk(owner, trunk.id, &lease("second", 30), false),
        Err(RepositoryError::LeaseLost)
    ));
    fixture
        .ledger
        .release_trunk(owner, trunk.id, "first", ProvisioningState::Ready, &[])
        .unwrap();
    assert_eq!(
        fixture.ledger.renew_lease(trunk.id, "first", later),
        Err(RepositoryError::LeaseLost),
        "the work ended"
    );
    // A create's hidden row is renewed alike.
    let new = number_trunk("+14155550000");
    let pending = fixture
        .ledger
        .begin_create(owner, &new, NO_LIMIT, &lease("creator", 1))
        .unwrap();
    fixture
        .ledger
        .renew_lease(pending.id, "creator", later)
        .unwrap();
    assert_eq!(
        fixture
            .ledger
            .renew_lease(TrunkId::new(999_999).unwrap(), "creator", later),
        Err(RepositoryError::LeaseLost)
    );
}

pub fn ledger_a_retried_create_waits_for_a_live_one_and_takes_a_dead_ones_place(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let new = number_trunk("+14155551234");
    let first = fixture
        .ledger
        .begin_create(owner, &new, NO_LIMIT, &lease("first", 30))
        .unwrap();
    // In flight: the retry is told to wait, not that a trunk it cannot see exists.
    assert!(matches!(
        fixture
            .ledger
            .begin_create(owner, &new, NO_LIMIT, &lease("retry", 30)),
        Err(RepositoryError::LeaseLost)
    ));
    // Its creator dies: the lease runs out.
    fixture
        .ledger
        .renew_lease(first.id, "first", lease("", -1).until)
        .unwrap();
    let retried = fixture
        .ledger
        .begin_create(owner, &new, NO_LIMIT, &lease("retry", 30))
        .unwrap();
    assert_ne!(retried.id, first.id);
    assert!(matches!(
        fixture
            .ledger
            .finish_create(owner, first.id, "first", &leg("ST_in1"), &leg("ST_out1")),
        Err(RepositoryError::LeaseLost)
    ));
    fixture
        .ledger
        .finish_create(owner, retried.id, "retry", &leg("ST_in2"), &leg("ST_out2"))
        .unwrap();
    // Now the caller can see it: a conflict, on either path.
    assert!(matches!(
        fixture
            .ledger
            .begin_create(owner, &new, NO_LIMIT, &lease("third", 30)),
        Err(RepositoryError::Conflict)
    ));
    assert!(matches!(
        fixture.trunks.create_trunk(owner, &new, NO_LIMIT),
        Err(RepositoryError::Conflict)
    ));
    let listed = fixture
        .trunks
        .list_trunks(owner, TrunkPage::first(100))
        .unwrap();
    assert_eq!(listed.trunks.len(), 1);
    let references = fixture.ledger.leg_references(None, 10).unwrap();
    assert_eq!(references.len(), 1, "the dead create's row is gone");
}

pub fn ledger_an_update_onto_a_dead_hidden_creates_identity_succeeds_and_a_live_ones_conflicts(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let visible = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    let hidden = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155550002"),
            NO_LIMIT,
            &lease("creator", 30),
        )
        .unwrap();
    let onto_hidden = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            phone_number: Patch::Value("+14155550002".into()),
            ..Default::default()
        },
    );
    // A create in flight still holds its identity: it is shown within seconds, or rolled back.
    assert!(matches!(
        fixture.trunks.update_trunk(owner, visible.id, &onto_hidden),
        Err(RepositoryError::Conflict)
    ));
    fixture
        .ledger
        .renew_lease(hidden.id, "creator", lease("", -1).until)
        .unwrap();
    let updated = fixture
        .trunks
        .update_trunk(owner, visible.id, &onto_hidden)
        .unwrap();
    assert_eq!(updated.trunk.settings.phone_number.as_str(), "+14155550002");
    assert!(matches!(
        fixture
            .ledger
            .finish_create(owner, hidden.id, "creator", &leg("ST_in"), &leg("ST_out")),
        Err(RepositoryError::LeaseLost)
    ));
}

fn micros_from_now(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(Timestamp::now().unix_micros() + micros).unwrap()
}

pub fn ledger_leg_checks_and_failures_are_kept_per_trunk_and_read_by_its_owner_only(
    fixture: &Fixture,
) {
    use domain::{LegCheck, ProvisioningFailure};
    let owner = user(fixture, "a@example.com");
    let stranger = user(fixture, "b@example.com");
    let pending = fixture
        .ledger
        .begin_create(
            owner,
            &number_trunk("+14155551234"),
            NO_LIMIT,
            &lease("c", 30),
        )
        .unwrap();
    assert!(matches!(
        fixture.ledger.provisioning_record(owner, pending.id),
        Err(RepositoryError::NotFound)
    ));
    let trunk = fixture
        .ledger
        .finish_create(owner, pending.id, "c", &leg("in-1"), &leg("out-1"))
        .unwrap();
    let fresh = fixture.ledger.provisioning_record(owner, trunk.id).unwrap();
    assert_eq!(fresh.state, ProvisioningState::Ready);
    assert_eq!(
        (fresh.inbound, fresh.outbound),
        (Some(leg("in-1")), Some(leg("out-1")))
    );
    assert_eq!(
        (fresh.check, fresh.last_full_scan, fresh.failure),
        (None, None, None)
    );
    assert!(matches!(
        fixture.ledger.provisioning_record(stranger, trunk.id),
        Err(RepositoryError::NotFound)
    ));

    let divergent = LegCheck {
        trunk: trunk.id,
        inbound: Some((leg("in-1"), false)),
        outbound: Some((leg("out-1"), true)),
    };
    let scan = micros_from_now(1_234_567);
    fixture
        .ledger
        .record_leg_checks(std::slice::from_ref(&divergent), scan, true)
        .unwrap();
    let seen = fixture.ledger.provisioning_record(owner, trunk.id).unwrap();
    assert_eq!(seen.check, Some((divergent.clone(), scan)));
    assert_eq!(seen.last_full_scan, Some(scan));
    let held: Vec<_> = seen.legs().iter().map(|leg| leg.held).collect();
    assert_eq!(held, [Some(false), Some(true)]);

    let failed_at = micros_from_now(2_000_001);
    fixture
        .ledger
        .record_provisioning_failure(trunk.id, ProvisioningFailure::Unavailable, failed_at)
        .unwrap();
    let repaired = LegCheck {
        trunk: trunk.id,
        inbound: Some((leg("in-2"), true)),
        outbound: Some((leg("out-1"), true)),
    };
    let after_repair = micros_from_now(3_000_003);
    fixture
        .ledger
        .record_leg_checks(std::slice::from_ref(&repaired), after_repair, false)
        .unwrap();
    let seen = fixture.ledger.provisioning_record(owner, trunk.id).unwrap();
    assert_eq!(seen.check, Some((repaired, after_repair)));
    assert_eq!(seen.last_full_scan, Some(scan), "not a full scan");
    assert_eq!(
        seen.failure,
        Some((ProvisioningFailure::Unavailable, failed_at))
    );

    // A deleted trunk's notes go with it (the raw table on SQL stores), and a failure noted
    // after its delete is not kept.
    fixture.trunks.delete_trunk(owner, trunk.id).unwrap();
    fixture
        .ledger
        .record_provisioning_failure(trunk.id, ProvisioningFailure::Refused, failed_at)
        .unwrap();
    if let Some(sql) = &fixture.sql {
        let rows: i64 = sql
            .with_connection(|conn| {
                use diesel::prelude::*;
                diesel::sql_query("SELECT COUNT(*) AS n FROM trunk_observations")
                    .get_result::<Count>(conn)
                    .map(|count| count.n)
            })
            .unwrap();
        assert_eq!(rows, 0);
    }
    fixture
        .ledger
        .record_leg_checks(&[], micros_from_now(4_000_000), true)
        .unwrap();
    assert!(matches!(
        fixture.ledger.provisioning_record(owner, trunk.id),
        Err(RepositoryError::NotFound)
    ));
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub fn a_trunks_probe_slot_is_taken_once_per_spacing_even_by_racing_replicas(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let stranger = user(fixture, "b@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let spacing = Duration::from_secs(10);
    assert!(matches!(
        fixture
            .ledger
            .claim_probe_slot(stranger, trunk.id, Timestamp::now(), spacing),
        Err(RepositoryError::NotFound)
    ));
    let now = Timestamp::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let ledger = fixture.ledger.clone();
            std::thread::spawn(move || ledger.claim_probe_slot(owner, trunk.id, now, spacing))
        })
        .collect();
    let answers: Vec<_> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap().unwrap())
        .collect();
    assert_eq!(
        answers.iter().filter(|a| a.is_none()).count(),
        1,
        "{answers:?}"
    );
    for wait in answers.iter().flatten() {
        assert_eq!(*wait, now.plus(spacing));
    }
    let almost = now.plus(Duration::from_millis(9_999));
    assert_eq!(
        fixture
            .ledger
            .claim_probe_slot(owner, trunk.id, almost, spacing)
            .unwrap(),
        Some(now.plus(spacing))
    );
    assert_eq!(
        fixture
            .ledger
            .claim_probe_slot(owner, trunk.id, now.plus(spacing), spacing)
            .unwrap(),
        None
    );
}
