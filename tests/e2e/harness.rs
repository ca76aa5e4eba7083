//! Starts the real `sip-trunks` binary on a free port (`--bind 127.0.0.1:0`; the ports are
//! read from its `--port-file`, never from its log), captures its log, and drives it with a
//! plain HTTP client. Each test gets its own SQLite directory or PostgreSQL schema.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use store::testing::TempPgSchema;

const BINARY: &str = env!("CARGO_BIN_EXE_sip-trunks");

/// Where a test's data lives; dropped (directory removed, schema dropped) after the test.
pub struct Database {
    /// The service's `DATABASE_URL`.
    pub url: String,
    /// Extra environment (the encryption key on PostgreSQL).
    pub env: Vec<(String, String)>,
    /// The working directory of the service (the SQLite file and key file are there).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL schema, dropped with this value.
    _schema: Option<TempPgSchema>,
}

/// A SQLite database in a fresh directory, with the default key file.
pub fn sqlite() -> Option<Database> {
    let dir = tempfile::tempdir().unwrap();
    Some(Database {
        url: "sqlite://trunks.db".into(),
        env: Vec::new(),
        dir,
        _schema: None,
    })
}

/// A fresh schema in `TEST_DATABASE_URL`, or `None` when it is not set.
pub fn postgres() -> Option<Database> {
    postgres_with("")
}

/// [`postgres`] with TLS required (`sslmode=require`), or `None` when it is not set.
pub fn postgres_tls() -> Option<Database> {
    postgres_with("&sslmode=require")
}

/// [`postgres`], its URL ending with `extra` (e.g. `&sslmode=require`).
pub fn postgres_with(extra: &str) -> Option<Database> {
    let schema = TempPgSchema::from_env("e2e")?;
    let (_, key) = store::EncryptionKey::generate();
    Some(Database {
        url: format!("{}{extra}", schema.url()),
        env: vec![("SIP_TRUNKS_ENCRYPTION_KEY".into(), key)],
        dir: tempfile::tempdir().unwrap(),
        _schema: Some(schema),
    })
}

fn command(database: &Database) -> Command {
    command_under(database, &[])
}

/// The binary's command, run through `wrapper` (e.g. `prlimit --nofile=256:`) when given.
fn command_under(database: &Database, wrapper: &[&str]) -> Command {
    let mut command = match wrapper.split_first() {
        None => Command::new(BINARY),
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(BINARY);
            command
        }
    };
    command
        .current_dir(database.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &database.url)
        // Tests run many servers at once: each gets a metrics port of its own.
        .env("METRICS_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        // Write bursts from one key would trip the per-key limit; its own tests are in-process.
        .env("RATE_LIMIT_PER_MINUTE", "0")
        // The tests' carriers are example names: probing them would send DNS queries off
        // the machine. A test of the prober turns it on for addresses on loopback.
        .env("CARRIER_PROBE_EVERY_SECS", "0");
    for (name, value) in &database.env {
        command.env(name, value);
    }
    command
}

/// Runs a CLI command, whatever its outcome.
pub fn run_cli(database: &Database, args: &[&str]) -> std::process::Output {
    run_cli_with(database, &[], args)
}

/// [`run_cli`] with `env` set on top of the database's environment (`""` removes a variable).
/// A command still running after 30 s is killed, so a `serve` that wrongly starts ends the
/// test instead of hanging it.
pub fn run_cli_with(
    database: &Database,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut command = command(database);
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs a CLI command; gives its stdout, panicking with its stderr on failure.
pub fn cli(database: &Database, args: &[&str]) -> String {
    let output = run_cli(database, args);
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
    metrics: Arc<Mutex<Option<String>>>,
}

impl Server {
    /// Starts the service on a free port and waits until it listens.
    pub fn start(database: &Database) -> Server {
        Self::start_with(database, &[])
    }

    /// [`Server::start`] with `env` set on top of the database's environment (`""` removes a
    /// variable).
    pub fn start_with(database: &Database, env: &[(&str, &str)]) -> Server {
        Self::start_with_args(database, env, &["--workers", "2"])
    }

    /// [`Server::start_with`], `serve` given `args` too.
    pub fn start_with_args(database: &Database, env: &[(&str, &str)], args: &[&str]) -> Server {
        Self::start_under(database, &[], env, args)
    }

    /// [`Server::start_with_args`], run through `wrapper` (see [`command_under`]).
    pub fn start_under(
        database: &Database,
        wrapper: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let mut command = command_under(database, wrapper);
        for (name, value) in env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let port_file = database.dir.path().join(format!(
            "ports-{}",
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The service writes the port file once it listens (whole, by a rename).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text;
            }
            if std::time::Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                thread::sleep(Duration::from_millis(100));
                panic!("the service did not start:\n{}", log.lock().unwrap());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let address = |name: &str| {
            ports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        let base = format!(
            "http://{}",
            address("api").expect("the port file names the API")
        );
        let metrics = Arc::new(Mutex::new(
            address("metrics").map(|metrics| format!("http://{metrics}/metrics")),
        ));
        let server = Server {
            child,
            base,
            log,
            metrics,
        };
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

    /// Sends a request with `X-Request-Id: id`; gives status, body and the answer's
    /// `X-Request-Id`.
    pub fn call_as(
        &self,
        id: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String, Option<String>) {
        self.exchange(id, method, path, token, body)
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
        self.exchange(None, method, path, token, body)
            .map(|(status, text, _)| (status, text))
    }

    fn exchange(
        &self,
        id: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(u16, String, Option<String>)> {
        let mut request =
            ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        if let Some(id) = id {
            request = request.set("X-Request-Id", id);
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
        let echoed = response.header("x-request-id").map(str::to_owned);
        response
            .into_string()
            .ok()
            .map(|text| (status, text, echoed))
    }

    /// `http://127.0.0.1:PORT/metrics`, when the service serves its metrics.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.lock().unwrap().clone()
    }

    /// What the service wrote to stderr so far.
    pub fn log_so_far(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// What `/readyz` says of cache coherence on this database: `live` on PostgreSQL (the
/// change feed listens before the service answers), `local` on SQLite.
pub fn coherence(database: &Database) -> &'static str {
    if database.url.starts_with("postgres") {
        "live"
    } else {
        "local"
    }
}

/// The path of a file in the service's working directory.
pub fn file_in(database: &Database, name: &str) -> PathBuf {
    Path::new(database.dir.path()).join(name)
}
