//! Faults end to end: racing identical creates, and a SIGKILL in the middle of a write burst.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{create_user, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";

fn trunk(phone: &str) -> Value {
    json!({
        "sip_trunk_type": "number", "phone_number": phone, "sip_username": "race_user",
        "sip_password": "Race-Pass-1", "sip_address": "sip.race.example",
        "sip_calling_format": "+e164", "inbound_authorization_type": "auth", "country_code": "US"
    })
}

pub fn thirty_two_identical_creates_give_one_201_and_the_rest_409(database: &Database) {
    let token = create_user(database, "race@example.com");
    let server = Arc::new(Server::start(database));
    let barrier = Arc::new(Barrier::new(32));
    let statuses: Vec<u16> = (0..32)
        .map(|_| {
            let (server, barrier, token) = (server.clone(), barrier.clone(), token.clone());
            thread::spawn(move || {
                barrier.wait();
                server
                    .call("POST", TRUNKS, Some(&token), Some(&trunk("+14155551234")))
                    .0
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|racer| racer.join().unwrap())
        .collect();
    let created = statuses.iter().filter(|&&s| s == 201).count();
    let conflicts = statuses.iter().filter(|&&s| s == 409).count();
    assert_eq!((created, conflicts), (1, 31), "{statuses:?}");
    let (_, list) = server.call("GET", TRUNKS, Some(&token), None);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

pub fn every_acknowledged_write_survives_a_sigkill(database: &Database) {
    let token = create_user(database, "kill@example.com");
    let server = Arc::new(Server::start(database));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (server, token, acknowledged, stop) = (
                server.clone(),
                token.clone(),
                acknowledged.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let phone = format!("+1{}{n:09}", 2 + writer);
                    // A request cut by the kill is neither acknowledged nor counted.
                    if let Some((201, body)) =
                        server.try_call("POST", TRUNKS, Some(&token), Some(&trunk(&phone)))
                    {
                        let body: Value = serde_json::from_str(&body).unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .insert(body["data"]["id"].as_i64().unwrap());
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the burst wrote too little to mean anything: {}",
        acknowledged.len()
    );

    let restarted = Server::start(database);
    let (status, list) = restarted.call("GET", TRUNKS, Some(&token), None);
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let stored: BTreeSet<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after SIGKILL: {lost:?}"
    );
}
