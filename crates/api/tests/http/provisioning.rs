//! Provisioning through the HTTP API, in process, against the LiveKit stand-in, on the
//! in-memory store, SQLite and (with `TEST_DATABASE_URL`) PostgreSQL: both legs per trunk,
//! every row of the re-provision table, every step failing, and the reconciler healing what
//! a failure or a death between two steps left. After every scenario the invariant is
//! checked: LiveKit holds exactly the legs the stored trunks reference.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::state::AccountLimits;
use api::AppState;
use domain::{
    AccountRepository, ApiKeyName, ApiToken, CarrierHealthStore, Email, LegKind, NewSipTrunk,
    NewSipTrunkInput, NumberConflictBudget, NumberConflictLog, ProvisioningLedger,
    SipTrunkRepository, TokenSecret, UserName, VoiceInfrastructure,
};
use livekit_adapter::{ApiSecret, LiveKit, LiveKitSettings};
use livekit_standin::{Fault, StandIn};
use serde_json::{json, Value};
use service::reconciler::Reconciler;
use service::{new_lease, Provisioner};
use store::testing::TempPgSchema;
use store::{DatabaseUrl, EncryptionKey, Keyring, MemoryStore, PoolOptions, SqlStore};

use crate::support::{number_trunk, request, TestApp};

/// Which store a rig runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

/// The app over one store, provisioning on a stand-in.
pub struct Rig {
    pub standin: StandIn,
    pub state: AppState,
    pub provisioner: Arc<Provisioner>,
    pub ledger: Arc<dyn ProvisioningLedger>,
    pub trunks: Arc<dyn SipTrunkRepository>,
    pub token: String,
    _cleanup: (Option<tempfile::TempDir>, Option<TempPgSchema>),
}

fn livekit(standin: &StandIn) -> Arc<dyn VoiceInfrastructure> {
    let mut settings = LiveKitSettings::new(
        standin.url(),
        standin.api_key(),
        ApiSecret::new(standin.api_secret()),
    );
    settings.request_timeout = Duration::from_millis(400);
    settings.first_backoff = Duration::from_millis(10);
    Arc::new(LiveKit::new(settings))
}

fn token_for(accounts: &dyn AccountRepository) -> String {
    let user = accounts
        .create_user(
            &Email::parse("owner@example.com").unwrap(),
            &UserName::parse("Owner").unwrap(),
        )
        .unwrap();
    let secret = TokenSecret::generate();
    let key = accounts
        .create_api_key(
            user.id,
            &ApiKeyName::parse("t").unwrap(),
            &secret.hash(),
            100,
        )
        .unwrap();
    ApiToken::new(key.id, secret).expose_secret()
}

/// One store behind each of the ports a rig uses.
type StorePorts = (
    Arc<dyn SipTrunkRepository>,
    Arc<dyn AccountRepository>,
    Arc<dyn ProvisioningLedger>,
    Arc<dyn NumberConflictLog>,
    Arc<dyn CarrierHealthStore>,
);

/// A rig on `backend`, `None` when PostgreSQL is asked for but not configured.
pub fn rig(backend: Backend) -> Option<Rig> {
    let standin = StandIn::start();
    let (mut dir, mut schema) = (None, None);
    let (trunks, accounts, ledger, number_conflicts, carriers): StorePorts = match backend {
        Backend::Memory => {
            let store = Arc::new(MemoryStore::new());
            (
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store,
            )
        }
        Backend::Sqlite | Backend::Postgres => {
            let url = if matches!(backend, Backend::Sqlite) {
                let temp = tempfile::tempdir().unwrap();
                let url = DatabaseUrl::SqliteFile(temp.path().join("t.db"));
                dir = Some(temp);
                url
            } else {
                let pg = TempPgSchema::from_env("provisioning")?;
                let url = DatabaseUrl::parse(pg.url()).unwrap();
                schema = Some(pg);
                url
            };
            let options = PoolOptions {
                max_size: 4,
                ..PoolOptions::default()
            };
            let store =
                SqlStore::open(&url, Keyring::new(EncryptionKey::generate().0), options).unwrap();
            store.migrate().unwrap();
            let store = Arc::new(store);
            (
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store,
            )
        }
    };
    let token = token_for(accounts.as_ref());
    let provisioner = Arc::new(
        Provisioner::new(livekit(&standin), ledger.clone()).with_budget(Duration::from_secs(5)),
    );
    let state = AppState {
        trunks: trunks.clone(),
        accounts,
        number_conflicts,
        notes: ledger.clone(),
        carriers,
        ..AppState::new(Arc::new(MemoryStore::new()), Arc::new(|| Ok(())))
    }
    .with_read_cache(Duration::ZERO, 0)
    .with_provisioner(provisioner.clone());
    Some(Rig {
        standin,
        state,
        provisioner,
        ledger,
        trunks,
        token,
        _cleanup: (dir, schema),
    })
}

impl Rig {
    /// The account the rig's token belongs to.
    pub fn owner(&self) -> domain::UserId {
        self.state
            .accounts
            .authenticate(&ApiToken::parse(&self.token).unwrap())
            .unwrap()
            .owner
    }

    /// One reconciler pass with the full scan, and one more for what it marked; orphans
    /// count at once.
    pub async fn reconcile(&self) -> Vec<String> {
        let reconciler = Reconciler::new(
            self.provisioner.clone(),
            self.trunks.clone(),
            Arc::new(|_| {}),
        )
        .with_orphan_grace(Duration::ZERO);
        let mut lines = reconciler.pass(true, false).await.unwrap().lines();
        lines.extend(reconciler.pass(false, false).await.unwrap().lines());
        // The next call's reconciler is another holder: it must not find the lease taken.
        reconciler.give_up_lease().await;
        lines
    }

    /// One reconciler pass without the full scan: only what the ledger says is due (queued
    /// removals, trunks left in repair or whose lease ran out).
    pub async fn reconcile_due_work(&self) -> Vec<String> {
        let reconciler = Reconciler::new(
            self.provisioner.clone(),
            self.trunks.clone(),
            Arc::new(|_| {}),
        );
        let lines = reconciler.pass(false, false).await.unwrap().lines();
        reconciler.give_up_lease().await;
        lines
    }

    /// The legs every stored trunk references.
    pub fn referenced(&self) -> BTreeSet<String> {
        self.ledger
            .leg_references(None, 100_000)
            .unwrap()
            .into_iter()
            .flat_map(|r| [r.inbound, r.outbound])
            .flatten()
            .map(|leg| leg.as_str().to_owned())
            .collect()
    }

    /// LiveKit holds exactly the legs the stored trunks reference, and every trunk has both.
    pub fn assert_invariant(&self) {
        let held: BTreeSet<String> = self.standin.trunk_ids().into_iter().collect();
        assert_eq!(held, self.referenced(), "LiveKit's legs vs the stored ones");
        for reference in self.ledger.leg_references(None, 100_000).unwrap() {
            assert!(
                reference.inbound.is_some() && reference.outbound.is_some(),
                "trunk {} lacks a leg: {reference:?}",
                reference.id
            );
        }
    }

    /// The LiveKit methods called since `from` (an index in the journal).
    pub fn calls_since(&self, from: usize) -> Vec<String> {
        self.standin.journal()[from..]
            .iter()
            .map(|call| format!("{} {}", call.method, call.outcome))
            .collect()
    }
}

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;
                #[actix_web::test]
                async fn memory() { if let Some(rig) = rig(Backend::Memory) { super::$case(rig).await } }
                #[actix_web::test]
                async fn sqlite() { if let Some(rig) = rig(Backend::Sqlite) { super::$case(rig).await } }
                #[actix_web::test]
                async fn postgres() { if let Some(rig) = rig(Backend::Postgres) { super::$case(rig).await } }
            }
        )*
    };
}

on_every_backend!(
    with_livekit_the_simulator_follows_livekits_inbound_matching,
    the_status_shows_each_leg_as_the_reconciler_last_saw_it_and_the_last_failure,
    a_created_trunk_has_both_legs_and_shows_their_ids,
    each_field_re_creates_exactly_the_legs_of_the_contracts_table,
    a_failed_inbound_create_stores_nothing_and_leaves_no_leg,
    a_failed_outbound_create_stores_nothing_and_removes_the_inbound_leg,
    a_number_another_trunk_holds_is_the_contracts_422_and_stores_nothing,
    past_its_number_taken_budget_an_account_gets_429_for_every_number_taken_or_not,
    a_failed_outbound_re_create_leaves_the_trunk_and_its_legs_as_they_were,
    a_failed_inbound_re_create_keeps_the_settings_and_the_reconciler_restores_a_leg,
    a_trunk_whose_repair_keeps_failing_backs_off_alone_while_the_others_are_repaired,
    a_delete_while_livekit_is_down_succeeds_and_the_legs_go_once_it_is_back,
    a_slow_livekit_gets_the_500_within_the_budget_and_nothing_stays,
    a_create_that_died_between_its_legs_is_rolled_back_by_the_reconciler,
    an_update_that_died_after_removing_the_inbound_leg_is_healed,
    legs_removed_or_changed_behind_our_back_are_re_created,
    orphans_of_the_registry_are_removed_and_other_systems_legs_are_left_alone,
    two_deployments_on_one_livekit_each_keep_exactly_their_own_legs,
    two_replicas_on_a_slow_livekit_give_every_trunk_its_legs_each_made_once,
    an_update_behind_a_dead_holders_lease_waits_for_it_and_succeeds,
    a_create_retried_after_its_process_died_is_created_not_refused_as_a_409,
    a_wrong_livekit_secret_fails_cleanly_without_showing_it,
    a_new_number_another_trunk_holds_is_the_422_and_the_old_inbound_leg_comes_back,
    a_failed_removal_of_the_old_inbound_leg_changes_nothing_and_is_healed,
    a_number_held_by_a_leg_of_a_trunk_that_no_longer_exists_is_freed_for_a_create,
    a_rename_through_the_phone_number_endpoint_calls_no_voice_infrastructure,
);

/// Every LiveKit call of create, update (a password change re-creates both legs) and delete,
/// failing once (retried: the request succeeds) and for good (the contract's answer, nothing
/// changed), on every backend; the invariant holds after each, once the reconciler ran.
mod every_step_failing_once_and_for_good {
    use super::*;

    #[actix_web::test]
    async fn memory() {
        every_step_failing(Backend::Memory).await;
    }

    #[actix_web::test]
    async fn sqlite() {
        every_step_failing(Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        every_step_failing(Backend::Postgres).await;
    }
}

async fn every_step_failing(backend: Backend) {
    let steps = [
        ("create", "CreateSIPInboundTrunk"),
        ("create", "CreateSIPOutboundTrunk"),
        ("update", "CreateSIPOutboundTrunk"),
        ("update", "DeleteSIPTrunk"),
        ("update", "CreateSIPInboundTrunk"),
        ("delete", "DeleteSIPTrunk"),
    ];
    for (operation, method) in steps {
        for times in [1, 100] {
            let Some(rig) = rig(backend) else { return };
            let existing = if operation == "create" {
                None
            } else {
                Some(created(&rig).await)
            };
            let before = match &existing {
                Some((id, _, _)) => Some(get(&rig, *id).await.json()["data"].clone()),
                None => None,
            };
            rig.standin
                .fail_next_on(method, times, Fault::Status(503, "unavailable"));
            let what = format!("{operation} with {method} failing {times} time(s)");
            let reply = match (operation, &existing) {
                ("create", _) => create(&rig, &number_trunk()).await,
                ("update", Some((id, _, _))) => {
                    update(&rig, *id, &json!({"sip_password": "Changed-Pass-7"})).await
                }
                (_, Some((id, _, _))) => delete(&rig, *id).await,
                _ => unreachable!(),
            };
            let expected = match (operation, times) {
                ("create", 1) => (201, None),
                ("update", 1) | ("delete", _) => (200, None),
                ("create", _) => (500, Some(CREATE_FAILED)),
                _ => (500, Some(UPDATE_FAILED)),
            };
            assert_eq!(reply.status, expected.0, "{what}: {}", reply.text);
            if let Some(body) = expected.1 {
                assert_eq!(reply.text, body, "{what}");
            }
            rig.standin.clear_faults();
            if times > 1 {
                // What the request could not finish, the reconciler does; removals that
                // failed are due later (back-off): make them due now.
                let later = domain::Timestamp::from_unix_micros(
                    domain::Timestamp::now().unix_micros() + 3_600_000_000,
                )
                .unwrap();
                let due = rig.ledger.due_removals(later, 100).unwrap();
                rig.provisioner
                    .remove(due, Instant::now() + Duration::from_secs(5))
                    .await;
                rig.reconcile().await;
            }
            rig.assert_invariant();
            match (operation, times, &existing, &before) {
                ("create", 1, _, _) => assert_eq!(rig.standin.trunk_ids().len(), 2, "{what}"),
                ("create", _, _, _) => assert!(rig.standin.trunk_ids().is_empty(), "{what}"),
                ("update", 1, _, _) => {
                    assert_eq!(
                        rig.standin.inbound()[0].auth_password,
                        "Changed-Pass-7",
                        "{what}"
                    )
                }
                ("update", _, Some((id, _, _)), Some(before)) => {
                    let after = get(&rig, *id).await.json()["data"].clone();
                    assert_eq!(after["updated_at"], before["updated_at"], "{what}");
                    let held = &rig.standin.inbound()[0];
                    assert_eq!(held.auth_password, "Sup3r-Secret-Pass", "{what}");
                }
                ("delete", _, _, _) => assert!(rig.standin.trunk_ids().is_empty(), "{what}"),
                _ => unreachable!(),
            }
        }
    }
}

/// With the default budget, whatever LiveKit does (here: never answers), the API answers
/// within 15 s.
#[actix_web::test]
async fn the_api_answers_within_15_seconds_when_livekit_never_answers() {
    let rig = rig(Backend::Memory).unwrap();
    let provisioner = Arc::new(Provisioner::new(livekit(&rig.standin), rig.ledger.clone()));
    let state = rig.state.clone().with_provisioner(provisioner);
    rig.standin
        .fail_next(1000, Fault::Delay(Duration::from_secs(30)));
    let app = TestApp::spawn(state).await;
    let started = Instant::now();
    let reply = app.create_trunk(&rig.token, &number_trunk()).await;
    let took = started.elapsed();
    assert_eq!((reply.status, reply.text.as_str()), (500, CREATE_FAILED));
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(list(&rig).await, json!({"data": []}));
}

async fn create(rig: &Rig, body: &Value) -> crate::support::Reply {
    let app = TestApp::spawn(rig.state.clone()).await;
    app.create_trunk(&rig.token, body).await
}

async fn update(rig: &Rig, id: i64, body: &Value) -> crate::support::Reply {
    let app = TestApp::spawn(rig.state.clone()).await;
    app.update_trunk(&rig.token, id, body).await
}

async fn get(rig: &Rig, id: i64) -> crate::support::Reply {
    let app = TestApp::spawn(rig.state.clone()).await;
    app.get_trunk(&rig.token, id).await
}

async fn status(rig: &Rig, id: i64) -> Value {
    let app = TestApp::spawn(rig.state.clone()).await;
    let reply = app.trunk_status(&rig.token, id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["data"]["provisioning"].clone()
}

async fn list(rig: &Rig) -> Value {
    let app = TestApp::spawn(rig.state.clone()).await;
    app.list_trunks(&rig.token).await.json()
}

async fn delete(rig: &Rig, id: i64) -> crate::support::Reply {
    let app = TestApp::spawn(rig.state.clone()).await;
    app.send(request(
        "DELETE",
        &format!("/api/user/phone-numbers/{id}"),
        Some(&rig.token),
        None,
    ))
    .await
}

/// Creates the contract's number trunk; gives (id, inbound id, outbound id).
async fn created(rig: &Rig) -> (i64, String, String) {
    let reply = create(rig, &number_trunk()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let data = &reply.json()["data"];
    (
        data["id"].as_i64().unwrap(),
        data["inbound_trunk_id"].as_str().unwrap().to_owned(),
        data["outbound_trunk_id"].as_str().unwrap().to_owned(),
    )
}

const CREATE_FAILED: &str =
    r#"{"error":"Failed to create SIP trunk. Please try again or contact support."}"#;
const UPDATE_FAILED: &str =
    r#"{"error":"Failed to update SIP trunk. Please try again or contact support."}"#;

async fn a_created_trunk_has_both_legs_and_shows_their_ids(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    assert!(inbound.starts_with("ST_") && outbound.starts_with("ST_"));
    let held = rig.standin.inbound();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].sip_trunk_id.as_str(), held[0].numbers.as_slice()),
        (inbound.as_str(), ["+14155551234".to_owned()].as_slice())
    );
    assert_eq!(held[0].auth_password, "Sup3r-Secret-Pass");
    let out = rig.standin.outbound();
    assert_eq!(out[0].address, "sip.carrier.example");
    let read = get(&rig, id).await.json();
    assert_eq!(read["data"]["inbound_trunk_id"], inbound.as_str());
    assert_eq!(read["data"]["outbound_trunk_id"], outbound.as_str());
    rig.assert_invariant();
}

async fn a_rename_through_the_phone_number_endpoint_calls_no_voice_infrastructure(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    let journal = rig.standin.journal().len();
    let app = TestApp::spawn(rig.state.clone()).await;
    let reply = app
        .send(request(
            "PUT",
            &format!("/api/user/phone-numbers/{id}"),
            Some(&rig.token),
            Some(&json!({"nickname": "Renamed"})),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(rig.calls_since(journal), Vec::<String>::new());
    let read = get(&rig, id).await.json();
    assert_eq!(read["data"]["nickname"], "Renamed");
    assert_eq!(read["data"]["inbound_trunk_id"], inbound.as_str());
    assert_eq!(read["data"]["outbound_trunk_id"], outbound.as_str());
    rig.assert_invariant();
}

async fn each_field_re_creates_exactly_the_legs_of_the_contracts_table(rig: Rig) {
    let (id, _, _) = created(&rig).await;
    // (change, inbound re-created, outbound re-created)
    let table: Vec<(Value, bool, bool)> = vec![
        (json!({"sip_username": "new_user"}), true, true),
        (json!({"sip_password": "Another-Pass-9"}), true, true),
        (json!({"phone_number": "+14155550001"}), true, true),
        (json!({"sip_address": "sip2.carrier.example"}), false, true),
        (json!({"outbound_proxy": true}), false, true),
        (
            json!({"inbound_authorization_type": "ip", "allowed_inbound_ips": ["203.0.113.7"]}),
            true,
            false,
        ),
        (json!({"allowed_inbound_ips": ["203.0.113.8"]}), true, false),
        (json!({"nickname": "Renamed"}), false, false),
        (json!({"sip_calling_format": "e164"}), false, false),
        (json!({"country_code": "CA"}), false, false),
        (json!({}), false, false),
    ];
    for (change, inbound_changes, outbound_changes) in table {
        let before = get(&rig, id).await.json()["data"].clone();
        let journal = rig.standin.journal().len();
        let reply = update(&rig, id, &change).await;
        assert_eq!(reply.status, 200, "{change}: {}", reply.text);
        let after = &reply.json()["data"];
        assert_eq!(
            after["inbound_trunk_id"] != before["inbound_trunk_id"],
            inbound_changes,
            "{change}: inbound"
        );
        assert_eq!(
            after["outbound_trunk_id"] != before["outbound_trunk_id"],
            outbound_changes,
            "{change}: outbound"
        );
        if !inbound_changes && !outbound_changes {
            assert_eq!(rig.calls_since(journal), Vec::<String>::new(), "{change}");
        }
        rig.assert_invariant();
    }
    let held = &rig.standin.inbound()[0];
    assert_eq!(held.allowed_addresses, ["203.0.113.8"]);
    assert_eq!(held.numbers, ["+14155550001"]);
    let out = &rig.standin.outbound()[0];
    assert!(out.metadata.contains("\"outbound_proxy\":true"));
    assert_eq!(
        (out.address.as_str(), out.auth_username.as_str()),
        ("sip2.carrier.example", "new_user")
    );
}

async fn a_failed_inbound_create_stores_nothing_and_leaves_no_leg(rig: Rig) {
    rig.standin.fail_next_on(
        "CreateSIPInboundTrunk",
        10,
        Fault::Status(503, "unavailable"),
    );
    let reply = create(&rig, &number_trunk()).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, CREATE_FAILED));
    assert_eq!(list(&rig).await, json!({"data": []}));
    rig.standin.clear_faults();
    rig.assert_invariant();
    // The same trunk can be created once LiveKit answers.
    created(&rig).await;
    rig.assert_invariant();
}

async fn a_failed_outbound_create_stores_nothing_and_removes_the_inbound_leg(rig: Rig) {
    rig.standin.fail_next_on(
        "CreateSIPOutboundTrunk",
        1,
        Fault::Status(400, "invalid_argument"),
    );
    let reply = create(&rig, &number_trunk()).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, CREATE_FAILED));
    assert_eq!(list(&rig).await, json!({"data": []}));
    assert!(
        rig.standin.trunk_ids().is_empty(),
        "the inbound leg is removed"
    );
    rig.assert_invariant();
}

async fn a_number_another_trunk_holds_is_the_contracts_422_and_stores_nothing(rig: Rig) {
    rig.standin
        .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec!["+14155551234".into()],
            ..Default::default()
        });
    let reply = create(&rig, &number_trunk()).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json()["errors"],
        json!({"phone_number": ["The phone number is already connected to another SIP trunk."]})
    );
    assert_eq!(list(&rig).await, json!({"data": []}));
    assert_eq!(rig.standin.trunk_ids().len(), 1, "only the other system's");
}

async fn past_its_number_taken_budget_an_account_gets_429_for_every_number_taken_or_not(rig: Rig) {
    let mut rig = rig;
    rig.state = rig.state.clone().with_limits(AccountLimits {
        number_conflicts: NumberConflictBudget::per_hour(3),
        ..AccountLimits::default()
    });
    let taken: Vec<String> = (0..5).map(|n| format!("+1415555{n:04}")).collect();
    for number in &taken {
        rig.standin
            .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
                numbers: vec![number.clone()],
                ..Default::default()
            });
    }
    let with_number = |number: &str| {
        let mut body = number_trunk();
        body["phone_number"] = json!(number);
        body
    };
    for number in &taken[..3] {
        let reply = create(&rig, &with_number(number)).await;
        assert_eq!(reply.status, 422, "{number}: {}", reply.text);
    }
    let calls = rig.standin.journal().len();
    // A fourth taken number and a free one get the same answer, and LiveKit is not asked.
    for number in [taken[3].as_str(), "+14155559999"] {
        let reply = create(&rig, &with_number(number)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (
                429,
                r#"{"message":"Too many attempts with numbers connected elsewhere. Try again later."}"#
            ),
            "{number}"
        );
        let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&wait), "{wait}");
    }
    assert_eq!(rig.standin.journal().len(), calls, "no LiveKit call");
    assert_eq!(list(&rig).await, json!({"data": []}));

    // An update that sends a number is refused alike; one that does not goes through.
    rig.state = rig.state.clone().with_limits(AccountLimits::default());
    let created = create(&rig, &with_number("+14155558888")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["data"]["id"].as_i64().unwrap();
    rig.state = rig.state.clone().with_limits(AccountLimits {
        number_conflicts: NumberConflictBudget::per_hour(3),
        ..AccountLimits::default()
    });
    let reply = update(&rig, id, &json!({"phone_number": "+14155557777"})).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    let reply = update(&rig, id, &json!({"nickname": "still works"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = update(&rig, id, &json!({"sip_password": "An0ther-Secret"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        rig.standin.trunk_ids().len(),
        5 + 2,
        "the other system's and ours"
    );
}

async fn a_failed_outbound_re_create_leaves_the_trunk_and_its_legs_as_they_were(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    let before = get(&rig, id).await.text;
    rig.standin
        .fail_next_on("CreateSIPOutboundTrunk", 10, Fault::Status(500, "internal"));
    let reply = update(&rig, id, &json!({"sip_address": "sip2.carrier.example"})).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, UPDATE_FAILED));
    rig.standin.clear_faults();
    assert_eq!(get(&rig, id).await.text, before);
    assert_eq!(rig.standin.trunk_ids(), sorted([inbound, outbound]));
    rig.assert_invariant();
}

fn sorted<const N: usize>(ids: [String; N]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

async fn a_trunk_whose_repair_keeps_failing_backs_off_alone_while_the_others_are_repaired(
    rig: Rig,
) {
    let (a, a_inbound, _) = created(&rig).await;
    let mut second = number_trunk();
    second["phone_number"] = json!("+14155550001");
    let reply = create(&rig, &second).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let b = reply.json()["data"]["id"].as_i64().unwrap();
    let b_inbound = reply.json()["data"]["inbound_trunk_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both inbound legs are lost, and another system takes A's number meanwhile.
    assert!(rig.standin.remove(&a_inbound) && rig.standin.remove(&b_inbound));
    let foreign = rig
        .standin
        .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec!["+14155551234".into()],
            ..Default::default()
        });
    let reconciler = Reconciler::new(
        rig.provisioner.clone(),
        rig.trunks.clone(),
        Arc::new(|_| {}),
    );
    let pass = || async { reconciler.pass(false, false).await.unwrap().lines() };
    let marked = reconciler.pass(true, false).await.unwrap().lines();
    assert_eq!(marked.len(), 2, "{marked:?}");
    let failed = format!("repair trunk {a} failed: another trunk already receives calls");
    let lines = pass().await;
    assert!(lines.iter().any(|l| l.starts_with(&failed)), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("repair trunk {b}: "))),
        "B is repaired beside A's failure: {lines:?}"
    );
    // A one-off failure is tried again at once; the second in a row makes A wait.
    let lines = pass().await;
    assert!(lines.iter().any(|l| l.starts_with(&failed)), "{lines:?}");
    let from = rig.standin.journal().len();
    assert_eq!(pass().await, Vec::<String>::new(), "A waits its turn");
    assert_eq!(rig.calls_since(from), Vec::<String>::new());
    // Once the number is free and the wait (2 s) is over, A is repaired.
    assert!(rig.standin.remove(&foreign));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let lines = pass().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("repair trunk {a}: "))),
        "{lines:?}"
    );
    rig.assert_invariant();
}

async fn with_livekit_the_simulator_follows_livekits_inbound_matching(rig: Rig) {
    let app = TestApp::spawn(rig.state.clone()).await;
    let (id, _, _) = created(&rig).await;
    let mut listed = crate::support::extension_trunk();
    listed["allowed_inbound_ips"] = json!(["203.0.113.10"]);
    let ip = app.create_trunk(&rig.token, &listed).await.json()["data"]["id"]
        .as_i64()
        .unwrap();
    let ask = |body: Value| {
        request(
            "POST",
            "/api/user/phone-numbers/sip-trunks/simulate",
            Some(&rig.token),
            Some(&body),
        )
    };
    for (body, verdict, code, trunk) in [
        // LiveKit challenges as a user agent: 401.
        (
            json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": "+14155551234"}),
            "challenged",
            json!(401),
            json!(id),
        ),
        // It matches number and source together: a source off the list finds no trunk.
        (
            json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": "1000"}),
            "refused",
            json!(404),
            json!(ip),
        ),
        (
            json!({"direction": "inbound", "source_ip": "203.0.113.10", "to": "1000"}),
            "admitted",
            Value::Null,
            json!(ip),
        ),
    ] {
        let reply = app.send(ask(body.clone())).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let answer = &reply.json()["data"];
        assert_eq!(answer["rules"], "livekit");
        assert_eq!(
            (&answer["verdict"], &answer["sip_code"], &answer["trunk_id"]),
            (&json!(verdict), &code, &trunk),
            "{body}: {answer}"
        );
    }
}

async fn the_status_shows_each_leg_as_the_reconciler_last_saw_it_and_the_last_failure(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    let fresh = status(&rig, id).await;
    assert_eq!(
        fresh,
        json!({
            "state": "ready", "infrastructure": "livekit",
            "legs": {
                "inbound": {"id": inbound, "held": null, "checked_at": null},
                "outbound": {"id": outbound, "held": null, "checked_at": null}
            },
            "last_error": null
        }),
        "made, not yet looked at by a scan"
    );
    rig.reconcile().await;
    let scanned = status(&rig, id).await;
    for leg in ["inbound", "outbound"] {
        assert_eq!(scanned["legs"][leg]["held"], true, "{scanned}");
        assert!(scanned["legs"][leg]["checked_at"].is_string(), "{scanned}");
    }

    // LiveKit loses the inbound leg, and cannot make another for now.
    assert!(rig.standin.remove(&inbound));
    rig.standin.fail_next_on(
        "CreateSIPInboundTrunk",
        100,
        Fault::Status(503, "unavailable"),
    );
    let lines = rig.reconcile().await;
    assert!(lines.iter().any(|l| l.contains("failed")), "{lines:?}");
    let broken = status(&rig, id).await;
    assert_eq!(broken["state"], "repairing", "{broken}");
    assert_eq!(broken["legs"]["inbound"]["id"], inbound.as_str());
    assert_eq!(broken["legs"]["inbound"]["held"], false, "{broken}");
    assert_eq!(broken["legs"]["outbound"]["held"], true, "{broken}");
    assert_eq!(
        (&broken["last_error"]["code"], &broken["last_error"]["message"]),
        (
            &json!("unavailable"),
            &json!("The voice infrastructure did not answer in time; the registry tries again on its own.")
        ),
        "{broken}"
    );
    // The words are in `last_error`'s code and message; its time (like the legs' times and
    // ids) may contain the digits 503 by chance, so it is left out of the check.
    let mut words = broken["last_error"].clone();
    words.as_object_mut().unwrap().remove("at");
    assert!(
        !words.to_string().contains("503"),
        "no infrastructure's words: {broken}"
    );

    // Back: the repair makes a new inbound leg and says so; the failure stays, with its time.
    rig.standin.clear_faults();
    rig.reconcile_due_work().await;
    let healed = status(&rig, id).await;
    assert_eq!(healed["state"], "ready", "{healed}");
    assert_ne!(healed["legs"]["inbound"]["id"], inbound.as_str());
    assert_eq!(healed["legs"]["inbound"]["held"], true, "{healed}");
    assert_eq!(healed["legs"]["outbound"]["held"], true, "{healed}");
    assert_eq!(healed["last_error"]["code"], "unavailable");

    // Another account's trunk and an id nobody has: the 404 of a read.
    let app = TestApp::spawn(rig.state.clone()).await;
    let stranger = crate::support::caller_of(rig.state.accounts.as_ref(), "stranger@example.com");
    for (token, trunk) in [(stranger.as_str(), id), (rig.token.as_str(), id + 1000)] {
        let reply = app.trunk_status(token, trunk).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"error":"SIP trunk not found."}"#)
        );
    }
    rig.assert_invariant();
}

async fn a_failed_inbound_re_create_keeps_the_settings_and_the_reconciler_restores_a_leg(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    let before = get(&rig, id).await.json()["data"].clone();
    // The old inbound leg is deleted, then every create fails.
    rig.standin.fail_next_on(
        "CreateSIPInboundTrunk",
        100,
        Fault::Status(503, "unavailable"),
    );
    let reply = update(&rig, id, &json!({"sip_password": "Changed-Pass-1"})).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, UPDATE_FAILED));
    let after = get(&rig, id).await.json()["data"].clone();
    for field in ["phone_number", "sip_username", "sip_address", "updated_at"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert!(
        !rig.standin.trunk_ids().contains(&inbound),
        "old inbound gone"
    );
    rig.standin.clear_faults();
    // The ledger left the trunk in repair: no scan is needed to find it.
    let lines = rig.reconcile_due_work().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("repair trunk {id}"))),
        "{lines:?}"
    );
    rig.assert_invariant();
    let held = &rig.standin.inbound()[0];
    assert_eq!(
        held.auth_password, "Sup3r-Secret-Pass",
        "the stored password"
    );
    let healed = get(&rig, id).await.json()["data"].clone();
    assert_ne!(healed["inbound_trunk_id"], inbound.as_str());
    assert_eq!(healed["outbound_trunk_id"], outbound.as_str());
}

async fn a_delete_while_livekit_is_down_succeeds_and_the_legs_go_once_it_is_back(rig: Rig) {
    let (id, _, _) = created(&rig).await;
    rig.standin.fail_next(1000, Fault::Drop);
    let started = Instant::now();
    let reply = delete(&rig, id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(get(&rig, id).await.status, 404);
    assert_eq!(rig.standin.trunk_ids().len(), 2, "still there while down");
    rig.standin.clear_faults();
    // Removals back off after a failure: make them due.
    let later =
        domain::Timestamp::from_unix_micros(domain::Timestamp::now().unix_micros() + 3_600_000_000)
            .unwrap();
    let due = rig.ledger.due_removals(later, 10).unwrap();
    assert_eq!(due.len(), 2);
    rig.provisioner
        .remove(due, Instant::now() + Duration::from_secs(5))
        .await;
    rig.assert_invariant();
    assert!(rig.standin.trunk_ids().is_empty());
}

async fn a_slow_livekit_gets_the_500_within_the_budget_and_nothing_stays(rig: Rig) {
    rig.standin
        .fail_next(100, Fault::Delay(Duration::from_secs(2)));
    let started = Instant::now();
    let reply = create(&rig, &number_trunk()).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, CREATE_FAILED));
    // The rig's budget is 5 s, plus the removal of what may have been made.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    rig.standin.clear_faults();
    // The delayed calls still happen after the client gave up: wait for them, then heal.
    std::thread::sleep(Duration::from_millis(2500));
    rig.reconcile().await;
    rig.assert_invariant();
    assert!(rig.standin.trunk_ids().is_empty());
}

fn new_trunk() -> NewSipTrunk {
    NewSipTrunk::parse(&NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some("+14155551234".into()),
        sip_username: Some("acme_user".into()),
        sip_password: Some("Sup3r-Secret-Pass".into()),
        sip_address: Some("sip.carrier.example".into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some("auth".into()),
        ..Default::default()
    })
    .unwrap()
}

async fn a_create_that_died_between_its_legs_is_rolled_back_by_the_reconciler(rig: Rig) {
    // What a process killed after the inbound leg leaves: a hidden row whose lease runs out
    // and a leg tagged with its id.
    let owner = rig.ledger.leg_references(None, 1).unwrap();
    assert!(owner.is_empty());
    let user = {
        let app = TestApp::spawn(rig.state.clone()).await;
        let reply = app.list_trunks(&rig.token).await;
        assert_eq!(reply.status, 200);
        rig.owner()
    };
    let mut lease = new_lease(Duration::from_secs(1));
    lease.until = domain::Timestamp::now();
    let pending = rig
        .ledger
        .begin_create(user, &new_trunk(), 100, &lease)
        .unwrap();
    let infrastructure = livekit(&rig.standin);
    infrastructure
        .create_inbound(&domain::InboundLeg::of(&pending))
        .await
        .unwrap();
    assert_eq!(list(&rig).await, json!({"data": []}), "hidden");
    std::thread::sleep(Duration::from_millis(20));
    let lines = rig.reconcile().await;
    assert!(
        lines.iter().any(|l| l.contains("roll back trunk")),
        "{lines:?}"
    );
    rig.assert_invariant();
    assert!(rig.standin.trunk_ids().is_empty());
    // The number is free again.
    created(&rig).await;
}

async fn an_update_that_died_after_removing_the_inbound_leg_is_healed(rig: Rig) {
    let (id, inbound, _) = created(&rig).await;
    // The request leased the trunk, deleted the inbound leg, and died.
    let user = rig.owner();
    let trunk_id = domain::TrunkId::new(id).unwrap();
    let mut lease = new_lease(Duration::from_secs(1));
    lease.until = domain::Timestamp::now();
    rig.ledger
        .lease_trunk(user, trunk_id, &lease, true)
        .unwrap();
    assert!(rig.standin.remove(&inbound));
    std::thread::sleep(Duration::from_millis(20));
    let lines = rig.reconcile().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("repair trunk {id}: inbound"))),
        "{lines:?}"
    );
    rig.assert_invariant();
}

async fn legs_removed_or_changed_behind_our_back_are_re_created(rig: Rig) {
    let (id, _, outbound) = created(&rig).await;
    let trunk = rig.standin.outbound()[0].clone();
    assert!(rig.standin.remove(&outbound));
    let lines = rig.reconcile().await;
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("mark trunk {id} for repair: outbound leg missing")),
        "{lines:?}"
    );
    rig.assert_invariant();
    assert_eq!(rig.standin.outbound()[0].address, trunk.address);
    // A run with nothing to do does nothing.
    assert_eq!(rig.reconcile().await, Vec::<String>::new());
}

async fn orphans_of_the_registry_are_removed_and_other_systems_legs_are_left_alone(rig: Rig) {
    let (_, _, _) = created(&rig).await;
    // A leg made for a trunk that no longer exists (its create died long ago).
    let infrastructure = livekit(&rig.standin);
    let mut ghost = domain::OutboundLeg::of(&domain::SipTrunk::create(
        domain::TrunkId::new(999).unwrap(),
        domain::UserId::new(1).unwrap(),
        new_trunk(),
        domain::Timestamp::now(),
    ));
    ghost.number = "+14155559999".into();
    let orphan = infrastructure.create_outbound(&ghost).await.unwrap();
    let theirs = rig
        .standin
        .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec!["+14155550000".into()],
            metadata: "{\"owner\":\"another system\"}".into(),
            ..Default::default()
        });
    let lines = rig.reconcile().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("remove orphan outbound leg {}", orphan.as_str()))),
        "{lines:?}"
    );
    let held = rig.standin.trunk_ids();
    assert!(held.contains(&theirs));
    assert!(!held.contains(&orphan.as_str().to_owned()));
    assert_eq!(held.len(), 3);
}

/// Loses every leg of the rig's `count` new trunks, makes each LiveKit call take `latency`,
/// and runs two replicas' reconcilers (each its own provisioner on the rig's store) until
/// every trunk has its legs again: LiveKit then holds exactly the stored legs, each made once.
async fn heal_with_two_replicas(rig: &Rig, count: u32, first_number: u32, latency: Duration) {
    for n in 0..count {
        let mut body = number_trunk();
        body["phone_number"] = json!(format!("+1415555{:04}", first_number + n));
        let reply = create(rig, &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        for leg in ["inbound_trunk_id", "outbound_trunk_id"] {
            assert!(rig
                .standin
                .remove(reply.json()["data"][leg].as_str().unwrap()));
        }
    }
    let from = rig.standin.journal().len();
    rig.standin.fail_next(1_000_000, Fault::Delay(latency));
    let replica = || {
        let mut settings = LiveKitSettings::new(
            rig.standin.url(),
            rig.standin.api_key(),
            ApiSecret::new(rig.standin.api_secret()),
        );
        settings.request_timeout = latency * 2;
        let provisioner = Arc::new(Provisioner::new(
            Arc::new(LiveKit::new(settings)),
            rig.ledger.clone(),
        ));
        Arc::new(Reconciler::new(
            provisioner,
            rig.trunks.clone(),
            Arc::new(|_| {}),
        ))
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs: Vec<_> = [replica(), replica()]
        .into_iter()
        .map(|reconciler| {
            let done = done.clone();
            tokio::spawn(async move {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = reconciler.pass(true, false).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let complete = || {
        let held: BTreeSet<String> = rig.standin.trunk_ids().into_iter().collect();
        let references = rig.ledger.leg_references(None, 100_000).unwrap();
        held == rig.referenced()
            && references
                .iter()
                .all(|r| r.inbound.is_some() && r.outbound.is_some())
    };
    while !complete() && started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for run in runs {
        run.await.unwrap();
    }
    rig.standin.clear_faults();
    assert!(
        complete(),
        "not every trunk got its legs in {:?}",
        started.elapsed()
    );
    rig.assert_invariant();
    let made = |method: &str| {
        rig.standin.journal()[from..]
            .iter()
            .filter(|call| call.method == method && call.outcome == "ok")
            .count()
    };
    let trunks = usize::try_from(count).unwrap();
    assert_eq!(
        made("CreateSIPInboundTrunk"),
        trunks,
        "inbound legs made once each"
    );
    assert_eq!(
        made("CreateSIPOutboundTrunk"),
        trunks,
        "outbound legs made once each"
    );
}

async fn two_replicas_on_a_slow_livekit_give_every_trunk_its_legs_each_made_once(rig: Rig) {
    heal_with_two_replicas(&rig, 6, 100, Duration::from_millis(600)).await;
    heal_with_two_replicas(&rig, 2, 200, Duration::from_millis(2_500)).await;
}

async fn an_update_behind_a_dead_holders_lease_waits_for_it_and_succeeds(rig: Rig) {
    let (id, _, _) = created(&rig).await;
    let reference = rig.ledger.leg_references(None, 10).unwrap().remove(0);
    // A holder that took the lease to change legs, then died.
    rig.ledger
        .lease_trunk(
            reference.owner,
            reference.id,
            &new_lease(service::provisioning::LEASE),
            true,
        )
        .unwrap();
    let reply = update(&rig, id, &json!({"sip_password": "After-The-Crash-1"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    rig.assert_invariant();
}

async fn a_create_retried_after_its_process_died_is_created_not_refused_as_a_409(rig: Rig) {
    let user = rig.owner();
    // What a process killed after the inbound leg leaves: a hidden row whose lease its keeper
    // renewed a moment ago, and a leg holding the number.
    let pending = rig
        .ledger
        .begin_create(user, &new_trunk(), 100, &new_lease(Duration::from_secs(2)))
        .unwrap();
    livekit(&rig.standin)
        .create_inbound(&domain::InboundLeg::of(&pending))
        .await
        .unwrap();
    assert_eq!(list(&rig).await, json!({"data": []}), "hidden");

    let reply = create(&rig, &number_trunk()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.json()["data"]["id"].as_i64().unwrap();
    assert_ne!(id, pending.id.get());
    let listed = list(&rig).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    // The dead create's leg gave its number up: LiveKit holds exactly the new trunk's legs.
    rig.assert_invariant();
    // A trunk the caller can see is the contract's 409.
    assert_eq!(create(&rig, &number_trunk()).await.status, 409);
}

/// A second registry ("staging", an empty in-memory store) on the rig's LiveKit: its state,
/// its provisioner, and a token of its own account.
fn staging_beside(rig: &Rig) -> (AppState, Arc<Provisioner>, Arc<MemoryStore>, String) {
    let mut settings = LiveKitSettings::new(
        rig.standin.url(),
        rig.standin.api_key(),
        ApiSecret::new(rig.standin.api_secret()),
    );
    settings.request_timeout = Duration::from_millis(400);
    settings.first_backoff = Duration::from_millis(10);
    settings.deployment = "staging".into();
    let store = Arc::new(MemoryStore::new());
    let token = token_for(store.as_ref());
    let provisioner = Arc::new(Provisioner::new(
        Arc::new(LiveKit::new(settings)),
        store.clone(),
    ));
    let state = AppState::new(store.clone(), Arc::new(|| Ok(())))
        .with_read_cache(Duration::ZERO, 0)
        .with_provisioner(provisioner.clone());
    (state, provisioner, store, token)
}

async fn two_deployments_on_one_livekit_each_keep_exactly_their_own_legs(rig: Rig) {
    let numbered = |n: u32| {
        let mut body = number_trunk();
        body["phone_number"] = json!(format!("+1415555{n:04}"));
        body
    };
    for n in 1..=3 {
        assert_eq!(create(&rig, &numbered(n)).await.status, 201);
    }
    let production: BTreeSet<String> = rig.standin.trunk_ids().into_iter().collect();
    assert_eq!(production.len(), 6);

    // Staging starts with an empty database: production's legs are not its orphans.
    let (staging, staging_provisioner, staging_store, staging_token) = staging_beside(&rig);
    let staging_reconciler = Reconciler::new(
        staging_provisioner.clone(),
        staging_store.clone(),
        Arc::new(|_| {}),
    )
    .with_orphan_grace(Duration::ZERO);
    for _ in 0..10 {
        staging_reconciler.pass(true, false).await.unwrap();
    }
    let held: BTreeSet<String> = rig.standin.trunk_ids().into_iter().collect();
    assert_eq!(held, production, "staging touched production's legs");

    // Production's numbers are taken for staging; a number of its own gets legs.
    let app = TestApp::spawn(staging.clone()).await;
    let refused = app.create_trunk(&staging_token, &numbered(1)).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let made = app.create_trunk(&staging_token, &numbered(9)).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let staging_legs: BTreeSet<String> = ["inbound_trunk_id", "outbound_trunk_id"]
        .iter()
        .map(|key| made.json()["data"][key].as_str().unwrap().to_owned())
        .collect();

    // A leg tagged before deployments existed, for a trunk production does not have: the
    // default deployment's orphan, nobody else's.
    let legacy = rig
        .standin
        .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec!["+14155558888".into()],
            metadata: r#"{"sip_trunks":{"trunk_id":777,"user_id":1,"leg":"inbound","created":1,"attempt":"00"}}"#.into(),
            ..Default::default()
        });

    let calls = rig.standin.journal().len();
    for _ in 0..3 {
        staging_reconciler.pass(true, false).await.unwrap();
    }
    assert!(
        rig.standin.trunk_ids().contains(&legacy),
        "staging removed a legacy leg"
    );

    // Many passes of both, interleaved: each keeps exactly its own legs.
    for _ in 0..10 {
        rig.reconcile().await;
        staging_reconciler.pass(true, false).await.unwrap();
    }
    let held: BTreeSet<String> = rig.standin.trunk_ids().into_iter().collect();
    let expected: BTreeSet<String> = production.union(&staging_legs).cloned().collect();
    assert_eq!(
        held, expected,
        "each keeps its own, the legacy orphan is gone"
    );
    assert_eq!(rig.referenced(), production);
    let deletes: Vec<String> = rig
        .calls_since(calls)
        .into_iter()
        .filter(|call| call.starts_with("DeleteSIPTrunk"))
        .collect();
    assert_eq!(deletes.len(), 1, "only the legacy orphan: {deletes:?}");
}

async fn a_wrong_livekit_secret_fails_cleanly_without_showing_it(rig: Rig) {
    let secret = "a-wrong-secret-of-some-length-123456";
    let wrong: Arc<dyn VoiceInfrastructure> = Arc::new(LiveKit::new(LiveKitSettings::new(
        rig.standin.url(),
        rig.standin.api_key(),
        ApiSecret::new(secret),
    )));
    let provisioner = Arc::new(Provisioner::new(wrong, rig.ledger.clone()));
    let state = rig.state.clone().with_provisioner(provisioner);
    let app = TestApp::spawn(state).await;
    let reply = app.create_trunk(&rig.token, &number_trunk()).await;
    assert_eq!((reply.status, reply.text.as_str()), (500, CREATE_FAILED));
    assert!(!reply.text.contains(secret));
    assert_eq!(list(&rig).await, json!({"data": []}));
    assert_eq!(
        rig.calls_since(0),
        ["CreateSIPInboundTrunk unauthorized"],
        "no retry of a 401"
    );
    let _ = LegKind::Inbound;
}

async fn a_new_number_another_trunk_holds_is_the_422_and_the_old_inbound_leg_comes_back(rig: Rig) {
    let (id, inbound, _) = created(&rig).await;
    let before = get(&rig, id).await.json()["data"].clone();
    let theirs = rig
        .standin
        .insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec!["+14155550000".into()],
            ..Default::default()
        });
    let reply = update(&rig, id, &json!({"phone_number": "+14155550000"})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json()["errors"],
        json!({"phone_number": ["The phone number is already connected to another SIP trunk."]})
    );
    let after = get(&rig, id).await.json()["data"].clone();
    for field in ["phone_number", "updated_at", "outbound_trunk_id"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    // The old inbound leg was removed before the new one was refused: the request restored
    // one for the stored settings at once (a new id).
    assert_ne!(after["inbound_trunk_id"], inbound.as_str());
    let ours: Vec<_> = rig
        .standin
        .inbound()
        .into_iter()
        .filter(|t| t.sip_trunk_id != theirs)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].numbers, ["+14155551234"]);
    assert_eq!(
        ours[0].sip_trunk_id,
        after["inbound_trunk_id"].as_str().unwrap()
    );
    assert!(rig.standin.remove(&theirs));
    rig.assert_invariant();
}

async fn a_failed_removal_of_the_old_inbound_leg_changes_nothing_and_is_healed(rig: Rig) {
    let (id, inbound, outbound) = created(&rig).await;
    let before = get(&rig, id).await.text;
    rig.standin
        .fail_next_on("DeleteSIPTrunk", 100, Fault::Status(503, "unavailable"));
    let reply = update(
        &rig,
        id,
        &json!({"allowed_inbound_ips": ["203.0.113.5"], "inbound_authorization_type": "ip"}),
    )
    .await;
    assert_eq!((reply.status, reply.text.as_str()), (500, UPDATE_FAILED));
    assert_eq!(get(&rig, id).await.text, before, "nothing changed");
    rig.standin.clear_faults();
    rig.reconcile().await;
    rig.assert_invariant();
    // Its legs still serve the stored settings (credentials, not the allow-list).
    let held = &rig.standin.inbound()[0];
    assert!(held.allowed_addresses.is_empty());
    assert_eq!(held.auth_username, "acme_user");
    let _ = (inbound, outbound);
}

async fn a_number_held_by_a_leg_of_a_trunk_that_no_longer_exists_is_freed_for_a_create(rig: Rig) {
    // What a create that died after its inbound leg leaves, once its row is gone.
    let dead = domain::SipTrunk::create(
        domain::TrunkId::new(999).unwrap(),
        domain::UserId::new(1).unwrap(),
        new_trunk(),
        domain::Timestamp::now(),
    );
    let orphan = livekit(&rig.standin)
        .create_inbound(&domain::InboundLeg::of(&dead))
        .await
        .unwrap();
    let (_, inbound, _) = created(&rig).await;
    assert!(!rig
        .standin
        .trunk_ids()
        .contains(&orphan.as_str().to_owned()));
    assert_eq!(rig.standin.inbound()[0].sip_trunk_id, inbound);
    rig.assert_invariant();
    // A live trunk's number is still refused.
    let mut again = number_trunk();
    again["sip_username"] = json!("someone_else");
    let reply = create(&rig, &again).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    rig.assert_invariant();
}
