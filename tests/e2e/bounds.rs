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

/// The process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `methods` to `path`, pipelined on one connection per 100, and reads every answer.
fn send_methods(server: &Server, methods: &[String], path: &str) {
    let address = server.base.trim_start_matches("http://").to_owned();
    for batch in methods.chunks(100) {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut requests = String::new();
        for (i, method) in batch.iter().enumerate() {
            let close = if i + 1 == batch.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            requests.push_str(&format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\n{close}\r\n"
            ));
        }
        stream.write_all(requests.as_bytes()).unwrap();
        let mut answers = String::new();
        let _ = stream.read_to_string(&mut answers);
        assert!(answers.starts_with("HTTP/1.1 "), "{answers}");
    }
}

/// The series of `sip_trunks_http_requests_total` in a scrape, and the sum of those counting
/// the method `other`.
fn request_series(server: &Server) -> (Vec<String>, u64) {
    let url = server.metrics_url().expect("a metrics listener");
    let text = ureq::get(&url).call().unwrap().into_string().unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter(|line| line.starts_with("sip_trunks_http_requests_total{"))
        .map(|line| line.rsplit_once(' ').unwrap())
        .collect();
    let others = lines
        .iter()
        .filter(|(series, _)| series.contains(r#"method="other""#))
        .map(|(_, count)| count.parse::<u64>().unwrap())
        .sum();
    (
        lines
            .iter()
            .map(|(series, _)| (*series).to_owned())
            .collect(),
        others,
    )
}

pub fn strangers_methods_and_paths_leave_the_metrics_and_the_log_bounded(database: &Database) {
    let server = Server::start(database);
    let random_method = |seed: u64| -> String {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..40)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'A' + u8::try_from((x >> 33) % 26).unwrap())
            })
            .collect()
    };
    // Warm up: the series of `other` exist, the allocator has its arenas.
    let warm: Vec<String> = (0..1_000).map(random_method).collect();
    send_methods(&server, &warm, "/api/user/phone-numbers/sip-trunks");
    send_methods(&server, &warm, "/nowhere");
    let series_before = request_series(&server);
    let rss_before = rss_kib(server.pid());

    let methods: Vec<String> = (1_000..11_000).map(random_method).collect();
    send_methods(
        &server,
        &methods[..5_000],
        "/api/user/phone-numbers/sip-trunks",
    );
    send_methods(&server, &methods[5_000..], "/nowhere");
    let series_after = request_series(&server);
    let rss_after = rss_kib(server.pid());

    assert_eq!(series_after.0, series_before.0, "no new series");
    assert_eq!(
        series_after.1,
        series_before.1 + 10_000,
        "each counted as other"
    );
    assert!(
        rss_after <= rss_before + 5 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // A token sent as a path segment never reaches the log, whatever the route.
    let secret = "Zr3kq8XbT2mVw9LpQe4sNc7YhJu6GdFaR1oKx5Ei";
    for path in [
        format!("/api/user/1|{secret}"),
        format!("/api/user/phone-numbers/sip-trunks/1%7C{secret}"),
    ] {
        let (status, _) = server.call("GET", &path, None, None);
        assert!(status == 404 || status == 401, "{path}: {status}");
    }
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    assert!(!log.contains(&secret[..12]), "the token is in the log");
    assert!(
        !log.contains(&methods[0]),
        "a stranger's method is in the log"
    );
    assert!(
        log.contains("other /nowhere 404"),
        "the request lines say other"
    );
}
