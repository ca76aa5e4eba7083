//! Bounded by default: the per-account limits and their 403 bodies, lists longer than a page
//! (read and sent page by page), and compressed answers.

use std::io::Read;

use actix_web::test;
use api::state::AccountLimits;
use domain::{AccountRepository, Email, NewSipTrunk, NewSipTrunkInput, SipTrunkRepository};
use serde_json::{json, Value};

use crate::support::*;

fn numbered(n: usize) -> Value {
    let mut body = number_trunk();
    body["phone_number"] = json!(format!("+1415{n:07}"));
    body
}

#[actix_web::test]
async fn one_create_past_the_trunk_limit_is_403_and_stores_nothing() {
    let (state, store) = memory_state();
    let state = state.with_limits(AccountLimits {
        max_trunks: 2,
        ..AccountLimits::default()
    });
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    for n in 0..2 {
        let created = app.create_trunk(&alice.token, &numbered(n)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let refused = app.create_trunk(&alice.token, &numbered(2)).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (
            403,
            r#"{"error":"SIP trunk limit reached: at most 2 per account."}"#
        )
    );
    let list = app.list_trunks(&alice.token).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 2);
    let other = app.create_trunk(&bob.token, &numbered(2)).await;
    assert_eq!(other.status, 201, "the limit is per account");
    let deleted = app.delete_phone_number(&alice.token, 1).await;
    assert_eq!(deleted.status, 200);
    let again = app.create_trunk(&alice.token, &numbered(2)).await;
    assert_eq!(again.status, 201, "a delete makes room");
}

#[actix_web::test]
async fn one_key_past_the_api_key_limit_is_403() {
    let (state, store) = memory_state();
    let state = state.with_limits(AccountLimits {
        max_api_keys: 2,
        ..AccountLimits::default()
    });
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let create = || {
        request(
            "POST",
            "/api/user/api-keys",
            Some(&alice.token),
            Some(&json!({"name": "more"})),
        )
    };
    assert_eq!(app.send(create()).await.status, 201, "the second key");
    let refused = app.send(create()).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (
            403,
            r#"{"message":"API key limit reached: at most 2 per account."}"#
        )
    );
    let keys = app.list_api_keys(&alice.token).await;
    assert_eq!(keys.json()["api_keys"].as_array().unwrap().len(), 2);
}

/// Stores `count` trunks for the user with `email` straight into the store.
fn seed(store: &store::MemoryStore, email: &str, count: usize) {
    let owner = store
        .find_user_by_email(&Email::parse(email).unwrap())
        .unwrap()
        .id;
    for n in 0..count {
        let new = NewSipTrunk::parse(&NewSipTrunkInput {
            sip_trunk_type: Some("extension".into()),
            phone_number: Some(format!("{n}")),
            sip_username: Some("pbx_user".into()),
            sip_password: Some("Pbx-Secret-Pass".into()),
            sip_address: Some("pbx.example".into()),
            sip_calling_format: Some("national".into()),
            inbound_authorization_type: Some("ip".into()),
            allowed_inbound_ips: Some(vec!["2001:db8::1".into(), format!("2001:db8::{n:x}/128")]),
            country_code: Some("GB".into()),
            ..NewSipTrunkInput::default()
        })
        .unwrap();
        store.create_trunk(owner, &new, u32::MAX).unwrap();
    }
}

#[actix_web::test]
async fn a_list_longer_than_a_page_arrives_whole_in_id_order_as_compact_json() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let count = 2 * api::routes::LIST_PAGE + 7;
    seed(&store, "alice@example.com", count);
    caller(&store, "bob@example.com");
    seed(&store, "bob@example.com", 3);
    let app = TestApp::spawn(state).await;
    let reply = app.list_trunks(&alice.token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let parsed = reply.json();
    assert_eq!(
        serde_json::to_string(&parsed).unwrap(),
        reply.text,
        "the chunks join into exactly the compact document"
    );
    let ids: Vec<i64> = parsed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=count as i64).collect::<Vec<_>>());
    // The same answer as the short form would be: one item as a single read shows it.
    let one = app.get_trunk(&alice.token, 250).await;
    let mut item = one.json()["data"].clone();
    let item = item.as_object_mut().unwrap();
    item.remove("inbound_trunk_id");
    item.remove("outbound_trunk_id");
    assert_eq!(parsed["data"][249], Value::Object(item.clone()));
}

/// The trunk port of a store, delegated, whose reads of a list's later pages take a while
/// and are counted while they run.
struct SlowLaterPages {
    store: std::sync::Arc<store::MemoryStore>,
    running: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

impl SipTrunkRepository for SlowLaterPages {
    fn reads_inline(&self) -> bool {
        self.store.reads_inline()
    }

    fn list_trunks(
        &self,
        owner: domain::UserId,
        page: domain::TrunkPage,
    ) -> domain::RepositoryResult<domain::TrunkListing> {
        use std::sync::atomic::Ordering;
        if page.after.is_none() {
            return self.store.list_trunks(owner, page);
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let listing = self.store.list_trunks(owner, page);
        self.running.fetch_sub(1, Ordering::SeqCst);
        listing
    }

    fn get_trunk(
        &self,
        owner: domain::UserId,
        id: domain::TrunkId,
    ) -> domain::RepositoryResult<domain::SipTrunk<domain::PasswordWithheld>> {
        self.store.get_trunk(owner, id)
    }

    fn open_trunk(
        &self,
        owner: domain::UserId,
        id: domain::TrunkId,
    ) -> domain::RepositoryResult<domain::SipTrunk> {
        self.store.open_trunk(owner, id)
    }

    fn create_trunk(
        &self,
        owner: domain::UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
    ) -> domain::RepositoryResult<domain::SipTrunk> {
        self.store.create_trunk(owner, trunk, max_trunks)
    }

    fn update_trunk(
        &self,
        owner: domain::UserId,
        id: domain::TrunkId,
        patch: &domain::SipTrunkPatch,
    ) -> domain::RepositoryResult<domain::TrunkUpdate> {
        self.store.update_trunk(owner, id, patch)
    }

    fn delete_trunk(
        &self,
        owner: domain::UserId,
        id: domain::TrunkId,
    ) -> domain::RepositoryResult<()> {
        self.store.delete_trunk(owner, id)
    }
}

#[actix_web::test]
async fn many_long_lists_at_once_read_at_most_two_later_pages_per_core_at_a_time() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let count = 3 * api::routes::LIST_PAGE + 1;
    seed(&store, "alice@example.com", count);
    let pages = std::sync::Arc::new(SlowLaterPages {
        store,
        running: 0.into(),
        most_at_once: 0.into(),
    });
    let state = api::state::AppState {
        trunks: pages.clone(),
        ..state
    }
    .with_read_cache(std::time::Duration::ZERO, 0);
    let bound = api::state::long_list_pages();
    let app = TestApp::spawn(state).await;
    let lists =
        futures_util::future::join_all((0..4 * bound).map(|_| app.list_trunks(&alice.token))).await;
    for list in &lists {
        assert_eq!(list.status, 200);
        assert_eq!(list.json()["data"].as_array().unwrap().len(), count);
    }
    let most = pages.most_at_once.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=bound).contains(&most),
        "{most} later pages were read at once; the bound is {bound}"
    );
}

#[actix_web::test]
async fn a_list_exactly_one_page_long_is_whole_too() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    seed(&store, "alice@example.com", api::routes::LIST_PAGE);
    let app = TestApp::spawn(state).await;
    let reply = app.list_trunks(&alice.token).await;
    let parsed = reply.json();
    assert_eq!(
        parsed["data"].as_array().unwrap().len(),
        api::routes::LIST_PAGE
    );
    assert_eq!(serde_json::to_string(&parsed).unwrap(), reply.text);
}

#[actix_web::test]
async fn answers_are_gzipped_when_the_client_accepts_it() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    seed(&store, "alice@example.com", 300);
    let app = TestApp::spawn(state).await;
    let plain = app.list_trunks(&alice.token).await;
    assert_eq!(plain.header("content-encoding"), None);
    let asked =
        request("GET", TRUNKS, Some(&alice.token), None).insert_header(("Accept-Encoding", "gzip"));
    let response = app.call(asked).await;
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let compressed = test::read_body(response).await;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, plain.text);
    assert!(
        compressed.len() * 4 < text.len(),
        "{} -> {}",
        text.len(),
        compressed.len()
    );
}
