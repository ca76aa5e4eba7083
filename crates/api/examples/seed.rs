//! The benchmark's bulk path: users and trunks written through the store (same row mapping and
//! encryption as the API), many per transaction. Prints `token <token>` for the probe user.
//!
//! `seed <database url> <encryption key> probe` creates the probe user with 10 trunks;
//! `seed <database url> <encryption key> fill <first user number> <users>` adds `users` users
//! with 10 trunks each; `seed <database url> <encryption key> wide <users> <trunks>` adds
//! `users` users with `trunks` trunks of 100 IPv6 allow-list entries each (the memory
//! benchmark's worst case) and prints `token <token>` for each; `seed <database url>
//! <encryption key> writers <users>` adds users without trunks, a token each.

use domain::{
    AccountRepository, ApiKeyName, ApiToken, Email, NewSipTrunk, NewSipTrunkInput,
    SipTrunkRepository, TokenSecret, TrunkPage, UserName,
};
use store::{DatabaseUrl, EncryptionKey, Keyring, PoolOptions, SqlStore};

const TRUNKS_PER_USER: usize = 10;
const BATCH_USERS: usize = 2_000;

fn trunk(index: usize) -> NewSipTrunk {
    let ip = index % 2 == 1;
    NewSipTrunk::parse(&NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some(format!("+1415555{index:04}")),
        nickname: Some(format!("Line {index}")),
        sip_username: Some("bench_user".into()),
        sip_password: Some("Bench-Pass-123".into()),
        sip_address: Some("sip.carrier.example".into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some(if ip { "ip" } else { "auth" }.into()),
        allowed_inbound_ips: ip.then(|| vec!["203.0.113.10".into(), "198.51.100.0/24".into()]),
        country_code: Some("US".into()),
        outbound_proxy: Some(ip),
    })
    .expect("a valid trunk")
}

/// An `ip` trunk with 100 full-length IPv6 entries: some 4 KiB of JSON.
fn wide_trunk(index: usize) -> NewSipTrunk {
    NewSipTrunk::parse(&NewSipTrunkInput {
        sip_trunk_type: Some("extension".into()),
        phone_number: Some(format!("{index}")),
        nickname: Some(format!("Wide {index}")),
        sip_username: Some("wide_user".into()),
        sip_password: Some("Wide-Pass-123".into()),
        sip_address: Some("pbx.wide.example".into()),
        sip_calling_format: Some("national".into()),
        inbound_authorization_type: Some("ip".into()),
        allowed_inbound_ips: Some(
            (0..100)
                .map(|j| format!("2001:db8:85a3:{index:x}:{j:x}:8a2e:370:7334"))
                .collect(),
        ),
        country_code: Some("GB".into()),
        outbound_proxy: Some(false),
    })
    .expect("a valid wide trunk")
}

fn doomed_trunk(index: usize) -> NewSipTrunk {
    let mut trunk = trunk(0);
    trunk.phone_number =
        domain::PhoneNumber::parse(domain::TrunkType::Number, &format!("+1999{index:09}"))
            .expect("a number");
    trunk
}

/// A new API key of `user`, as its token.
#[allow(clippy::expect_used)] // a benchmark tool: failures are for its caller
fn bench_token(store: &SqlStore, user: domain::UserId) -> String {
    let secret = TokenSecret::generate();
    let key = store
        .create_api_key(
            user,
            &ApiKeyName::parse("bench").expect("name"),
            &secret.hash(),
            u32::MAX,
        )
        .expect("key");
    ApiToken::new(key.id, secret).expose_secret()
}

#[allow(clippy::print_stdout, clippy::expect_used)] // a benchmark tool: output and failures are for its caller
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = DatabaseUrl::parse(&args[0]).expect("a database URL");
    let keys = Keyring::new(EncryptionKey::from_base64(&args[1]).expect("a key"));
    // A one-shot tool: no connection opened behind its back (`one_shot`), and none still being
    // opened when it exits (`close_connection_attempts`): a thread inside libpq's TLS handshake
    // at exit can crash the process after its work was done (it did, under the benchmark).
    let store = SqlStore::open(&url, keys, PoolOptions::one_shot()).expect("open");
    store.migrate().expect("migrate");
    match args[2].as_str() {
        "probe" => {
            let user = store
                .create_user(
                    &Email::parse("probe@bench.example").expect("email"),
                    &UserName::parse("Probe").expect("name"),
                )
                .expect("probe user");
            let trunks: Vec<_> = (0..TRUNKS_PER_USER).map(|i| (user.id, trunk(i))).collect();
            store.import_trunks(&trunks).expect("probe trunks");
            println!("token {}", bench_token(&store, user.id));
        }
        "doomed" => {
            // A separate user whose trunks the delete benchmark removes, so the probe's list
            // stays at 10. Prints the first new id and the user's token.
            let count: usize = args[3].parse().expect("count");
            let user = store
                .create_user(
                    &Email::parse("deleter@bench.example").expect("email"),
                    &UserName::parse("Deleter").expect("name"),
                )
                .expect("the deleter user");
            let trunks: Vec<_> = (0..count).map(|i| (user.id, doomed_trunk(i))).collect();
            store.import_trunks(&trunks).expect("doomed trunks");
            let first = store
                .list_trunks(user.id, TrunkPage::first(1))
                .expect("list")
                .trunks
                .first()
                .map(|t| t.id.get())
                .expect("trunks");
            println!("first {first} token {}", bench_token(&store, user.id));
        }
        "writers" => {
            // Users with no trunks, for the create load spread over accounts; a token each.
            let count: usize = args[3].parse().expect("count");
            for n in 0..count {
                let user = store
                    .create_user(
                        &Email::parse(&format!("writer{n}@bench.example")).expect("email"),
                        &UserName::parse("Writer").expect("name"),
                    )
                    .expect("a writer");
                println!("token {}", bench_token(&store, user.id));
            }
        }
        "fill" => {
            let first: usize = args[3].parse().expect("first user number");
            let count: usize = args[4].parse().expect("user count");
            let mut done = 0;
            while done < count {
                let batch = BATCH_USERS.min(count - done);
                let users: Vec<_> = (first + done..first + done + batch)
                    .map(|n| {
                        (
                            Email::parse(&format!("user{n}@bench.example")).expect("email"),
                            UserName::parse(&format!("User {n}")).expect("name"),
                        )
                    })
                    .collect();
                let ids = store.import_users(&users).expect("users");
                let trunks: Vec<_> = ids
                    .iter()
                    .flat_map(|id| (0..TRUNKS_PER_USER).map(move |i| (*id, trunk(i))))
                    .collect();
                store.import_trunks(&trunks).expect("trunks");
                done += batch;
            }
            println!("filled {count} users");
        }
        "wide" => {
            let users: usize = args[3].parse().expect("user count");
            let per_user: usize = args[4].parse().expect("trunks per user");
            for n in 0..users {
                let user = store
                    .create_user(
                        &Email::parse(&format!("wide{n}@bench.example")).expect("email"),
                        &UserName::parse("Wide").expect("name"),
                    )
                    .expect("a wide user");
                for chunk in (0..per_user).collect::<Vec<_>>().chunks(1_000) {
                    let trunks: Vec<_> = chunk.iter().map(|i| (user.id, wide_trunk(*i))).collect();
                    store.import_trunks(&trunks).expect("wide trunks");
                }
                println!("token {}", bench_token(&store, user.id));
            }
        }
        other => panic!("unknown mode {other}"),
    }
    drop(store);
    assert!(
        store::close_connection_attempts(std::time::Duration::from_secs(15)),
        "a database connection was still being opened at exit"
    );
}
