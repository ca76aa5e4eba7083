//! The contract every store implements, written once against the ports.

use std::sync::{Arc, Barrier};
use std::thread;

use diesel::prelude::*;
use domain::{
    ApiKeyName, ApiToken, Email, NewSipTrunk, NewSipTrunkInput, Patch, RepositoryError,
    SipTrunkPatch, SipTrunkPatchInput, Timestamp, TokenSecret, TrunkId, TrunkType, UserId,
    UserName,
};
use store::sql::schema::sip_trunks;
use store::{EncryptionKey, Keyring};

use super::fixtures::Fixture;

const PASSWORD: &str = "Plaintext-Pa55word";

fn user(fixture: &Fixture, email: &str) -> UserId {
    fixture
        .accounts
        .create_user(
            &Email::parse(email).unwrap(),
            &UserName::parse("Test User").unwrap(),
        )
        .unwrap()
        .id
}

fn number_trunk(phone: &str) -> NewSipTrunk {
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

fn patch(trunk_type: TrunkType, input: SipTrunkPatchInput) -> SipTrunkPatch {
    SipTrunkPatch::parse(&input, trunk_type).unwrap()
}

fn nickname_patch(nickname: &str) -> SipTrunkPatch {
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
    let created = fixture.trunks.create_trunk(owner, &new).unwrap();
    assert_eq!(created.owner, owner);
    assert_eq!(created.settings, new);
    assert_eq!(created.settings.sip_password.expose_secret(), PASSWORD);
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(created.inbound_trunk_id, None);
    assert_eq!(
        fixture.trunks.get_trunk(owner, created.id).unwrap(),
        created
    );
}

pub fn trunks_are_listed_by_id_ascending_and_only_the_owners(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    assert!(fixture.trunks.list_trunks(owner).unwrap().is_empty());
    let first = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"))
        .unwrap();
    fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155550002"))
        .unwrap();
    let third = fixture
        .trunks
        .create_trunk(owner, &ip_trunk("1000", &["198.51.100.1"]))
        .unwrap();
    let listed: Vec<TrunkId> = fixture
        .trunks
        .list_trunks(owner)
        .unwrap()
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
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    assert!(matches!(
        fixture.trunks.get_trunk(intruder, trunk.id),
        Err(RepositoryError::NotFound)
    ));
    assert!(fixture.trunks.list_trunks(intruder).unwrap().is_empty());
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
    assert_eq!(fixture.trunks.get_trunk(owner, trunk.id).unwrap(), trunk);
}

pub fn the_same_number_username_and_address_conflicts_within_an_owner_only(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(owner, &number_trunk("+14155551234")),
        Err(RepositoryError::Conflict)
    ));
    fixture
        .trunks
        .create_trunk(other, &number_trunk("+14155551234"))
        .unwrap();
    assert_eq!(fixture.trunks.list_trunks(owner).unwrap().len(), 1);
}

pub fn threads_racing_to_create_the_same_trunk_give_exactly_one_winner(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let racers = 8;
    let barrier = Arc::new(Barrier::new(racers));
    let outcomes: Vec<_> = (0..racers)
        .map(|_| {
            let trunks = fixture.trunks.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                trunks.create_trunk(owner, &number_trunk("+14155551234"))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let conflicts = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(RepositoryError::Conflict)))
        .count();
    assert_eq!((winners, conflicts), (1, racers - 1), "{outcomes:?}");
    assert_eq!(fixture.trunks.list_trunks(owner).unwrap().len(), 1);
}

pub fn an_update_into_another_trunks_identity_conflicts_and_changes_nothing(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550001"))
        .unwrap();
    let second = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550002"))
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
    assert_eq!(fixture.trunks.get_trunk(owner, second.id).unwrap(), second);
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
        .create_trunk(owner, &number_trunk("+14155551234"))
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
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    assert!(again.id > trunk.id);
}

pub fn timestamps_round_trip_to_the_microsecond(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let before = Timestamp::now();
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"))
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
        .create_trunk(owner, &ip_trunk("1000", &entries))
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
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    let empty = fixture
        .trunks
        .update_trunk(owner, created.id, &SipTrunkPatch::default())
        .unwrap();
    assert!(!empty.changed);
    assert_eq!(
        fixture.trunks.get_trunk(owner, created.id).unwrap(),
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
    let read = fixture.trunks.get_trunk(owner, created.id).unwrap();
    assert_eq!(read, real.trunk);
    assert_eq!(read.created_at, created.created_at);
    assert_eq!(read.settings.nickname.unwrap().as_str(), "Renamed");
}

pub fn an_update_applies_every_field_sent_and_reports_the_legs(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"))
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
    let read = fixture.trunks.get_trunk(owner, created.id).unwrap();
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
        .create_trunk(owner, &number_trunk("+14155551234"))
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
        fixture.trunks.get_trunk(owner, created.id).unwrap(),
        created
    );
}

pub fn concurrent_updates_of_one_trunk_are_all_applied(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"))
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

pub fn api_keys_authenticate_list_record_use_and_revoke(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let other = user(fixture, "b@example.com");
    let secret = TokenSecret::generate();
    let key = fixture
        .accounts
        .create_api_key(owner, &ApiKeyName::parse("ci").unwrap(), &secret.hash())
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
        .create_api_key(owner, &ApiKeyName::parse("one").unwrap(), &secret.hash())
        .unwrap();
    let second = fixture
        .accounts
        .create_api_key(
            owner,
            &ApiKeyName::parse("two").unwrap(),
            &TokenSecret::generate().hash(),
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
            &TokenSecret::generate().hash()
        ),
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        fixture
            .trunks
            .create_trunk(ghost, &number_trunk("+14155551234")),
        Err(RepositoryError::NotFound)
    ));
    let admin_revoke = fixture
        .accounts
        .revoke_any_api_key(domain::ApiKeyId::new(424_242).unwrap());
    assert!(matches!(admin_revoke, Err(RepositoryError::NotFound)));
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
        .create_trunk(owner, &number_trunk("+14155550001"))
        .unwrap();
    let second = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155550002"))
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
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    let stranger = fixture.reopen(Keyring::new(EncryptionKey::generate().0));
    use domain::SipTrunkRepository;
    match stranger.get_trunk(owner, created.id) {
        Err(RepositoryError::Corrupt(message)) => {
            assert!(message.contains("sip_password"), "{message}");
            assert!(!message.contains(PASSWORD));
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
    assert!(matches!(
        stranger.list_trunks(owner),
        Err(RepositoryError::Corrupt(_))
    ));
}

pub fn a_rotated_key_ring_opens_old_rows_and_seals_new_writes_with_the_new_key(fixture: &Fixture) {
    let owner = user(fixture, "a@example.com");
    let created = fixture
        .trunks
        .create_trunk(owner, &number_trunk("+14155551234"))
        .unwrap();
    let (_, old_key_id) = raw_password_columns(fixture, created.id);
    let (new_key, _) = EncryptionKey::generate();
    let new_key_id = new_key.id().to_owned();
    let rotated = fixture.reopen(
        Keyring::new(new_key).with_previous(EncryptionKey::from_base64(&fixture.key).unwrap()),
    );
    use domain::SipTrunkRepository;
    assert_eq!(rotated.get_trunk(owner, created.id).unwrap(), created);
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
            .get_trunk(owner, created.id)
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
        .create_trunk(owner, &number_trunk("+14155551234"))
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
