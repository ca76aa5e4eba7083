//! The contract every store implements, written once against the ports.

use std::sync::{Arc, Barrier};
use std::thread;

use diesel::prelude::*;
use domain::{
    ApiKeyName, ApiToken, Email, NewSipTrunk, NewSipTrunkInput, Patch, RepositoryError,
    RepositoryResult, SipTrunk, SipTrunkPatch, SipTrunkPatchInput, SipTrunkRepository, Timestamp,
    TokenSecret, TrunkId, TrunkPage, TrunkType, UserId, UserName,
};
use store::sql::schema::sip_trunks;
use store::{EncryptionKey, Keyring};

use super::fixtures::Fixture;
pub use super::ledger::*;
pub use super::reads::*;

const PASSWORD: &str = "Plaintext-Pa55word";

/// A limit no case reaches (the limit cases set their own).
pub(crate) const NO_LIMIT: u32 = 1_000_000;

/// Every trunk of an owner, in one page.
const ALL: TrunkPage = TrunkPage {
    after: None,
    limit: 1_000_000,
};

pub(crate) fn user(fixture: &Fixture, email: &str) -> UserId {
    fixture
        .accounts
        .create_user(
            &Email::parse(email).unwrap(),
            &UserName::parse("Test User").unwrap(),
        )
        .unwrap()
        .id
}

/// `count` trunks of `owner` with the numbers `{prefix}0`, `{prefix}1`, ..., created one by
/// one without a limit; their ids in that order.
pub(crate) fn numbered_trunks(
    fixture: &Fixture,
    owner: UserId,
    prefix: &str,
    count: usize,
) -> Vec<TrunkId> {
    (0..count)
        .map(|n| {
            fixture
                .trunks
                .create_trunk(owner, &number_trunk(&format!("{prefix}{n}")), NO_LIMIT)
                .unwrap()
                .id
        })
        .collect()
}

pub(crate) fn number_trunk(phone: &str) -> NewSipTrunk {
    NewSipTrunk::parse(&NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some(phone.into()),
        nickname: Some("Main line".into()),
        sip_username: Some("acme_user".into()),
        sip_password: Some(PASSWORD.into()),
        sip_address: Some("sip.carrier.example".into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some("auth".into()),
        allowed_inbound_ips: None,
        country_code: None,
        outbound_proxy: Some(true),
    })
    .unwrap()
}

fn ip_trunk(extension: &str, ips: &[&str]) -> NewSipTrunk {
    NewSipTrunk::parse(&NewSipTrunkInput {
        sip_trunk_type: Some("extension".into()),
        phone_number: Some(extension.into()),
        nickname: None,
        sip_username: Some("pbx_user".into()),
        sip_password: Some(PASSWORD.into()),
        sip_address: Some("203.0.113.10".into()),
        sip_calling_format: Some("national".into()),
        inbound_authorization_type: Some("ip".into()),
        allowed_inbound_ips: Some(ips.iter().map(|ip| ip.to_string()).collect()),
        country_code: Some("GB".into()),
        outbound_proxy: None,
    })
    .unwrap()
}

pub(crate) fn patch(trunk_type: TrunkType, input: SipTrunkPatchInput) -> SipTrunkPatch {
    SipTrunkPatch::parse(&input, trunk_type).unwrap()
}

pub(crate) fn nickname_patch(nickname: &str) -> SipTrunkPatch {
    patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            nickname: Patch::Value(nickname.into()),
            ..Default::default()
        },
    )
}

pub fn a_created_trunk_reads_back_equal(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let new = number_trunk("+14155551234");
    let created = fixture.trunks.create_trunk(owner, &new, NO_LIMIT).unwrap();
    assert_eq!(created.owner, owner);
    assert_eq!(created.settings, new);
    assert_eq!(created.settings.sip_password.expose_secret(), PASSWORD);
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(created.inbound_trunk_id, None);
    assert_eq!(
        fixture.trunks.open_trunk(owner, created.id).unwrap(),
        created
    );
}

pub fn trunks_are_listed_by_id_ascending_and_only_the_owners(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    assert!(fixture
        .trunks
        .list_trunks(owner, ALL)
        .unwrap()
        .trunks
        .is_empty());
    let first = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155550002"), NO_LIMIT)
        .unwrap();
    let third = fixture
        .trunks
        .create_trunk(owner, &ip_trunk("1000", &["198.51.100.1"]), NO_LIMIT)
        .unwrap();
    let listed: Vec<TrunkId> = fixture
        .trunks
        .list_trunks(owner, ALL)
        .unwrap()
        .trunks
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [first.id, third.id]);
    assert!(first.id < third.id);
}

pub fn another_owner_can_neither_see_nor_change_nor_delete_a_trunk(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let intruder = user(fixture, "b@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    assert!(matches!(
        fixture.trunks.get_trunk(intruder, trunk.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(fixture
        .trunks
        .list_trunks(intruder, ALL)
        .unwrap()
        .trunks
        .is_empty());
    assert!(matches!(
        fixture
            .trunks
            .update_trunk(intruder, trunk.id, &nickname_patch("Hijacked")),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.trunks.delete_trunk(intruder, trunk.id),
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(fixture.trunks.open_trunk(owner, trunk.id).unwrap(), trunk);
}

pub fn the_same_number_username_and_address_conflicts_within_an_owner_only(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT),
        Err(RepositoryError::Conflict)
    ));
    fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks.len(),
        1
    );
}

/// Runs `create(n)` for n in 0..racers on as many threads, released at once; gives the
/// outcomes in thread order.
fn race<T: Send + 'static>(
    fixture: &Fixture,
    racers: usize,
    create: impl Fn(&dyn SipTrunkRepository, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(racers));
    let create = Arc::new(create);
    (0..racers)
        .map(|n| {
            let (trunks, barrier, create) =
                (fixture.trunks.clone(), barrier.clone(), create.clone());
            thread::spawn(move || {
                barrier.wait();
                create(trunks.as_ref(), n)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect()
}

pub fn threads_racing_to_create_the_same_trunk_give_exactly_one_winner(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let racers = 8;
    let outcomes = race(fixture, racers, move |trunks, _| {
        trunks.create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
    });
    let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let conflicts = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(RepositoryError::Conflict)))
        .count();
    assert_eq!((winners, conflicts), (1, racers - 1), "{outcomes:?}");
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks.len(),
        1
    );
}

pub fn an_update_into_another_trunks_identity_conflicts_and_changes_nothing(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    let second = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550002"), NO_LIMIT)
        .unwrap();
    let collide = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            phone_number: Patch::Value("+14155550001".into()),
            nickname: Patch::Value("Renamed".into()),
            ..Default::default()
        },
    );
    assert!(matches!(
        fixture.trunks.update_trunk(owner, second.id, &collide),
        Err(RepositoryError::Conflict)
    ));
    assert_eq!(fixture.trunks.open_trunk(owner, second.id).unwrap(), second);
}

pub fn update_and_delete_of_an_absent_trunk_are_not_found(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let absent = TrunkId::new(987_654).unwrap();
    assert!(matches!(
        fixture.trunks.get_trunk(owner, absent),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture
            .trunks
            .update_trunk(owner, absent, &nickname_patch("x")),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.trunks.delete_trunk(owner, absent),
        Err(RepositoryError::NotFound)
    ));
}

pub fn a_deleted_trunk_is_gone_and_its_id_is_never_reused(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let trunk = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    fixture.trunks.delete_trunk(owner, trunk.id).unwrap();
    assert!(matches!(
        fixture.trunks.get_trunk(owner, trunk.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.trunks.delete_trunk(owner, trunk.id),
        Err(RepositoryError::NotFound)
    ));
    let again = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    assert!(again.id > trunk.id);
}

pub fn timestamps_round_trip_to_the_microsecond(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let before = Timestamp::now();
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let after = Timestamp::now();
    assert!(before <= created.created_at && created.created_at <= after);
    let read = fixture.trunks.get_trunk(owner, created.id).unwrap();
    assert_eq!(
        read.created_at.unix_micros(),
        created.created_at.unix_micros()
    );
    assert_eq!(read.updated_at.to_string(), created.updated_at.to_string());
}

pub fn allow_lists_round_trip_in_canonical_first_seen_order(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let entries = [
        "198.51.100.7/24",
        "2001:DB8::1",
        "203.0.113.5",
        "198.51.100.0/24",
        "10.0.0.1/32",
    ];
    let created = fixture
        .trunks
        .create_trunk(owner, &ip_trunk("1000", &entries), NO_LIMIT)
        .unwrap();
    let read = fixture.trunks.get_trunk(owner, created.id).unwrap();
    assert_eq!(
        read.settings
            .inbound_authorization
            .allowed_ips()
            .unwrap()
            .to_strings(),
        ["198.51.100.0/24", "2001:db8::1", "203.0.113.5", "10.0.0.1"]
    );
}

pub fn updated_at_moves_on_a_real_change_and_not_on_an_empty_one(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let empty = fixture
        .trunks
        .update_trunk(owner, created.id, &SipTrunkPatch::default())
        .unwrap();
    assert!(!empty.changed);
    assert_eq!(
        fixture.trunks.open_trunk(owner, created.id).unwrap(),
        created
    );
    let same = fixture
        .trunks
        .update_trunk(owner, created.id, &nickname_patch("Main line"))
        .unwrap();
    assert!(!same.changed);
    assert_eq!(
        fixture
            .trunks
            .get_trunk(owner, created.id)
            .unwrap()
            .updated_at,
        created.updated_at
    );
    let real = fixture
        .trunks
        .update_trunk(owner, created.id, &nickname_patch("Renamed"))
        .unwrap();
    assert!(real.changed);
    assert!(real.trunk.updated_at > created.updated_at);
    let read = fixture.trunks.open_trunk(owner, created.id).unwrap();
    assert_eq!(read, real.trunk);
    assert_eq!(read.created_at, created.created_at);
    assert_eq!(read.settings.nickname.unwrap().as_str(), "Renamed");
}

pub fn an_update_applies_every_field_sent_and_reports_the_legs(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let change = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            sip_password: Patch::Value("N3w-password".into()),
            inbound_authorization_type: Patch::Value("ip".into()),
            allowed_inbound_ips: Patch::Value(vec!["198.51.100.9".into()]),
            nickname: Patch::Null,
            outbound_proxy: Patch::Value(false),
            ..Default::default()
        },
    );
    let update = fixture
        .trunks
        .update_trunk(owner, created.id, &change)
        .unwrap();
    assert!(update.legs.inbound && update.legs.outbound);
    let read = fixture.trunks.open_trunk(owner, created.id).unwrap();
    assert_eq!(read, update.trunk);
    assert_eq!(read.settings.sip_password.expose_secret(), "N3w-password");
    assert_eq!(read.settings.nickname, None);
    assert!(!read.settings.outbound_proxy);
    assert_eq!(
        read.settings
            .inbound_authorization
            .allowed_ips()
            .unwrap()
            .to_strings(),
        ["198.51.100.9"]
    );
}

pub fn an_update_breaking_a_rule_of_the_stored_trunk_is_rejected_and_changes_nothing(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let to_ip_without_list = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            inbound_authorization_type: Patch::Value("ip".into()),
            nickname: Patch::Value("Changed".into()),
            ..Default::default()
        },
    );
    match fixture
        .trunks
        .update_trunk(owner, created.id, &to_ip_without_list)
    {
        Err(RepositoryError::Rejected(errors)) => assert!(errors.contains("allowed_inbound_ips")),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        fixture.trunks.open_trunk(owner, created.id).unwrap(),
        created
    );
}

pub fn concurrent_updates_of_one_trunk_are_all_applied(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let changes = [
        SipTrunkPatchInput {
            sip_calling_format: Patch::Value("national".into()),
            ..Default::default()
        },
        SipTrunkPatchInput {
            country_code: Patch::Value("CA".into()),
            ..Default::default()
        },
        SipTrunkPatchInput {
            outbound_proxy: Patch::Value(false),
            ..Default::default()
        },
        SipTrunkPatchInput {
            nickname: Patch::Value("Concurrent".into()),
            ..Default::default()
        },
    ];
    let barrier = Arc::new(Barrier::new(changes.len()));
    let handles: Vec<_> = changes
        .into_iter()
        .map(|input| {
            let trunks = fixture.trunks.clone();
            let barrier = barrier.clone();
            let id = created.id;
            thread::spawn(move || {
                barrier.wait();
                trunks.update_trunk(owner, id, &patch(TrunkType::Number, input))
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    let read = fixture.trunks.get_trunk(owner, created.id).unwrap();
    assert_eq!(read.settings.calling_format.as_str(), "national");
    assert_eq!(read.settings.country_code.as_str(), "CA");
    assert!(!read.settings.outbound_proxy);
    assert_eq!(read.settings.nickname.unwrap().as_str(), "Concurrent");
}

pub fn a_users_email_is_unique_and_found_again(fixture: &Fixture) {
    let email = Email::parse("ops@example.com").unwrap();
    let name = UserName::parse("Ops").unwrap();
    let created = fixture.accounts.create_user(&email, &name).unwrap();
    assert!(matches!(
        fixture.accounts.create_user(&email, &name),
        Err(RepositoryError::Conflict)
    ));
    assert_eq!(
        fixture.accounts.find_user_by_email(&email).unwrap(),
        created
    );
    let unknown = Email::parse("nobody@example.com").unwrap();
    assert!(matches!(
        fixture.accounts.find_user_by_email(&unknown),
        Err(RepositoryError::NotFound)
    ));
}

pub fn a_user_is_found_by_id_and_an_unknown_id_is_not_found(fixture: &Fixture) {
    let email = Email::parse("me@example.com").unwrap();
    let name = UserName::parse("Me, Myself").unwrap();
    let created = fixture.accounts.create_user(&email, &name).unwrap();
    let other = user(fixture, "other@example.com");
    assert_eq!(fixture.accounts.find_user(created.id).unwrap(), created);
    assert_ne!(fixture.accounts.find_user(other).unwrap(), created);
    let unknown = UserId::new(other.get() + 1000).unwrap();
    assert!(matches!(
        fixture.accounts.find_user(unknown),
        Err(RepositoryError::NotFound)
    ));
}

pub fn api_keys_authenticate_list_record_use_and_revoke(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let secret = TokenSecret::generate();
    let key = fixture
        .accounts
        .create_api_key(
            owner,
            &ApiKeyName::parse("ci").unwrap(),
            &secret.hash(),
            NO_LIMIT,
        )
        .unwrap();
    assert_eq!(key.last_used_at, None);
    let token = ApiToken::new(key.id, secret);
    assert_eq!(fixture.accounts.authenticate(&token).unwrap(), key);
    assert_eq!(
        fixture.accounts.list_api_keys(owner).unwrap(),
        std::slice::from_ref(&key)
    );
    assert!(fixture.accounts.list_api_keys(other).unwrap().is_empty());

    let used_at = Timestamp::from_unix_micros(1_800_000_000_123_456).unwrap();
    fixture.accounts.touch_api_key(key.id, used_at).unwrap();
    assert_eq!(
        fixture.accounts.authenticate(&token).unwrap().last_used_at,
        Some(used_at)
    );

    assert!(matches!(
        fixture.accounts.revoke_api_key(other, key.id),
        Err(RepositoryError::NotFound)
    ));
    fixture.accounts.revoke_api_key(owner, key.id).unwrap();
    assert!(matches!(
        fixture.accounts.authenticate(&token),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture.accounts.revoke_api_key(owner, key.id),
        Err(RepositoryError::NotFound)
    ));
    fixture.accounts.touch_api_key(key.id, used_at).unwrap();
}

pub fn a_token_with_a_wrong_secret_or_key_id_is_refused(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let secret = TokenSecret::generate();
    let first = fixture
        .accounts
        .create_api_key(
            owner,
            &ApiKeyName::parse("one").unwrap(),
            &secret.hash(),
            NO_LIMIT,
        )
        .unwrap();
    let second = fixture
        .accounts
        .create_api_key(
            owner,
            &ApiKeyName::parse("two").unwrap(),
            &TokenSecret::generate().hash(),
            NO_LIMIT,
        )
        .unwrap();
    let wrong_secret = ApiToken::new(first.id, TokenSecret::generate());
    assert!(matches!(
        fixture.accounts.authenticate(&wrong_secret),
        Err(RepositoryError::NotFound)
    ));
    let wrong_id = ApiToken::new(second.id, secret);
    assert!(matches!(
        fixture.accounts.authenticate(&wrong_id),
        Err(RepositoryError::NotFound)
    ));
}

pub fn keys_and_trunks_of_a_missing_user_are_not_found(fixture: &Fixture) {
    let ghost = UserId::new(424_242).unwrap();
    assert!(matches!(
        fixture.accounts.create_api_key(
            ghost,
            &ApiKeyName::parse("x").unwrap(),
            &TokenSecret::generate().hash(),
            NO_LIMIT
        ),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(ghost, &number_trunk("+14155551234"), NO_LIMIT),
        Err(RepositoryError::NotFound)
    ));
    let admin_revoke = fixture
        .accounts
        .revoke_any_api_key(domain::ApiKeyId::new(424_242).unwrap());
    assert!(matches!(admin_revoke, Err(RepositoryError::NotFound)));
}

pub fn reads_for_clients_show_the_trunk_without_its_password(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let withheld = created.clone().without_password();
    assert_eq!(
        fixture.trunks.get_trunk(owner, created.id).unwrap(),
        withheld
    );
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks,
        [withheld]
    );
    assert_eq!(
        fixture
            .trunks
            .open_trunk(owner, created.id)
            .unwrap()
            .settings
            .sip_password
            .expose_secret(),
        PASSWORD
    );
}

pub fn a_list_is_read_in_pages_by_id_that_resume_after_the_last_row(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let ids = numbered_trunks(fixture, owner, "+1415555000", 5);
    fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155550009"), NO_LIMIT)
        .unwrap();
    let mut seen = Vec::new();
    let mut page = TrunkPage::first(2);
    let mut pages = 0;
    loop {
        let listing = fixture.trunks.list_trunks(owner, page).unwrap();
        pages += 1;
        seen.extend(listing.trunks.iter().map(|trunk| trunk.id));
        if listing.rows < page.limit {
            break;
        }
        page = TrunkPage::after(&listing, 2);
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3, "2 + 2 + 1 rows");
}

pub fn an_owner_holds_at_most_its_trunk_limit(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let create = |who, n: u32| {
        fixture
            .trunks
            .create_trunk(who, &number_trunk(&format!("+1415555100{n}")), 3)
    };
    let first = create(owner, 0).unwrap();
    create(owner, 1).unwrap();
    create(owner, 2).unwrap();
    assert!(matches!(
        create(owner, 3),
        Err(RepositoryError::LimitReached)
    ));
    assert_eq!(fixture.trunks.list_trunks(owner, ALL).unwrap().rows, 3);
    create(other, 3).expect("the limit is per owner");
    fixture.trunks.delete_trunk(owner, first.id).unwrap();
    create(owner, 3).expect("a delete makes room");
}

pub fn racing_creates_never_take_an_owner_past_its_trunk_limit(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let outcomes = race(fixture, 8, move |trunks, n| {
        trunks.create_trunk(owner, &number_trunk(&format!("+1415555200{n}")), 5)
    });
    let created = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(RepositoryError::LimitReached)))
        .count();
    assert_eq!((created, refused), (5, 3), "{outcomes:?}");
    assert_eq!(fixture.trunks.list_trunks(owner, ALL).unwrap().rows, 5);
}

/// Creates that commit together (one transaction on the SQL stores) still get each their own
/// answer: a duplicate or a full account fails alone, and every limit holds.
pub fn racing_creates_of_several_owners_each_get_their_own_answer(fixture: &Fixture) {
    let owners = three_owners(fixture);
    let outcomes = race(fixture, 36, move |trunks, n| {
        let (owner, trunk, limit) = create_of_three_owners(owners, n);
        (owner, trunks.create_trunk(owner, &trunk, limit))
    });
    each_owner_got_its_own_answers(fixture, owners, &outcomes);
}

pub fn creates_queued_at_once_each_get_their_own_answer(fixture: &Fixture) {
    let owners = three_owners(fixture);
    let (sender, answers) = std::sync::mpsc::channel();
    // Queued from one thread without waiting: a store that commits in batches gets them
    // while it commits the first, so several owners' creates share a batch.
    for n in 0..36 {
        let (owner, trunk, limit) = create_of_three_owners(owners, n);
        let sender = sender.clone();
        fixture.trunks.queue_create(
            owner,
            trunk,
            limit,
            Box::new(move |outcome| sender.send((owner, outcome)).unwrap()),
        );
    }
    drop(sender);
    let outcomes: Vec<_> = answers.iter().collect();
    assert_eq!(outcomes.len(), 36, "every queued create is answered once");
    each_owner_got_its_own_answers(fixture, owners, &outcomes);
}

pub fn queued_creates_of_an_account_near_its_limit_fill_it_exactly(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    for n in 0..3 {
        let number = format!("+14155556{n:03}");
        fixture
            .trunks
            .create_trunk(owner, &number_trunk(&number), 5)
            .unwrap();
    }
    let (sender, answers) = std::sync::mpsc::channel();
    for n in 0..6 {
        let sender = sender.clone();
        let number = format!("+14155557{n:03}");
        fixture.trunks.queue_create(
            owner,
            number_trunk(&number),
            5,
            Box::new(move |outcome| sender.send(outcome).unwrap()),
        );
    }
    drop(sender);
    let outcomes: Vec<_> = answers.iter().collect();
    let created = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let full = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(RepositoryError::LimitReached)))
        .count();
    assert_eq!((created, full), (2, 4), "{outcomes:?}");
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks.len(),
        5
    );
}

pub fn a_batch_of_creates_fills_an_account_exactly_to_its_limit(fixture: &Fixture) {
    let sql = fixture.sql.as_ref().unwrap();
    let owner = user(fixture, "a@example.com");
    let batch = |numbers: std::ops::Range<u32>| {
        sql.create_trunks_together(
            numbers
                .map(|n| (owner, number_trunk(&format!("+14155558{n:03}")), 5))
                .collect(),
        )
    };
    let kinds = |outcomes: Vec<RepositoryResult<SipTrunk>>| -> Vec<&'static str> {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(_) => "created",
                Err(RepositoryError::LimitReached) => "full",
                Err(RepositoryError::Conflict) => "conflict",
                Err(_) => "other",
            })
            .collect()
    };
    assert_eq!(kinds(batch(0..3)), ["created"; 3]);
    // Two places left: a batch of three gets two, in arrival order, the third is refused.
    assert_eq!(kinds(batch(3..6)), ["created", "created", "full"]);
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks.len(),
        5
    );
    assert_eq!(kinds(batch(6..8)), ["full", "full"]);
    // A full account beside one with room, in one batch: each gets its own answers.
    let roomy = user(fixture, "b@example.com");
    let mixed = sql.create_trunks_together(vec![
        (owner, number_trunk("+14155558020"), 5),
        (roomy, number_trunk("+14155558021"), 5),
        (owner, number_trunk("+14155558022"), 5),
        (roomy, number_trunk("+14155558023"), 5),
    ]);
    assert_eq!(kinds(mixed), ["full", "created", "full", "created"]);
    // A place freed by a delete is given once.
    let first = fixture.trunks.list_trunks(owner, ALL).unwrap().trunks[0].id;
    fixture.trunks.delete_trunk(owner, first).unwrap();
    assert_eq!(kinds(batch(8..10)), ["created", "full"]);
    assert_eq!(
        fixture.trunks.list_trunks(owner, ALL).unwrap().trunks.len(),
        5
    );
}

pub fn a_batch_of_creates_answers_each_collision_as_its_own_insert_would(fixture: &Fixture) {
    let sql = fixture.sql.as_ref().unwrap();
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let stored = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155559000"), 4)
        .unwrap();
    let outcomes = sql.create_trunks_together(vec![
        (owner, number_trunk("+14155559000"), 4),
        (owner, number_trunk("+14155559001"), 4),
        (other, number_trunk("+14155559001"), 4),
        (owner, number_trunk("+14155559001"), 4),
        (owner, number_trunk("+14155559002"), 4),
    ]);
    assert!(
        matches!(outcomes[0], Err(RepositoryError::Conflict)),
        "{outcomes:?}"
    );
    assert!(outcomes[1].is_ok(), "{outcomes:?}");
    assert!(
        outcomes[2].is_ok(),
        "another owner's number is its own: {outcomes:?}"
    );
    assert!(
        matches!(outcomes[3], Err(RepositoryError::Conflict)),
        "{outcomes:?}"
    );
    assert!(outcomes[4].is_ok(), "{outcomes:?}");
    let mut listed: Vec<TrunkId> = fixture
        .trunks
        .list_trunks(owner, ALL)
        .unwrap()
        .trunks
        .iter()
        .map(|trunk| trunk.id)
        .collect();
    listed.sort();
    let mut answered = vec![stored.id];
    answered.extend([&outcomes[1], &outcomes[4]].map(|outcome| outcome.as_ref().unwrap().id));
    answered.sort();
    assert_eq!(listed, answered);
    // Conflicts claimed no place: the account holds 3 of 4, so one more fits, not two.
    let last = sql.create_trunks_together(vec![
        (owner, number_trunk("+14155559003"), 4),
        (owner, number_trunk("+14155559004"), 4),
    ]);
    assert!(
        last[0].is_ok() && matches!(last[1], Err(RepositoryError::LimitReached)),
        "{last:?}"
    );
    // Every answered trunk reads back with the password it was given.
    let opened = fixture.trunks.open_trunk(owner, answered[1]).unwrap();
    assert_eq!(opened.settings.sip_password.expose_secret(), PASSWORD);
}

/// An account limited to 5 trunks, one whose creates ask for six numbers twice each, and one
/// free of both.
fn three_owners(fixture: &Fixture) -> [UserId; 3] {
    [
        user(fixture, "a@example.com"),
        user(fixture, "b@example.com"),
        user(fixture, "c@example.com"),
    ]
}

/// The `n`th of 36 creates spread over [`three_owners`]: 12 each.
fn create_of_three_owners(owners: [UserId; 3], n: usize) -> (UserId, NewSipTrunk, u32) {
    let [limited, duplicated, free] = owners;
    let (owner, number, limit) = match n % 3 {
        0 => (limited, format!("+14155553{n:03}"), 5),
        // Six numbers, each asked for twice.
        1 => (duplicated, format!("+14155554{:03}", n % 18), NO_LIMIT),
        _ => (free, format!("+14155555{n:03}"), NO_LIMIT),
    };
    (owner, number_trunk(&number), limit)
}

/// The answers to [`create_of_three_owners`]' 36 creates: 5 created and 7 refused as full,
/// 6 created and 6 conflicts, 12 created; and each owner's stored trunks are the ones
/// answered.
fn each_owner_got_its_own_answers(
    fixture: &Fixture,
    [limited, duplicated, free]: [UserId; 3],
    outcomes: &[(UserId, RepositoryResult<SipTrunk>)],
) {
    let count = |who: UserId, want: fn(&RepositoryResult<SipTrunk>) -> bool| {
        outcomes
            .iter()
            .filter(|(owner, outcome)| *owner == who && want(outcome))
            .count()
    };
    let created = |outcome: &RepositoryResult<SipTrunk>| outcome.is_ok();
    let full = |outcome: &RepositoryResult<SipTrunk>| {
        matches!(outcome, Err(RepositoryError::LimitReached))
    };
    let taken =
        |outcome: &RepositoryResult<SipTrunk>| matches!(outcome, Err(RepositoryError::Conflict));
    assert_eq!(
        (count(limited, created), count(limited, full)),
        (5, 7),
        "{outcomes:?}"
    );
    assert_eq!(
        (count(duplicated, created), count(duplicated, taken)),
        (6, 6),
        "{outcomes:?}"
    );
    assert_eq!(count(free, created), 12, "{outcomes:?}");
    for owner in [limited, duplicated, free] {
        let mut listed: Vec<(TrunkId, String)> = fixture
            .trunks
            .list_trunks(owner, ALL)
            .unwrap()
            .trunks
            .iter()
            .map(|trunk| (trunk.id, trunk.settings.phone_number.as_str().to_owned()))
            .collect();
        let mut answered: Vec<(TrunkId, String)> = outcomes
            .iter()
            .filter(|(who, _)| *who == owner)
            .filter_map(|(_, outcome)| outcome.as_ref().ok())
            .map(|trunk| (trunk.id, trunk.settings.phone_number.as_str().to_owned()))
            .collect();
        listed.sort();
        answered.sort();
        assert_eq!(listed, answered, "what was answered is what is stored");
    }
}

pub fn an_owner_holds_at_most_its_api_key_limit(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let name = ApiKeyName::parse("k").unwrap();
    let create = || {
        fixture
            .accounts
            .create_api_key(owner, &name, &TokenSecret::generate().hash(), 2)
    };
    let first = create().unwrap();
    create().unwrap();
    assert!(matches!(create(), Err(RepositoryError::LimitReached)));
    assert_eq!(fixture.accounts.list_api_keys(owner).unwrap().len(), 2);
    fixture.accounts.revoke_api_key(owner, first.id).unwrap();
    create().expect("a revoked key no longer counts");
}

// ---- SQL stores only: what is on disk ----

fn raw_password_columns(fixture: &Fixture, id: TrunkId) -> (String, String) {
    fixture
        .sql
        .as_ref()
        .unwrap()
        .with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::id.eq(id.get()))
                .select((
                    sip_trunks::sip_password_sealed,
                    sip_trunks::sip_password_key_id,
                ))
                .first::<(String, String)>(conn)
        })
        .unwrap()
}

pub fn the_stored_password_is_sealed_never_plaintext(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let first = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    let second = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550002"), NO_LIMIT)
        .unwrap();
    let (sealed, key_id) = raw_password_columns(fixture, first.id);
    let (other_sealed, _) = raw_password_columns(fixture, second.id);
    assert_ne!(sealed, PASSWORD);
    assert!(!sealed.contains(PASSWORD));
    assert_ne!(sealed, other_sealed, "a fresh nonce per write");
    assert_eq!(key_id.len(), 16);
    let everything = fixture
        .sql
        .as_ref()
        .unwrap()
        .with_connection(|conn| {
            sip_trunks::table
                .select((
                    sip_trunks::sip_password_sealed,
                    sip_trunks::sip_username,
                    sip_trunks::sip_address,
                ))
                .load::<(String, String, String)>(conn)
        })
        .unwrap();
    assert!(everything
        .iter()
        .all(|row| !format!("{row:?}").contains(PASSWORD)));
}

pub fn a_store_opened_with_another_key_reports_corrupt_rows_cleanly(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let stranger = fixture.reopen(Keyring::new(EncryptionKey::generate().0));
    use domain::SipTrunkRepository;
    match stranger.open_trunk(owner, created.id) {
        Err(RepositoryError::Corrupt(message)) => {
            assert!(message.contains("sip_password"), "{message}");
            assert!(!message.contains(PASSWORD));
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
    let rename = nickname_patch("Renamed");
    assert!(
        matches!(
            stranger.update_trunk(owner, created.id, &rename),
            Err(RepositoryError::Corrupt(_))
        ),
        "an update re-seals the password, so it must open it first"
    );
    // Reads that never show the password never open it.
    let withheld = created.clone().without_password();
    assert_eq!(stranger.get_trunk(owner, created.id).unwrap(), withheld);
    assert_eq!(stranger.list_trunks(owner, ALL).unwrap().trunks, [withheld]);
}

pub fn a_rotated_key_ring_opens_old_rows_and_seals_new_writes_with_the_new_key(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    let (_, old_key_id) = raw_password_columns(fixture, created.id);
    let (new_key, _) = EncryptionKey::generate();
    let new_key_id = new_key.id().to_owned();
    let rotated = fixture.reopen(
        Keyring::new(new_key).with_previous(EncryptionKey::from_base64(&fixture.key).unwrap()),
    );
    use domain::SipTrunkRepository;
    assert_eq!(rotated.open_trunk(owner, created.id).unwrap(), created);
    let change = patch(
        TrunkType::Number,
        SipTrunkPatchInput {
            sip_password: Patch::Value("Rotated-pass".into()),
            ..Default::default()
        },
    );
    rotated.update_trunk(owner, created.id, &change).unwrap();
    let (_, key_id) = raw_password_columns(fixture, created.id);
    assert_ne!(key_id, old_key_id);
    assert_eq!(key_id, new_key_id);
    assert_eq!(
        rotated
            .open_trunk(owner, created.id)
            .unwrap()
            .settings
            .sip_password
            .expose_secret(),
        "Rotated-pass"
    );
}

pub fn a_row_that_no_longer_parses_is_reported_corrupt(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"), NO_LIMIT)
        .unwrap();
    fixture
        .sql
        .as_ref()
        .unwrap()
        .with_connection(|conn| {
            diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(created.id.get())))
                .set(sip_trunks::sip_address.eq("not a host"))
                .execute(conn)
        })
        .unwrap();
    match fixture.trunks.get_trunk(owner, created.id) {
        Err(RepositoryError::Corrupt(message)) => {
            assert!(message.contains("sip_address"), "{message}")
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
}

pub fn a_code_column_that_no_longer_parses_is_named_and_the_rest_of_the_page_still_reads(
    fixture: &Fixture,
) {
    let owner = user(fixture, "a@example.com");
    let ids = numbered_trunks(fixture, owner, "+1415555310", 5);
    // The schema's CHECK constraints keep three of these columns sane; a row can still reach
    // the store some other way (a restore, a hand edit), so this test's own database lets it.
    sql(fixture)
        .with_connection(|conn| match conn {
            store::DbConnection::Sqlite(conn) => {
                diesel::sql_query("PRAGMA ignore_check_constraints = ON").execute(conn)
            }
            store::DbConnection::Postgres(conn) => diesel::sql_query(
                "ALTER TABLE sip_trunks DROP CONSTRAINT sip_trunks_sip_trunk_type_check, \
                 DROP CONSTRAINT sip_trunks_sip_calling_format_check, \
                 DROP CONSTRAINT sip_trunks_inbound_authorization_type_check",
            )
            .execute(conn),
        })
        .unwrap();
    let spoil = |id: TrunkId, column: &str| {
        sql(fixture)
            .with_connection(|conn| {
                if let store::DbConnection::Sqlite(conn) = conn {
                    diesel::sql_query("PRAGMA ignore_check_constraints = ON").execute(conn)?;
                }
                let row = sip_trunks::table.filter(sip_trunks::id.eq(id.get()));
                match column {
                    "sip_trunk_type" => diesel::update(row)
                        .set(sip_trunks::sip_trunk_type.eq("fax"))
                        .execute(conn),
                    "sip_calling_format" => diesel::update(row)
                        .set(sip_trunks::sip_calling_format.eq(""))
                        .execute(conn),
                    "inbound_authorization_type" => diesel::update(row)
                        .set(sip_trunks::inbound_authorization_type.eq("AUTH "))
                        .execute(conn),
                    _ => diesel::update(row)
                        .set(sip_trunks::country_code.eq("usa"))
                        .execute(conn),
                }
            })
            .unwrap();
    };
    let columns = [
        "sip_trunk_type",
        "sip_calling_format",
        "inbound_authorization_type",
        "country_code",
    ];
    for (id, column) in ids.iter().zip(columns) {
        spoil(*id, column);
        match fixture.trunks.get_trunk(owner, *id) {
            Err(RepositoryError::Corrupt(message)) => {
                assert!(message.contains(column), "{column}: {message}")
            }
            other => panic!("{column}: expected a corrupt-row error, got {other:?}"),
        }
    }
    let listing = fixture.trunks.list_trunks(owner, ALL).unwrap();
    let read: Vec<TrunkId> = listing.trunks.iter().map(|trunk| trunk.id).collect();
    assert_eq!(read, [ids[4]]);
    let reasons: Vec<(TrunkId, &str)> = listing
        .unreadable
        .iter()
        .map(|row| (row.id, row.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for ((id, reason), column) in reasons.iter().zip(columns) {
        assert!(ids.contains(id));
        assert!(reason.contains(column), "{column}: {reason}");
    }
}

fn sql(fixture: &Fixture) -> &store::SqlStore {
    fixture.sql.as_ref().expect("a SQL fixture")
}

pub fn one_row_that_does_not_read_never_fails_the_list(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let ids = numbered_trunks(fixture, owner, "+1415555300", 3);
    sql(fixture)
        .with_connection(|conn| {
            diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(ids[1].get())))
                .set(sip_trunks::country_code.eq("??"))
                .execute(conn)
        })
        .unwrap();
    let listing = fixture.trunks.list_trunks(owner, ALL).unwrap();
    let read: Vec<TrunkId> = listing.trunks.iter().map(|trunk| trunk.id).collect();
    assert_eq!(read, [ids[0], ids[2]]);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].id, ids[1]);
    assert!(listing.unreadable[0].reason.contains("country_code"));
    assert_eq!(listing.rows, 3);
    assert_eq!(listing.last_id, Some(ids[2]));
}

pub fn a_sealed_password_moved_to_another_trunk_does_not_open(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let first = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    let second = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550002"), NO_LIMIT)
        .unwrap();
    let (sealed, key_id) = raw_password_columns(fixture, first.id);
    sql(fixture)
        .with_connection(|conn| {
            diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(second.id.get())))
                .set((
                    sip_trunks::sip_password_sealed.eq(&sealed),
                    sip_trunks::sip_password_key_id.eq(&key_id),
                ))
                .execute(conn)
        })
        .unwrap();
    assert!(matches!(
        fixture.trunks.open_trunk(owner, second.id),
        Err(RepositoryError::Corrupt(_))
    ));
    assert_eq!(
        fixture
            .trunks
            .open_trunk(owner, first.id)
            .unwrap()
            .settings
            .sip_password
            .expose_secret(),
        PASSWORD
    );
}

/// The ids of the keys sealing the stored passwords, with their row counts.
fn key_usage(store: &store::SqlStore) -> Vec<(String, u64)> {
    store
        .password_key_ids()
        .unwrap()
        .into_iter()
        .map(|key_id| {
            let rows = store.passwords_sealed_by(&key_id).unwrap();
            (key_id, rows)
        })
        .collect()
}

pub fn reseal_moves_every_row_to_the_current_key_and_is_safe_to_run_again(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let old_id = sql(fixture).keys().current_id().to_owned();
    let created = numbered_trunks(fixture, owner, "+1415555400", 3);
    assert_eq!(key_usage(sql(fixture)), [(old_id.clone(), 3)]);
    let (new_key, new_text) = EncryptionKey::generate();
    let new_id = new_key.id().to_owned();
    let rotated = fixture.reopen(
        Keyring::new(new_key).with_previous(EncryptionKey::from_base64(&fixture.key).unwrap()),
    );
    let mut batches = 0;
    let report = rotated
        .reseal(store::ResealScope::NotCurrent, |_| batches += 1)
        .unwrap();
    assert_eq!(
        (
            report.resealed,
            report.changed_meanwhile,
            report.unreadable.len()
        ),
        (3, 0, 0)
    );
    assert!(batches >= 1);
    assert_eq!(key_usage(&rotated), [(new_id, 3)]);
    assert_eq!(rotated.current_password_rows().unwrap(), 3);
    let again = rotated
        .reseal(store::ResealScope::NotCurrent, |_| {})
        .unwrap();
    assert_eq!(again.resealed, 0, "nothing is left to do");
    // The old key can go now.
    let new_only = fixture.reopen(Keyring::new(EncryptionKey::from_base64(&new_text).unwrap()));
    use domain::SipTrunkRepository;
    for id in created {
        let trunk = new_only.open_trunk(owner, id).unwrap();
        assert_eq!(trunk.settings.sip_password.expose_secret(), PASSWORD);
    }
}

pub fn reseal_reports_rows_it_cannot_open_and_leaves_them_as_they_are(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    let before = raw_password_columns(fixture, created.id);
    let stranger = fixture.reopen(Keyring::new(EncryptionKey::generate().0));
    let report = stranger
        .reseal(store::ResealScope::NotCurrent, |_| {})
        .unwrap();
    assert_eq!(report.resealed, 0);
    assert_eq!(report.unreadable.len(), 1);
    assert_eq!(report.unreadable[0].0, created.id.get());
    assert!(!report.unreadable[0].1.contains(PASSWORD));
    assert_eq!(raw_password_columns(fixture, created.id), before);
}

pub fn passwords_bound_to_their_owner_only_are_rebound_to_their_trunk(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"), NO_LIMIT)
        .unwrap();
    // A row as written before migration 000003: sealed for the owner alone, binding 1.
    let keys = Keyring::new(EncryptionKey::from_base64(&fixture.key).unwrap());
    let legacy = keys.seal(
        PASSWORD,
        format!("sip_trunks.sip_password:user:{owner}").as_bytes(),
    );
    sql(fixture)
        .with_connection(|conn| {
            diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(created.id.get())))
                .set((
                    sip_trunks::sip_password_sealed.eq(&legacy.text),
                    sip_trunks::sip_password_binding.eq(1_i16),
                ))
                .execute(conn)
        })
        .unwrap();
    let opened = fixture.trunks.open_trunk(owner, created.id).unwrap();
    assert_eq!(opened.settings.sip_password.expose_secret(), PASSWORD);
    let report = sql(fixture)
        .reseal(store::ResealScope::OwnerBound, |_| {})
        .unwrap();
    assert_eq!(report.resealed, 1);
    let binding: i16 = sql(fixture)
        .with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::id.eq(created.id.get()))
                .select(sip_trunks::sip_password_binding)
                .first(conn)
        })
        .unwrap();
    assert_eq!(binding, 2);
    let opened = fixture.trunks.open_trunk(owner, created.id).unwrap();
    assert_eq!(opened.settings.sip_password.expose_secret(), PASSWORD);
    let again = sql(fixture)
        .reseal(store::ResealScope::OwnerBound, |_| {})
        .unwrap();
    assert_eq!(again.resealed, 0);
}

pub fn the_key_ids_of_the_stored_passwords_are_listed_once_each(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    assert!(sql(fixture).password_key_ids().unwrap().is_empty());
    let first_key = sql(fixture).keys().current_id().to_owned();
    numbered_trunks(fixture, owner, "+1415555600", 3);
    let (second, _) = EncryptionKey::generate();
    let second_id = second.id().to_owned();
    let rotated = fixture.reopen(
        Keyring::new(second).with_previous(EncryptionKey::from_base64(&fixture.key).unwrap()),
    );
    use domain::SipTrunkRepository;
    rotated
        .create_trunk(owner, &number_trunk("+14155556009"), NO_LIMIT)
        .unwrap();
    let mut expected = vec![(first_key, 3), (second_id, 1)];
    expected.sort();
    assert_eq!(key_usage(&rotated), expected);
}

pub fn an_account_counter_that_drifted_high_is_corrected_instead_of_refusing(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155557000"), 3)
        .unwrap();
    // As if rows had been deleted behind the store's back.
    sql(fixture)
        .with_connection(|conn| diesel::sql_query("UPDATE users SET trunk_count = 3").execute(conn))
        .unwrap();
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155557001"), 3)
        .expect("two trunks are held, not three");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155557002"), 3)
        .unwrap();
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(owner, &number_trunk("+14155557003"), 3),
        Err(RepositoryError::LimitReached)
    ));
}

pub fn imported_trunks_count_against_the_limit(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    sql(fixture)
        .import_trunks(&[
            (owner, number_trunk("+14155558000")),
            (owner, number_trunk("+14155558001")),
        ])
        .unwrap();
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155558002"), 3)
        .unwrap();
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(owner, &number_trunk("+14155558003"), 3),
        Err(RepositoryError::LimitReached)
    ));
}

fn seconds(s: i64) -> Timestamp {
    // A fixed recent day, so that every backend stores the instants as given.
    Timestamp::from_unix_micros(1_800_000_000_000_000 + s * 1_000_000).unwrap()
}

pub fn number_conflicts_are_recorded_up_to_the_budget_per_window_and_owner(fixture: &Fixture) {
    let alice = user(fixture, "alice@example.com");
    let bob = user(fixture, "bob@example.com");
    let log = &fixture.conflicts;
    assert!(log
        .record_number_conflict(alice, seconds(10), seconds(0), 2)
        .unwrap());
    assert!(log
        .record_number_conflict(alice, seconds(20), seconds(0), 2)
        .unwrap());
    assert!(!log
        .record_number_conflict(alice, seconds(30), seconds(0), 2)
        .unwrap());
    assert_eq!(
        log.number_conflicts_since(alice, seconds(0)).unwrap(),
        [seconds(10), seconds(20)]
    );
    // Another owner has a budget of its own.
    assert!(log
        .record_number_conflict(bob, seconds(30), seconds(0), 2)
        .unwrap());
    // Once the window has moved past the first answer, there is room for one more.
    assert!(log
        .record_number_conflict(alice, seconds(40), seconds(10), 2)
        .unwrap());
    assert_eq!(
        log.number_conflicts_since(alice, seconds(10)).unwrap(),
        [seconds(20), seconds(40)]
    );
    assert_eq!(
        log.number_conflicts_since(alice, seconds(20)).unwrap(),
        [seconds(40)]
    );
    assert_eq!(
        log.number_conflicts_since(bob, seconds(0)).unwrap(),
        [seconds(30)]
    );
    let nobody = UserId::new(999_999).unwrap();
    assert_eq!(
        log.record_number_conflict(nobody, seconds(0), seconds(0), 2),
        Err(RepositoryError::NotFound)
    );
}

pub fn racing_number_conflicts_never_pass_the_budget(fixture: &Fixture) {
    let alice = user(fixture, "alice@example.com");
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let recorded: usize = (0..threads)
        .map(|i| {
            let (log, barrier) = (fixture.conflicts.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let at = seconds(100 + i64::try_from(i).unwrap());
                log.record_number_conflict(alice, at, seconds(0), 3)
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| usize::from(handle.join().unwrap()))
        .sum();
    assert_eq!(recorded, 3);
    assert_eq!(
        fixture
            .conflicts
            .number_conflicts_since(alice, seconds(0))
            .unwrap()
            .len(),
        3
    );
}

/// A credentials trunk for `phone` whose carrier is `address`.
fn trunk_at(phone: &str, address: &str) -> NewSipTrunk {
    let input = NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some(phone.into()),
        nickname: Some(address.into()),
        sip_username: Some("acme_user".into()),
        sip_password: Some(PASSWORD.into()),
        sip_address: Some(address.into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some("auth".into()),
        allowed_inbound_ips: None,
        country_code: None,
        outbound_proxy: None,
    };
    NewSipTrunk::parse(&input).unwrap()
}

fn addresses(claimed: &[(String, domain::CarrierHealth)]) -> Vec<&str> {
    let mut names: Vec<&str> = claimed.iter().map(|(a, _)| a.as_str()).collect();
    names.sort_unstable();
    names
}

pub fn each_carrier_address_of_the_trunks_is_due_once_synced_claimed_once_and_gone_with_its_trunks(
    fixture: &Fixture,
) {
    let alice = user(fixture, "alice@example.com");
    let bob = user(fixture, "bob@example.com");
    let trunks = &fixture.trunks;
    trunks
        .create_trunk(alice, &trunk_at("+14155550001", "sip.a.example"), NO_LIMIT)
        .unwrap();
    let shared = trunks
        .create_trunk(alice, &trunk_at("+14155550002", "sip.b.example"), NO_LIMIT)
        .unwrap();
    let bobs = trunks
        .create_trunk(bob, &trunk_at("+14155550003", "sip.b.example"), NO_LIMIT)
        .unwrap();
    let carriers = &fixture.carriers;
    assert_eq!(carriers.carrier_health("sip.a.example").unwrap(), None);
    // Nothing is due before the addresses are synced with the trunks.
    assert!(carriers
        .claim_due_carriers(seconds(0), seconds(30), 10)
        .unwrap()
        .is_empty());
    carriers.sync_carrier_addresses(seconds(0)).unwrap();
    // One record per distinct address, whoever's trunks use it; never probed: unknown.
    let claimed = carriers
        .claim_due_carriers(seconds(0), seconds(30), 10)
        .unwrap();
    assert_eq!(addresses(&claimed), ["sip.a.example", "sip.b.example"]);
    assert!(claimed
        .iter()
        .all(|(_, health)| *health == domain::CarrierHealth::default()));
    // Claimed: not due again before the hold runs out, then due again.
    assert!(carriers
        .claim_due_carriers(seconds(29), seconds(60), 10)
        .unwrap()
        .is_empty());
    let again = carriers
        .claim_due_carriers(seconds(30), seconds(60), 1)
        .unwrap();
    assert_eq!(again.len(), 1, "at most the limit");
    // An address stays while a trunk uses it and goes with the last one.
    trunks.delete_trunk(alice, shared.id).unwrap();
    carriers.sync_carrier_addresses(seconds(61)).unwrap();
    assert!(carriers.carrier_health("sip.b.example").unwrap().is_some());
    trunks.delete_trunk(bob, bobs.id).unwrap();
    carriers.sync_carrier_addresses(seconds(91)).unwrap();
    assert_eq!(carriers.carrier_health("sip.b.example").unwrap(), None);
    assert!(carriers.carrier_health("sip.a.example").unwrap().is_some());
}

pub fn a_carriers_health_round_trips_and_is_due_again_when_recorded(fixture: &Fixture) {
    use domain::{CarrierHealth, CarrierState, ProbeOutcome, ProbeResponse};
    let alice = user(fixture, "alice@example.com");
    fixture
        .trunks
        .create_trunk(alice, &trunk_at("+14155550001", "203.0.113.7"), NO_LIMIT)
        .unwrap();
    let carriers = &fixture.carriers;
    carriers.sync_carrier_addresses(seconds(0)).unwrap();
    for response in [
        ProbeResponse::answered(404, "Not Found"),
        ProbeResponse::Timeout,
        ProbeResponse::IcmpUnreachable,
        ProbeResponse::DnsFailure,
    ] {
        let rtt = response
            .is_alive()
            .then_some(std::time::Duration::from_millis(42));
        let health = CarrierHealth {
            state: CarrierState::Unreachable,
            since: Some(seconds(5)),
            last_probe: Some(ProbeOutcome {
                response,
                at: seconds(6),
                rtt,
            }),
            successes_in_row: 1,
            failures_in_row: 0,
        };
        carriers
            .record_carrier_health("203.0.113.7", &health, seconds(66))
            .unwrap();
        assert_eq!(
            carriers.carrier_health("203.0.113.7").unwrap(),
            Some(health.clone())
        );
        assert!(carriers
            .claim_due_carriers(seconds(65), seconds(90), 10)
            .unwrap()
            .is_empty());
        let due = carriers
            .claim_due_carriers(seconds(66), seconds(90), 10)
            .unwrap();
        assert_eq!(due, [("203.0.113.7".to_owned(), health)]);
    }
}

pub fn racing_probers_claim_each_carrier_once(fixture: &Fixture) {
    let alice = user(fixture, "alice@example.com");
    for n in 0..40 {
        fixture
            .trunks
            .create_trunk(
                alice,
                &trunk_at(&format!("+1415555{n:04}"), &format!("sip{n}.example")),
                NO_LIMIT,
            )
            .unwrap();
    }
    let barrier = Arc::new(Barrier::new(4));
    let claims: Vec<Vec<String>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                let carriers = fixture.carriers.clone();
                scope.spawn(move || {
                    barrier.wait();
                    // Racing syncs add each address once (SQLite: or find the file busy).
                    match carriers.sync_carrier_addresses(seconds(0)) {
                        Ok(()) | Err(RepositoryError::Unavailable(_)) => {}
                        Err(error) => panic!("{error:?}"),
                    }
                    let mut mine = Vec::new();
                    for _ in 0..10 {
                        match carriers.claim_due_carriers(seconds(0), seconds(60), 5) {
                            Ok(claimed) => mine.extend(claimed.into_iter().map(|(a, _)| a)),
                            // SQLite: a writer of another connection holds the file.
                            Err(RepositoryError::Unavailable(_)) => {}
                            Err(error) => panic!("{error:?}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<String> = claims.into_iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no carrier claimed twice");
    assert_eq!(total, 40, "every carrier claimed once");
}

pub fn trunks_are_counted_by_their_carriers_state_hidden_creates_left_out(fixture: &Fixture) {
    use domain::{CarrierHealth, CarrierState, Lease, TrunksByCarrierState};
    let alice = user(fixture, "alice@example.com");
    for (phone, address) in [
        ("+14155550001", "sip.up.example"),
        ("+14155550002", "sip.up.example"),
        ("+14155550003", "sip.down.example"),
        ("+14155550004", "sip.new.example"),
    ] {
        fixture
            .trunks
            .create_trunk(alice, &trunk_at(phone, address), NO_LIMIT)
            .unwrap();
    }
    let lease = Lease {
        token: "creator".into(),
        until: Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 30_000_000).unwrap(),
    };
    fixture
        .ledger
        .begin_create(
            alice,
            &trunk_at("+14155550005", "sip.up.example"),
            NO_LIMIT,
            &lease,
        )
        .unwrap();
    let carriers = &fixture.carriers;
    let with_state = |state| CarrierHealth {
        state,
        ..CarrierHealth::default()
    };
    carriers
        .record_carrier_health(
            "sip.up.example",
            &with_state(CarrierState::Reachable),
            seconds(60),
        )
        .unwrap();
    carriers
        .record_carrier_health(
            "sip.down.example",
            &with_state(CarrierState::Unreachable),
            seconds(60),
        )
        .unwrap();
    assert_eq!(
        carriers.trunks_by_carrier_state().unwrap(),
        TrunksByCarrierState {
            reachable: 2,
            unreachable: 1,
            unknown: 1
        }
    );
}
