//! Every command exits with the status it means, every time: one-shot commands and a
//! `serve` that fails to bind, run many times against PostgreSQL over TLS. (They used to die
//! by a signal now and then: a pool thread inside libpq's TLS handshake raced OpenSSL's
//! clean-up at exit.)

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::thread;

use crate::harness::{cli, run_cli, Database};

/// Runs of each command.
const RUNS: usize = 50;

/// Runs `args` (built per run) `RUNS` times; panics unless every run exited with `expected`.
fn every_run_exits_with(
    database: &Database,
    expected: i32,
    args: impl Fn(usize) -> Vec<String>,
) -> Vec<String> {
    (0..RUNS)
        .map(|run| {
            let args = args(run);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = run_cli(database, &args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(expected),
                "run {run} of {args:?} ended with {:?} (signal {:?}):\n{stderr}",
                output.status,
                output.status.signal()
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        })
        .collect()
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

pub fn every_command_exits_with_its_status_every_time_over_tls(database: &Database) {
    assert!(
        store::testing::negotiates_tls(&database.url),
        "the test database must negotiate TLS for this test to mean anything"
    );
    cli(database, &["migrate"]);
    cli(
        database,
        &[
            "users",
            "create",
            "--email",
            "keys@example.com",
            "--name",
            "K",
        ],
    );
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    thread::scope(|scope| {
        scope.spawn(|| every_run_exits_with(database, 0, |_| owned(&["migrate"])));
        scope.spawn(|| every_run_exits_with(database, 0, |_| owned(&["reencrypt"])));
        scope.spawn(|| {
            every_run_exits_with(database, 0, |run| {
                let email = format!("user{run}@example.com");
                owned(&["users", "create", "--email", &email, "--name", "U"])
            })
        });
        scope.spawn(|| {
            let created = every_run_exits_with(database, 0, |_| {
                owned(&[
                    "api-keys",
                    "create",
                    "--email",
                    "keys@example.com",
                    "--name",
                    "k",
                ])
            });
            let ids: Vec<String> = created
                .iter()
                .map(|out| {
                    let token = out.lines().last().unwrap();
                    token.split('|').next().unwrap().to_owned()
                })
                .collect();
            every_run_exits_with(database, 0, |run| {
                owned(&["api-keys", "revoke", "--id", &ids[run]])
            });
        });
        scope.spawn(|| {
            every_run_exits_with(database, 1, |_| {
                owned(&["api-keys", "revoke", "--id", "999999999"])
            })
        });
        scope.spawn(|| {
            every_run_exits_with(database, 1, |_| {
                owned(&["serve", "--bind", &taken, "--workers", "1"])
            })
        });
    });
}
