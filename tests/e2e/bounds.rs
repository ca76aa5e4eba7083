//! What the process holds: private files, the open-file limit, capped connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::harness::{create_user, file_in, Database, Server};

pub fn every_sqlite_file_the_service_creates_is_private(database: &Database) {
    let token = create_user(database, "files@example.com");
    let server = Server::start(database);
    let (status, body) = server.call(
        "POST",
        "/api/user/phone-numbers/sip-trunks",
        Some(&token),
        Some(&json!({
            "sip_trunk_type": "extension", "phone_number": "1000", "sip_username": "pbx_user",
            "sip_password": "File-Mode-Pass", "sip_address": "pbx.example",
            "sip_calling_format": "national", "inbound_authorization_type": "auth",
            "country_code": "GB"
        })),
    );
    assert_eq!(status, 201, "{body}");
    use std::os::unix::fs::PermissionsExt;
    for name in [
        "trunks.db",
        "trunks.db-wal",
        "trunks.db-shm",
        "trunks.db.key",
    ] {
        let path = file_in(database, name);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

/// The soft and hard "Max open files" of process `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

/// A keep-alive connection that has had one answer (so the server has accepted it).
fn answered_connection(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(
        ask_health(&mut stream),
        "an accepted connection is answered"
    );
    stream
}

/// Sends `GET /healthz` on `stream`: true when an answer starts within its read timeout.
fn ask_health(stream: &mut TcpStream) -> bool {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut buffer = [0u8; 512];
    matches!(stream.read(&mut buffer), Ok(n) if n > 0 && buffer.starts_with(b"HTTP/1.1 200"))
}

pub fn the_open_file_limit_is_raised_and_connections_are_capped(database: &Database) {
    // Started with a soft limit of 256, as many systems start services.
    let server = Server::start_under(
        database,
        &["prlimit", "--nofile=256:"],
        &[],
        &["--workers", "1", "--max-connections", "2"],
    );
    let (soft, hard) = open_file_limits(server.pid());
    assert_ne!(hard, "256", "the test needs a hard limit above 256");
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    let address = server.base.trim_start_matches("http://").to_owned();
    let first = answered_connection(&address);
    let _second = answered_connection(&address);
    let mut third = TcpStream::connect(&address).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    assert!(
        !ask_health(&mut third),
        "a third connection waits while two are open"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 512];
    let read = third.read(&mut buffer).unwrap();
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "answered once a slot is free"
    );
}
