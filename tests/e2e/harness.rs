//! Starts the real `sip-trunks` binary on a free port, captures its log, and drives it with
//! a plain HTTP client. Each test gets its own SQLite directory or PostgreSQL schema.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_sip-trunks");

/// Where a test's data lives; dropped (directory removed, schema dropped) after the test.
pub struct Database {
    /// The service's `DATABASE_URL`.
    pub url: String,
    /// Extra environment (the encryption key on PostgreSQL).
    pub env: Vec<(String, String)>,
    /// The working directory of the service (the SQLite file and key file are there).
    pub dir: tempfile::TempDir,
    drop_schema: Option<(String, String)>,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = &self.drop_schema {
            let _ = Command::new("psql")
                .args([
                    admin_url.as_str(),
                    "-q",
                    "-c",
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A SQLite database in a fresh directory, with the default key file.
pub fn sqlite() -> Option<Database> {
    let dir = tempfile::tempdir().unwrap();
    Some(Database {
        url: "sqlite://trunks.db".into(),
        env: Vec::new(),
        dir,
        drop_schema: None,
    })
}

/// A fresh schema in `TEST_DATABASE_URL`, or `None` when it is not set.
pub fn postgres() -> Option<Database> {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL end-to-end test skipped");
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "e2e_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let created = Command::new("psql")
        .args([
            admin_url.as_str(),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE SCHEMA {schema}"),
        ])
        .status()
        .expect("psql runs");
    assert!(
        created.success(),
        "cannot create a schema in TEST_DATABASE_URL"
    );
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let (_, key) = store::EncryptionKey::generate();
    Some(Database {
        url: format!("{admin_url}{separator}options=-csearch_path%3D{schema}"),
        env: vec![("SIP_TRUNKS_ENCRYPTION_KEY".into(), key)],
        dir: tempfile::tempdir().unwrap(),
        drop_schema: Some((admin_url, schema)),
    })
}

fn command(database: &Database) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(database.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &database.url)
        .env("RUST_LOG", "info")
        // Write bursts from one key would trip the per-key limit; its own tests are in-process.
        .env("RATE_LIMIT_PER_MINUTE", "0");
    for (name, value) in &database.env {
        command.env(name, value);
    }
    command
}

/// Runs a CLI command; gives its stdout, panicking with its stderr on failure.
pub fn cli(database: &Database, args: &[&str]) -> String {
    let output = command(database).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Creates a user with the CLI and gives the token (the last line of stdout).
pub fn create_user(database: &Database, email: &str) -> String {
    let out = cli(
        database,
        &["users", "create", "--email", email, "--name", "E2E"],
    );
    out.lines().last().unwrap().to_owned()
}

/// A running service.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the service on a free port and waits until it listens.
    pub fn start(database: &Database) -> Server {
        let mut child = command(database)
            .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split("listening on ").nth(1) {
                    let _ = address_tx.send(address.trim().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("the service did not start:\n{}", log.lock().unwrap());
            }
        };
        let server = Server { child, base, log };
        server.wait_until_healthy();
        server
    }

    /// Polls `/healthz`: once it answers, workers and signal handlers are in place.
    fn wait_until_healthy(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let answer = ureq::get(&format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(1))
                .call();
            if answer.is_ok_and(|response| response.status() == 200) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the service never answered /healthz:\n{}",
            self.log.lock().unwrap()
        );
    }

    /// Sends a request; gives status and body text.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String) {
        self.try_call(method, path, token, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    /// Sends a request; `None` when no answer came (connection refused or cut).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(u16, String)> {
        let mut request =
            ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match body {
            Some(body) => request.send_json(body.clone()),
            None => request.call(),
        };
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(_)) => return None,
        };
        let status = response.status();
        response.into_string().ok().map(|body| (status, body))
    }

    /// Sends SIGKILL: the process dies at once, mid-request.
    pub fn kill(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
    }

    /// Sends SIGTERM and waits: true when the service exited cleanly.
    pub fn stop(mut self) -> (bool, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status.success(), log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a file in the service's working directory.
pub fn file_in(database: &Database, name: &str) -> PathBuf {
    Path::new(database.dir.path()).join(name)
}
