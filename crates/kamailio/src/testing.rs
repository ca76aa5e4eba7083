//! A private Kamailio on loopback for tests, and sipp to talk to it (feature
//! `test-support`). The edge runs `deploy/kamailio/kamailio.cfg` with its own `-P`, run
//! directory and ports, in the foreground of its own process group; it is stopped by that
//! group whatever happens (drop). Nothing here is used by the service.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The configuration the project ships.
pub const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/kamailio/kamailio.cfg"
);

/// The sipp scenarios the tests play.
pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sipp");

/// True when `kamailio` and `sipp` are installed (`.ci/run` installs them).
pub fn tools_present() -> bool {
    ["kamailio", "sipp"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// Where the edge's tables live.
pub enum EdgeStore {
    /// A SQLite file in the edge's directory.
    Sqlite,
    /// A database of its own on the PostgreSQL server of this URL (`TEST_DATABASE_URL`),
    /// created for the test and dropped after it.
    Postgres(String),
}

/// A running private Kamailio.
pub struct Edge {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The UDP port SIP arrives on, on 127.0.0.1 (and on `[::1]` when `ipv6`).
    pub sip_port: u16,
    /// The TCP port of JSON-RPC over HTTP.
    pub rpc_port: u16,
    /// The database URL for the adapter (`KAMAILIO_DB_URL`).
    pub database_url: String,
    /// Whether the edge listens on `[::1]` too.
    pub ipv6: bool,
    kamailio_db_url: String,
    platform_uri: String,
    platform_source: String,
    rpc_secret: crate::EdgeSecret,
    platform_secret: crate::EdgeSecret,
    dropped_database: Option<(String, String)>,
    started: bool,
    run_as: Option<(String, String)>,
}

impl Edge {
    /// Creates the database and its tables (the adapter's migrations, as the service runs
    /// them), and picks the ports; [`Edge::start`] starts Kamailio.
    pub fn prepare(
        store: EdgeStore,
        platform_uri: &str,
        platform_source: &str,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (database_url, kamailio_db_url, dropped_database) = match store {
            EdgeStore::Sqlite => {
                let path = dir.path().join("edge.db");
                let path = path.display().to_string();
                (
                    format!("sqlite://{path}"),
                    format!("sqlite:///{path}"),
                    None,
                )
            }
            EdgeStore::Postgres(url) => {
                let (server, _) = url
                    .rsplit_once('/')
                    .ok_or_else(|| format!("no database name in {url}"))?;
                let name = format!("kam_{}_{}", std::process::id(), next_number());
                let mut admin = PgConnection::establish(&url).map_err(|e| e.to_string())?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                    .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
                    .map_err(|e| e.to_string())?;
                let edge_url = format!("{server}/{name}");
                (edge_url.clone(), edge_url, Some((url, name)))
            }
        };
        let rpc_port = free_tcp_port()?;
        crate::Kamailio::open(crate::KamailioSettings::new(
            &database_url,
            format!("http://127.0.0.1:{rpc_port}/RPC"),
        ))?;
        Ok(Self {
            child: None,
            dir,
            sip_port: free_udp_port()?,
            rpc_port,
            database_url,
            kamailio_db_url,
            ipv6: UdpSocket::bind("[::1]:0").is_ok(),
            platform_uri: platform_uri.to_owned(),
            platform_source: platform_source.to_owned(),
            rpc_secret: random_secret(),
            platform_secret: random_secret(),
            dropped_database,
            started: false,
            run_as: None,
        })
    }

    /// Makes Kamailio run as `user` and `group` (`-u`, `-g`), as Debian's package runs it,
    /// instead of the test's user (root only). The edge's directory is given to `group`,
    /// setgid, as docs/kamailio.md tells operators to do; the database file is left as it is
    /// (the service shares it, with `KAMAILIO_DB_GROUP`).
    pub fn run_as(&mut self, user: &str, group: &str, gid: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir.path();
        std::os::unix::fs::chown(dir, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2770)))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        self.run_as = Some((user.to_owned(), group.to_owned()));
        Ok(())
    }

    /// The adapter's `KAMAILIO_RPC_URL`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/RPC", self.rpc_port)
    }

    /// The adapter's `KAMAILIO_RPC_SECRET` (the edge knows its SHA-256).
    pub fn rpc_secret(&self) -> &str {
        self.rpc_secret.expose_secret()
    }

    /// What the platform sends in `X-Sip-Trunk-Secret` (the edge knows its SHA-256).
    pub fn platform_secret(&self) -> &str {
        self.platform_secret.expose_secret()
    }

    /// The header line of an outbound INVITE that proves it comes from the platform.
    pub fn platform_secret_header(&self) -> String {
        format!("X-Sip-Trunk-Secret: {}", self.platform_secret())
    }

    /// The adapter's settings for this edge.
    pub fn adapter_settings(&self) -> crate::KamailioSettings {
        crate::KamailioSettings::new(&self.database_url, self.rpc_url())
            .with_rpc_secret(self.rpc_secret.clone())
    }

    /// The edge's directory (its log, sipp's files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts Kamailio and waits until it answers OPTIONS (10 s at most). The first start
    /// tries other ports when Kamailio could not have its own (another process took a port
    /// between the choice and the bind); a restart keeps them, since the service knows them.
    pub fn start(&mut self) -> Result<(), String> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.start_once() {
                Ok(()) => {
                    self.started = true;
                    return Ok(());
                }
                Err(error) if self.started || tries >= 3 => return Err(error),
                Err(_) => {
                    self.sip_port = free_udp_port()?;
                    self.rpc_port = free_tcp_port()?;
                }
            }
        }
    }

    fn start_once(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let dir = self.dir.path();
        let log = std::fs::File::create(dir.join("kamailio.log")).map_err(|e| e.to_string())?;
        // The database URL as production gives it: in a 0600 file Kamailio finds in its
        // working directory, never on its command line.
        write_private(
            &dir.join("sip-trunks-db.cfg"),
            &format!("#!trydef DBURL \"{}\"\n", self.kamailio_db_url),
        )?;
        let mut command = Command::new("kamailio");
        command
            .current_dir(dir)
            .args(["-f", CONFIG, "-DD", "-E", "-e"])
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-Y")
            .arg(dir)
            .arg("-w")
            .arg(dir)
            .args(["-l", &format!("udp:127.0.0.1:{}", self.sip_port)])
            .args(["-l", &format!("tcp:127.0.0.1:{}", self.rpc_port)])
            .args(["-A", &format!("PLATFORM_URI=\"{}\"", self.platform_uri)])
            .args([
                "-A",
                &format!("PLATFORM_SOURCE=\"{}\"", self.platform_source),
            ])
            .args(["-A", &format!("RPC_PORT={}", self.rpc_port)])
            .args([
                "-A",
                &format!("RPC_SECRET_SHA256=\"{}\"", self.rpc_secret.sha256_hex()),
            ])
            .args([
                "-A",
                &format!(
                    "PLATFORM_SECRET_SHA256=\"{}\"",
                    self.platform_secret.sha256_hex()
                ),
            ]);
        if self.dropped_database.is_some() {
            command.args(["-A", "WITH_POSTGRES"]);
        }
        if let Some((user, group)) = &self.run_as {
            command.args(["-u", user, "-g", group]);
        }
        if self.ipv6 {
            command.args(["-l", &format!("udp:[::1]:{}", self.sip_port)]);
        }
        use std::os::unix::process::CommandExt;
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        self.child = Some(command.spawn().map_err(|e| format!("kamailio: {e}"))?);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers_options() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("kamailio exited ({status}):\n{}", self.log()));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "kamailio did not answer OPTIONS in 10 s:\n{}",
            self.log()
        ))
    }

    /// The running Kamailio's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The running Kamailio's command line, as every local user can read it (`ps`).
    pub fn command_line(&self) -> Option<String> {
        let pid = self.child.as_ref()?.id();
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        Some(String::from_utf8_lossy(&raw).replace('\0', " "))
    }

    /// Stops Kamailio (SIGTERM to its process group, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
    }

    /// True when the edge answers an OPTIONS to itself with 200.
    pub fn answers_options(&self) -> bool {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_millis(300)));
        let Ok(local) = socket.local_addr() else {
            return false;
        };
        let request = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe{n}\r\nFrom: <sip:probe@{local}>;tag=probe\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe-{n}@{local}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            port = self.sip_port,
            n = next_number(),
        );
        if socket
            .send_to(request.as_bytes(), ("127.0.0.1", self.sip_port))
            .is_err()
        {
            return false;
        }
        let mut buffer = [0_u8; 2048];
        matches!(socket.recv(&mut buffer), Ok(n) if buffer[..n].starts_with(b"SIP/2.0 200"))
    }

    /// Runs `sql` on the edge's database behind the service's back (drift, for tests).
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let database = crate::db::EdgeDatabase::parse(&self.database_url)?;
        let edge = crate::db::Edge::open(database, None)?;
        edge.transaction(|conn| conn.batch_execute(sql))
            .map_err(|failure| format!("{failure:?}"))
    }

    /// The ids of every leg row in the edge's database, sorted.
    pub fn leg_ids(&self) -> Result<Vec<String>, String> {
        let database = crate::db::EdgeDatabase::parse(&self.database_url)?;
        let edge = crate::db::Edge::open(database, None)?;
        let rows = edge
            .transaction(crate::db::all_legs)
            .map_err(|failure| format!("{failure:?}"))?;
        let mut ids: Vec<String> = rows.into_iter().map(|row| row.id).collect();
        ids.sort();
        Ok(ids)
    }

    /// What Kamailio wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
        if let Some((url, name)) = self.dropped_database.take() {
            if let Ok(mut admin) = PgConnection::establish(&url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Writes `text` to a new file at `path` that only its owner can read (0600 from the start).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One sipp run's outcome.
#[derive(Debug)]
pub struct SippRun {
    /// sipp exited 0: every call went as the scenario says.
    pub passed: bool,
    /// Its error log, when it failed.
    pub errors: String,
}

/// Plays scenario `name` (`call`, `refused`, or the path of a scenario file) once from `source` (an address of 127.0.0.0/8
/// or `::1`) to `target` (`127.0.0.1:5060`, `[::1]:5060`), calling `number`; `extra` is
/// passed to sipp as it is (`-au`, `-ap`, `-key extra "X-Sip-Trunk: 5"`, `-key extra2
/// "X-Sip-Trunk-Secret: ..."`).
pub fn sipp_call(
    dir: &Path,
    name: &str,
    source: &str,
    target: &str,
    number: &str,
    extra: &[&str],
) -> SippRun {
    let scenario = if name.contains('/') {
        name.to_owned()
    } else {
        format!("{SCENARIOS}/{name}.xml")
    };
    let mut args: Vec<String> = vec![
        "-sf".into(),
        scenario,
        "-s".into(),
        number.into(),
        "-i".into(),
        source.into(),
        "-p".into(),
        "0".into(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "8".into(),
        "-timeout_error".into(),
        "-nostdin".into(),
        "-trace_err".into(),
    ];
    for (key, filler) in [("extra", "X-Test: 1"), ("extra2", "X-Test-2: 1")] {
        if !extra.windows(2).any(|pair| pair == ["-key", key]) {
            args.extend(["-key".into(), key.into(), filler.into()]);
        }
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(target.into());
    let output = Command::new("sipp")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) => {
            let passed = output.status.success();
            let errors = if passed {
                String::new()
            } else {
                newest_error_log(dir)
                    .unwrap_or_else(|| String::from_utf8_lossy(&output.stderr).into())
            };
            SippRun { passed, errors }
        }
        Err(error) => SippRun {
            passed: false,
            errors: format!("sipp: {error}"),
        },
    }
}

fn newest_error_log(dir: &Path) -> Option<String> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with("_errors.log"))
        .collect();
    logs.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    let path = logs.pop()?;
    let text = std::fs::read_to_string(&path).ok();
    let _ = std::fs::remove_file(&path);
    text
}

/// A sipp server (the platform, a carrier) running until dropped.
pub struct SippServer {
    child: Child,
    /// Where it listens.
    pub address: String,
    /// Its port.
    pub port: u16,
    log: PathBuf,
}

impl SippServer {
    /// Starts scenario `name` (`answer`, `carrier`) listening on `address:port`; `extra` is
    /// passed to sipp (`-set user bob -set password …`). Its `<log>` lines go to a file
    /// read by [`SippServer::log`].
    pub fn start(
        dir: &Path,
        name: &str,
        address: &str,
        port: u16,
        extra: &[&str],
    ) -> Result<Self, String> {
        let log = dir.join(format!("{name}-{address}-{port}.log"));
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(format!("{SCENARIOS}/{name}.xml"))
            .args([
                "-i",
                address,
                "-p",
                &port.to_string(),
                "-nostdin",
                "-trace_logs",
            ])
            .arg("-log_file")
            .arg(&log)
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sipp: {e}"))?;
        // sipp binds before it reads the scenario's first message; give it that moment (on
        // a machine busy compiling, sipp took over 3 s to bind). The kernel's socket table is
        // read rather than trying to bind the port: a test's own bind, however brief, could
        // take the port at the instant sipp asks for it, and sipp would exit.
        let mut server = Self {
            child,
            address: address.to_owned(),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !udp_bound(address, port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("sipp {name} on {address}:{port} exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The `<log>` lines written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a UDP socket is bound to `address:port`, as `/proc/net/udp` and `udp6` list them
/// (local address in the kernel's hex: each 32-bit word in host byte order).
fn udp_bound(address: &str, port: u16) -> bool {
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let (table, hex) = match ip {
        std::net::IpAddr::V4(v4) => (
            "/proc/net/udp",
            format!("{:08X}", u32::from_ne_bytes(v4.octets())),
        ),
        std::net::IpAddr::V6(v6) => (
            "/proc/net/udp6",
            v6.octets()
                .chunks(4)
                .map(|word| {
                    format!(
                        "{:08X}",
                        u32::from_ne_bytes([word[0], word[1], word[2], word[3]])
                    )
                })
                .collect(),
        ),
    };
    let wanted = format!("{hex}:{port:04X}");
    std::fs::read_to_string(table).is_ok_and(|text| {
        text.lines()
            .filter_map(|line| line.split_whitespace().nth(1))
            .any(|local| local == wanted)
    })
}

/// A loopback address of its own for a carrier of this test process (127.0.0.10 to
/// 127.0.0.250), whose port 5060 is free: a trunk's `sip_address` has no port.
pub fn carrier_address() -> Result<String, String> {
    for _ in 0..240 {
        let candidate = format!("127.0.0.{}", 10 + next_number() % 240);
        if UdpSocket::bind((candidate.as_str(), 5060)).is_ok() {
            return Ok(candidate);
        }
    }
    Err("no loopback address with port 5060 free".into())
}

/// 32 random bytes as hex: a secret of this edge's.
fn random_secret() -> crate::EdgeSecret {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    crate::EdgeSecret::new(hex::encode(bytes))
}

fn next_number() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    // Spread over the process id so that two test processes at once rarely meet.
    let base = (std::process::id() % 240) as u8;
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A UDP port free on 127.0.0.1 (and on `[::1]` when it exists) at the time of asking.
pub fn free_udp_port() -> Result<u16, String> {
    for _ in 0..50 {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = socket.local_addr().map_err(|e| e.to_string())?.port();
        if UdpSocket::bind(("::1", port)).is_ok() || UdpSocket::bind("[::1]:0").is_err() {
            return Ok(port);
        }
    }
    Err("no free UDP port".into())
}

/// A TCP port free on 127.0.0.1 at the time of asking.
pub fn free_tcp_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Checks a digest `Authorization` / `Proxy-Authorization` value (RFC 2617 without qop, as
/// the test carrier challenges) against `username` and `password` for `method`: what sipp's
/// `verifyauth` does for `Authorization` only.
pub fn check_digest(
    header: &str,
    method: &str,
    username: &str,
    password: &str,
) -> Result<(), String> {
    let value = header
        .trim()
        .strip_prefix("Digest")
        .ok_or_else(|| format!("not a digest: {header}"))?;
    let field = |name: &str| -> Result<String, String> {
        value
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, raw)| raw.trim().trim_matches('"').to_owned())
            .ok_or_else(|| format!("no {name} in {header}"))
    };
    if field("username")? != username {
        return Err(format!(
            "username {} instead of {username}",
            field("username")?
        ));
    }
    let md5 = |text: String| {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(text.as_bytes()))
    };
    let ha1 = crate::digest_ha1(username, &field("realm")?, password);
    let ha2 = md5(format!("{method}:{}", field("uri")?));
    let expected = md5(format!("{ha1}:{}:{ha2}", field("nonce")?));
    if field("response")? == expected {
        Ok(())
    } else {
        Err(format!(
            "the response is not the digest of the password: {header}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_udp_socket_is_seen_in_the_kernels_table_and_gone_once_closed() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        assert!(udp_bound("127.0.0.1", port));
        assert!(!udp_bound("127.0.0.2", port));
        drop(socket);
        assert!(!udp_bound("127.0.0.1", port));
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            assert!(udp_bound("::1", v6.local_addr().unwrap().port()));
        }
    }

    #[test]
    fn the_digest_check_accepts_the_rfc_example_and_refuses_another_password() {
        // RFC 2617's example without qop is not given, so this one is computed by hand:
        // HA1 = md5("bob:carrier.test:pw"), HA2 = md5("INVITE:sip:1@h"), response over "n".
        let ha1 = crate::digest_ha1("bob", "carrier.test", "pw");
        let md5 = |text: String| {
            use md5::{Digest, Md5};
            hex::encode(Md5::digest(text.as_bytes()))
        };
        let response = md5(format!("{ha1}:n:{}", md5("INVITE:sip:1@h".into())));
        let header = format!(
            "Digest username=\"bob\", realm=\"carrier.test\", nonce=\"n\", uri=\"sip:1@h\", response=\"{response}\", algorithm=MD5"
        );
        assert_eq!(check_digest(&header, "INVITE", "bob", "pw"), Ok(()));
        assert!(check_digest(&header, "INVITE", "bob", "other").is_err());
        assert!(check_digest(&header, "INVITE", "alice", "pw").is_err());
    }
}
