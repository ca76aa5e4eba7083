//! Keys that cannot strand data, end to end: the service refuses to start without a key the
//! stored passwords need (naming it and its rows), a lost SQLite key file is never replaced
//! while passwords are stored, and `reencrypt` moves every row to the current key so the old
//! one can go.

use serde_json::json;
use store::EncryptionKey;

use crate::harness::{create_user, file_in, run_cli_with, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";
const KEY: &str = "SIP_TRUNKS_ENCRYPTION_KEY";
const PREVIOUS: &str = "SIP_TRUNKS_PREVIOUS_ENCRYPTION_KEYS";

fn trunk(phone: &str) -> serde_json::Value {
    json!({
        "sip_trunk_type": "number", "phone_number": phone, "sip_username": "key_user",
        "sip_password": "Key-Test-Pass-1", "sip_address": "sip.keys.example",
        "sip_calling_format": "+e164", "inbound_authorization_type": "auth", "country_code": "US"
    })
}

/// The key the database's service uses now: the configured one, or the SQLite key file's.
fn current_key(database: &Database) -> String {
    database
        .env
        .iter()
        .find(|(name, _)| name == KEY)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| std::fs::read_to_string(file_in(database, "trunks.db.key")).unwrap())
}

/// Creates a user and `count` trunks through the API; gives the token.
fn stored_trunks(database: &Database, count: usize) -> String {
    let token = create_user(database, "keys@example.com");
    let server = Server::start(database);
    for n in 0..count {
        let (status, body) = server.call(
            "POST",
            TRUNKS,
            Some(&token),
            Some(&trunk(&format!("+1415555500{n}"))),
        );
        assert_eq!(status, 201, "{body}");
    }
    assert!(server.stop().0);
    token
}

pub fn the_service_refuses_to_start_without_a_key_the_stored_rows_need(database: &Database) {
    stored_trunks(database, 2);
    let old = EncryptionKey::from_base64(&current_key(database)).unwrap();
    let (_, other) = EncryptionKey::generate();
    let refused = run_cli_with(
        database,
        &[(KEY, &other)],
        &["serve", "--bind", "127.0.0.1:0"],
    );
    let log = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("key {} seals 2 stored password(s)", old.id())),
        "{log}"
    );
    assert!(!log.contains(&other), "the key itself is never logged");
}

pub fn a_lost_sqlite_key_file_is_never_replaced_while_passwords_are_stored(database: &Database) {
    stored_trunks(database, 1);
    let key_file = file_in(database, "trunks.db.key");
    std::fs::remove_file(&key_file).unwrap();
    let refused = run_cli_with(database, &[], &["serve", "--bind", "127.0.0.1:0"]);
    let log = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains("is missing") && log.contains("restore"),
        "{log}"
    );
    assert!(!key_file.exists(), "no new key file");
}

pub fn reencrypt_moves_every_row_to_the_current_key_so_the_old_one_can_go(database: &Database) {
    let token = stored_trunks(database, 3);
    let old = current_key(database);
    let (_, new) = EncryptionKey::generate();
    let rotated = [(KEY, new.as_str()), (PREVIOUS, old.as_str())];
    let first = run_cli_with(database, &rotated, &["reencrypt"]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("re-sealed 3 password(s)"), "{out}");
    assert!(out.contains("3 now sealed with the current key"), "{out}");
    let second = run_cli_with(database, &rotated, &["reencrypt"]);
    assert_eq!(second.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&second.stdout).contains("re-sealed 0 password(s)"));
    // The old key is gone from the configuration; the service starts and every trunk reads
    // and updates (an update opens and re-seals the password).
    let server = Server::start_with(database, &[(KEY, new.as_str()), (PREVIOUS, "")]);
    let (status, body) = server.call("GET", TRUNKS, Some(&token), None);
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trunk| trunk["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in ids {
        let (status, body) = server.call(
            "PUT",
            &format!("{TRUNKS}/{id}"),
            Some(&token),
            Some(&json!({"nickname": "after rotation"})),
        );
        assert_eq!(status, 200, "{body}");
    }
}
