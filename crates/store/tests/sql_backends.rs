//! Backend-specific behaviour of the SQL store: URLs, pools, pragmas, migrations, and what
//! the database file holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::{
    AccountRepository, Email, NewSipTrunk, NewSipTrunkInput, SipTrunkRepository, UserName,
};
use store::{DatabaseUrl, EncryptionKey, Keyring, OpenError, PoolOptions, SqlStore};

const PASSWORD: &str = "Very-Distinct-Plaintext-42";

fn keys() -> Keyring {
    Keyring::new(EncryptionKey::generate().0)
}

fn open(url: DatabaseUrl) -> SqlStore {
    let store = SqlStore::open(&url, keys(), PoolOptions::default()).unwrap();
    store.migrate().unwrap();
    store
}

fn trunk_input() -> NewSipTrunkInput {
    NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some("+14155551234".into()),
        sip_username: Some("acme_user".into()),
        sip_password: Some(PASSWORD.into()),
        sip_address: Some("sip.carrier.example".into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some("auth".into()),
        ..Default::default()
    }
}

fn trunk() -> NewSipTrunk {
    NewSipTrunk::parse(&trunk_input()).unwrap()
}

#[test]
fn an_in_memory_sqlite_database_is_one_database_for_every_caller() {
    let store = open(DatabaseUrl::SqliteMemory);
    let email = Email::parse("mem@example.com").unwrap();
    store
        .create_user(&email, &UserName::parse("Mem").unwrap())
        .unwrap();
    let other = store.clone();
    let found = std::thread::spawn(move || other.find_user_by_email(&email))
        .join()
        .unwrap();
    assert!(found.is_ok());
}

#[test]
fn an_unreachable_postgres_is_reported_with_the_backends_reason() {
    let url = DatabaseUrl::parse("postgres://nobody:pw@127.0.0.1:1/none").unwrap();
    let options = PoolOptions {
        max_size: 1,
        connection_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    };
    match SqlStore::open(&url, keys(), options) {
        Err(error @ OpenError::Connect { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("refused") || message.contains("connect"),
                "{message}"
            );
            assert!(!message.contains(":pw@"), "{message}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[test]
fn migrations_apply_once_and_then_find_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::SqliteFile(dir.path().join("m.db"));
    let store = SqlStore::open(&url, keys(), PoolOptions::default()).unwrap();
    assert_eq!(store.migrate().unwrap().len(), 9);
    assert!(store.migrate().unwrap().is_empty());
}

#[test]
fn both_backends_have_the_same_migration_names() {
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!(
            "{}/../../migrations/{backend}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[test]
fn every_sqlite_connection_uses_wal_foreign_keys_and_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(DatabaseUrl::SqliteFile(dir.path().join("p.db")));
    let (mode, foreign_keys, timeout, synchronous) = store
        .with_connection(|conn| {
            let mode = diesel::sql_query("PRAGMA journal_mode").get_result::<Pragma>(conn)?;
            let flag = |sql: &str, conn: &mut _| {
                diesel::sql_query(sql)
                    .get_result::<Flag>(conn)
                    .map(|flag| flag.value)
            };
            Ok((
                mode.journal_mode,
                flag(
                    "SELECT foreign_keys AS value FROM pragma_foreign_keys",
                    conn,
                )?,
                flag("SELECT timeout AS value FROM pragma_busy_timeout", conn)?,
                flag("SELECT synchronous AS value FROM pragma_synchronous", conn)?,
            ))
        })
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(foreign_keys, 1);
    assert_eq!(timeout, 5000);
    assert_eq!(synchronous, 2, "FULL");
}

#[test]
fn the_sqlite_files_never_hold_the_plaintext_password() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(DatabaseUrl::SqliteFile(dir.path().join("raw.db")));
    let owner = store
        .create_user(
            &Email::parse("raw@example.com").unwrap(),
            &UserName::parse("Raw").unwrap(),
        )
        .unwrap()
        .id;
    let created = store.create_trunk(owner, &trunk(), 1000).unwrap();
    assert_eq!(created.settings.sip_password.expose_secret(), PASSWORD);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        bytes.windows(b"acme_user".len()).any(|w| w == b"acme_user"),
        "the data is on disk"
    );
    assert!(!bytes
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes()));
}

#[test]
fn the_sqlite_wal_stays_bounded_under_ten_thousand_creates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = open(DatabaseUrl::SqliteFile(path.clone()));
    // Users are created by `INSERT ... RETURNING` outside any transaction: the write that
    // never triggered SQLite's auto-checkpoint.
    let owners: Vec<_> = (0..100)
        .map(|n| {
            store
                .create_user(
                    &Email::parse(&format!("wal{n}@example.com")).unwrap(),
                    &UserName::parse("Wal").unwrap(),
                )
                .unwrap()
                .id
        })
        .collect();
    let mut largest = 0;
    for n in 0..10_000_usize {
        let mut input = trunk_input();
        input.phone_number = Some(format!("+1415{n:07}"));
        store
            .create_trunk(
                owners[n % owners.len()],
                &NewSipTrunk::parse(&input).unwrap(),
                1000,
            )
            .unwrap();
        if n % 500 == 0 {
            largest = largest.max(wal_size(&path));
        }
    }
    largest = largest.max(wal_size(&path));
    // SQLite checkpoints at 1000 pages (4 MiB); journal_size_limit cuts the file to 16 MiB.
    assert!(largest <= 16 << 20, "the WAL reached {largest} bytes");
    let database = std::fs::metadata(&path).unwrap().len();
    assert!(
        database > 1 << 20,
        "the rows reached the database file: {database}"
    );
}

/// The SQL of the statements a connection ran, and of those it prepared to keep.
#[derive(Default)]
struct Statements {
    run: Vec<String>,
    kept: Vec<String>,
}

#[test]
fn trunk_creates_on_sqlite_prepare_each_of_their_statements_once_per_connection() {
    use diesel::connection::InstrumentationEvent;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let one_connection = PoolOptions {
        max_size: 1,
        keep_one_ready: false,
        ..PoolOptions::default()
    };
    let store = SqlStore::open(
        &DatabaseUrl::SqliteFile(dir.path().join("prepared.db")),
        keys(),
        one_connection,
    )
    .unwrap();
    store.migrate().unwrap();
    let owner = store
        .create_user(
            &Email::parse("prepared@example.com").unwrap(),
            &UserName::parse("Prepared").unwrap(),
        )
        .unwrap()
        .id;
    let seen = Arc::new(Mutex::new(Statements::default()));
    let recorder = seen.clone();
    store
        .with_connection(move |conn| {
            conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                let mut seen = recorder.lock().unwrap();
                match event {
                    InstrumentationEvent::StartQuery { query, .. } => {
                        let text = query.to_string();
                        let sql = text.split(" -- binds:").next().unwrap_or_default();
                        seen.run.push(sql.to_owned());
                    }
                    InstrumentationEvent::CacheQuery { sql, .. } => seen.kept.push(sql.to_owned()),
                    _ => {}
                }
            });
            Ok(())
        })
        .unwrap();
    let numbered = |n: usize| {
        let mut input = trunk_input();
        input.phone_number = Some(format!("+1415{n:07}"));
        NewSipTrunk::parse(&input).unwrap()
    };
    for round in 0..5 {
        let batch = (0..3)
            .map(|n| (owner, numbered(round * 10 + n), 1000))
            .collect();
        for created in store.create_trunks_together(batch) {
            created.unwrap();
        }
        store
            .create_trunk(owner, &numbered(round * 10 + 5), 1000)
            .unwrap();
    }

    let seen = seen.lock().unwrap();
    let writes: Vec<&String> = seen
        .run
        .iter()
        .filter(|sql| sql.starts_with("INSERT") || sql.starts_with("UPDATE"))
        .collect();
    assert!(writes.len() >= 20 * 3, "{:#?}", seen.run);
    for sql in writes {
        assert!(
            seen.kept.contains(sql),
            "prepared anew on every run, never kept: {sql}"
        );
    }
    let mut kept = seen.kept.clone();
    kept.sort();
    kept.dedup();
    assert_eq!(kept.len(), seen.kept.len(), "{:#?}", seen.kept);
}

fn wal_size(database: &std::path::Path) -> u64 {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |metadata| metadata.len())
}
