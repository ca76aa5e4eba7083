//! A stand-in for LiveKit's SIP service, for tests only: an HTTP server on `127.0.0.1:0` that
//! speaks LiveKit's wire format (Twirp over HTTP, `application/protobuf` bodies of the
//! `livekit-protocol` types, at `/twirp/livekit.SIP/<Method>`), checks the request's token
//! like LiveKit (an HS256 JWT signed with the API secret; a bad signature is a plain-text
//! 401, a token without the `sip.admin` grant a Twirp `permission_denied`), keeps trunks with
//! `ST_` ids, and applies the validation the registry can run into: two inbound trunks with
//! the same number conflict (`invalid_argument`), an outbound trunk needs numbers and an
//! address, deleting an unknown id succeeds. It lists as LiveKit does: a page of the trunks
//! whose ids sort after `page.after_id` (at most `page.limit`, in id order) when a page is
//! asked for, everything otherwise, then the `numbers` filter.
//!
//! A test can make the next calls fail ([`Fault`]) and read a journal of every call.
//!
//! Plain threads and `std::net`, no async runtime: the server must keep answering while the
//! code under test blocks or runs its own runtime, and a fault such as "close the connection
//! without an answer" needs the socket itself.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use livekit_protocol as proto;
use livekit_token::TokenVerifier;
use prost::Message;

/// The API key the stand-in accepts.
pub const API_KEY: &str = "APIstandin";

/// Twirp's path prefix for LiveKit's SIP service.
const PREFIX: &str = "/twirp/livekit.SIP/";

/// What the next matching calls do instead of being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and Twirp error code (`unavailable`, `internal`,
    /// `resource_exhausted`, ...), doing nothing.
    Status(u16, &'static str),
    /// Wait this long before serving the call (past the client's timeout, the client has
    /// given up; the call still happens).
    Delay(Duration),
    /// Close the connection without an answer, doing nothing.
    Drop,
    /// Serve the call, then close the connection without an answer: the reply is lost.
    LoseReply,
}

/// One call the stand-in received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The Twirp method (`CreateSIPInboundTrunk`, ...).
    pub method: String,
    /// `ok`, `error:<twirp code>`, `unauthorized`, or the fault it met (`fault:<...>`).
    pub outcome: String,
    /// The request path.
    pub path: String,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// The bearer token it carried.
    pub token: String,
    /// The request body as sent.
    pub body: Vec<u8>,
}

struct Pending {
    method: Option<String>,
    left: usize,
    fault: Fault,
}

#[derive(Default)]
struct State {
    inbound: Vec<proto::SipInboundTrunkInfo>,
    outbound: Vec<proto::SipOutboundTrunkInfo>,
    faults: VecDeque<Pending>,
    journal: Vec<Call>,
    /// Answers every list call in full, as a LiveKit older than paging does.
    ignores_paging: bool,
}

impl State {
    /// The fault the next call of `method` meets, if any (counting it down).
    fn take_fault(&mut self, method: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|pending| {
            pending.left > 0 && pending.method.as_deref().is_none_or(|m| m == method)
        })?;
        let pending = &mut self.faults[index];
        pending.left -= 1;
        let fault = pending.fault.clone();
        if pending.left == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }
}

/// A running stand-in; stopped when dropped.
pub struct StandIn {
    address: SocketAddr,
    secret: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StandIn {
    /// Starts a stand-in on a free loopback port with a fresh random API secret.
    ///
    /// # Panics
    /// When no loopback port can be bound (a test cannot run without one).
    #[allow(clippy::expect_used)] // a test fixture: failing to start fails the test
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("the bound address");
        let secret = hex::encode(rand::random::<[u8; 24]>());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (state, stop, secret) = (state.clone(), stop.clone(), secret.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, secret) = (state.clone(), secret.clone());
                    thread::spawn(move || serve_connection(stream, &state, &secret));
                }
            })
        };
        Self {
            address,
            secret,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port>`: what `LIVEKIT_URL` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The API key to sign with ([`API_KEY`]).
    pub fn api_key(&self) -> &str {
        API_KEY
    }

    /// The API secret to sign with.
    pub fn api_secret(&self) -> &str {
        &self.secret
    }

    /// The next `count` calls, of any method, meet `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.push_fault(None, count, fault);
    }

    /// The next `count` calls of `method` meet `fault`.
    pub fn fail_next_on(&self, method: &str, count: usize, fault: Fault) {
        self.push_fault(Some(method.to_owned()), count, fault);
    }

    fn push_fault(&self, method: Option<String>, left: usize, fault: Fault) {
        lock(&self.state).faults.push_back(Pending {
            method,
            left,
            fault,
        });
    }

    /// Forgets the faults not met yet.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Every call so far, in order.
    pub fn journal(&self) -> Vec<Call> {
        lock(&self.state).journal.clone()
    }

    /// The inbound trunks held.
    pub fn inbound(&self) -> Vec<proto::SipInboundTrunkInfo> {
        lock(&self.state).inbound.clone()
    }

    /// The outbound trunks held.
    pub fn outbound(&self) -> Vec<proto::SipOutboundTrunkInfo> {
        lock(&self.state).outbound.clone()
    }

    /// The ids of every trunk held, sorted.
    pub fn trunk_ids(&self) -> Vec<String> {
        let state = lock(&self.state);
        let mut ids: Vec<String> = state
            .inbound
            .iter()
            .map(|t| t.sip_trunk_id.clone())
            .chain(state.outbound.iter().map(|t| t.sip_trunk_id.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// Removes trunk `id` behind the registry's back (someone deleted it in LiveKit's
    /// console); true when it was held.
    pub fn remove(&self, id: &str) -> bool {
        let mut state = lock(&self.state);
        let before = state.inbound.len() + state.outbound.len();
        state.inbound.retain(|t| t.sip_trunk_id != id);
        state.outbound.retain(|t| t.sip_trunk_id != id);
        before != state.inbound.len() + state.outbound.len()
    }

    /// From now on answers every list call in full, ignoring its `page`, as a LiveKit older
    /// than paging does.
    pub fn ignore_paging(&self) {
        lock(&self.state).ignores_paging = true;
    }

    /// Adds an inbound trunk as another system would (no token, no journal entry).
    pub fn insert_inbound(&self, mut trunk: proto::SipInboundTrunkInfo) -> String {
        trunk.sip_trunk_id = new_id();
        let id = trunk.sip_trunk_id.clone();
        lock(&self.state).inbound.push(trunk);
        id
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let suffix: String = (0..12)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("ST_{suffix}")
}

/// A request as read off the wire.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Reads one HTTP/1.1 request; `None` at the end of the connection or on garbage.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let _method = parts.next()?;
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body,
    })
}

/// An answer to write.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn ok(message: &impl Message) -> Self {
        Self {
            status: 200,
            content_type: "application/protobuf",
            body: message.encode_to_vec(),
        }
    }

    fn twirp(status: u16, code: &str, msg: &str) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::json!({ "code": code, "msg": msg })
                .to_string()
                .into_bytes(),
        }
    }

    fn outcome(&self) -> String {
        if self.status == 200 {
            return "ok".into();
        }
        if self.content_type == "text/plain" {
            return "unauthorized".into();
        }
        let code = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|value| value["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("error:{code}")
    }
}

fn write_answer(stream: &mut TcpStream, answer: &Answer) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        answer.status,
        if answer.status == 200 { "OK" } else { "Error" },
        answer.content_type,
        answer.body.len()
    );
    // One write: a head and a body in two segments meet the client's delayed ACK (40 ms).
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&answer.body);
    stream.write_all(&bytes)?;
    stream.flush()
}

fn serve_connection(stream: TcpStream, state: &Mutex<State>, secret: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let method = request
            .path
            .strip_prefix(PREFIX)
            .unwrap_or(&request.path)
            .to_owned();
        let fault = lock(state).take_fault(&method);
        let record = |outcome: String| {
            lock(state).journal.push(Call {
                method: method.clone(),
                outcome,
                path: request.path.clone(),
                content_type: request.header("content-type").unwrap_or("").to_owned(),
                token: bearer(&request).to_owned(),
                body: request.body.clone(),
            })
        };
        match fault {
            Some(Fault::Drop) => {
                record("fault:drop".into());
                return;
            }
            Some(Fault::Status(status, code)) => {
                record(format!("fault:{code}"));
                let answer = Answer::twirp(status, code, "injected by the test");
                if write_answer(&mut writer, &answer).is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::Delay(delay)) => thread::sleep(delay),
            Some(Fault::LoseReply) | None => {}
        }
        let answer = handle(&request, &method, state, secret);
        if fault == Some(Fault::LoseReply) {
            record(format!("fault:lose-reply after {}", answer.outcome()));
            return;
        }
        record(answer.outcome());
        if write_answer(&mut writer, &answer).is_err() {
            return;
        }
    }
}

fn bearer(request: &Request) -> &str {
    request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("")
}

fn handle(request: &Request, method: &str, state: &Mutex<State>, secret: &str) -> Answer {
    let token = bearer(request);
    let claims = match TokenVerifier::with_api_key(API_KEY, secret).verify(token) {
        Ok(claims) => claims,
        Err(error) => {
            return Answer {
                status: 401,
                content_type: "text/plain",
                body: format!("invalid token: {error}\n").into_bytes(),
            }
        }
    };
    if !claims.sip.admin {
        return Answer::twirp(
            403,
            "permission_denied",
            "the token lacks the sip.admin grant",
        );
    }
    if !request.path.starts_with(PREFIX) {
        return Answer::twirp(404, "bad_route", "no such service");
    }
    if request.header("content-type") != Some("application/protobuf") {
        return Answer::twirp(
            400,
            "malformed",
            "the stand-in speaks application/protobuf only",
        );
    }
    let body = request.body.as_slice();
    let mut state = lock(state);
    match method {
        "CreateSIPInboundTrunk" => match proto::CreateSipInboundTrunkRequest::decode(body) {
            Ok(request) => create_inbound(&mut state, request),
            Err(_) => Answer::twirp(400, "malformed", "not a CreateSIPInboundTrunkRequest"),
        },
        "CreateSIPOutboundTrunk" => match proto::CreateSipOutboundTrunkRequest::decode(body) {
            Ok(request) => create_outbound(&mut state, request),
            Err(_) => Answer::twirp(400, "malformed", "not a CreateSIPOutboundTrunkRequest"),
        },
        "DeleteSIPTrunk" => match proto::DeleteSipTrunkRequest::decode(body) {
            Ok(request) => delete(&mut state, &request.sip_trunk_id),
            Err(_) => Answer::twirp(400, "malformed", "not a DeleteSIPTrunkRequest"),
        },
        "ListSIPInboundTrunk" => match proto::ListSipInboundTrunkRequest::decode(body) {
            Ok(request) => {
                let asked = request.page.as_ref().filter(|_| !state.ignores_paging);
                let page = paged(&state.inbound, asked, |t| &t.sip_trunk_id);
                let items = page
                    .into_iter()
                    .filter(|trunk| holds_any(&trunk.numbers, &request.numbers))
                    .cloned()
                    .collect();
                Answer::ok(&proto::ListSipInboundTrunkResponse { items })
            }
            Err(_) => Answer::twirp(400, "malformed", "not a ListSIPInboundTrunkRequest"),
        },
        "ListSIPOutboundTrunk" => match proto::ListSipOutboundTrunkRequest::decode(body) {
            Ok(request) => {
                let asked = request.page.as_ref().filter(|_| !state.ignores_paging);
                let page = paged(&state.outbound, asked, |t| &t.sip_trunk_id);
                let items = page
                    .into_iter()
                    .filter(|trunk| holds_any(&trunk.numbers, &request.numbers))
                    .cloned()
                    .collect();
                Answer::ok(&proto::ListSipOutboundTrunkResponse { items })
            }
            Err(_) => Answer::twirp(400, "malformed", "not a ListSIPOutboundTrunkRequest"),
        },
        _ => Answer::twirp(404, "bad_route", "no such method"),
    }
}

/// LiveKit's paging: without `page`, every trunk (in the order kept); with it, the trunks
/// whose ids sort after `after_id`, in id order, at most `limit` (1000 when 0).
fn paged<'a, T>(
    trunks: &'a [T],
    page: Option<&proto::Pagination>,
    id: impl Fn(&T) -> &String,
) -> Vec<&'a T> {
    let Some(page) = page else {
        return trunks.iter().collect();
    };
    let mut after: Vec<&T> = trunks
        .iter()
        .filter(|trunk| id(trunk).as_str() > page.after_id.as_str())
        .collect();
    after.sort_unstable_by(|a, b| id(a).cmp(id(b)));
    let limit = usize::try_from(page.limit)
        .ok()
        .filter(|limit| *limit > 0)
        .unwrap_or(1000);
    after.truncate(limit);
    after
}

/// LiveKit's number filter, applied after paging: a trunk passes when no number is asked
/// for, when it holds none, or when it holds one of them.
fn holds_any(held: &[String], asked: &[String]) -> bool {
    asked.is_empty() || held.is_empty() || held.iter().any(|number| asked.contains(number))
}

/// LiveKit's key for an inbound number: digits with a leading `+`.
fn normalize(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("+{digits}")
}

fn create_inbound(state: &mut State, request: proto::CreateSipInboundTrunkRequest) -> Answer {
    let Some(mut trunk) = request.trunk else {
        return Answer::twirp(400, "invalid_argument", "missing trunk");
    };
    let has_auth = !trunk.auth_username.is_empty() || !trunk.auth_password.is_empty();
    if !has_auth && trunk.allowed_addresses.is_empty() && trunk.numbers.is_empty() {
        return Answer::twirp(
            400,
            "invalid_argument",
            "for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers",
        );
    }
    let wanted: Vec<String> = trunk.numbers.iter().map(|n| normalize(n)).collect();
    let taken = state.inbound.iter().find(|other| {
        trunk.allowed_numbers.is_empty()
            && other.allowed_numbers.is_empty()
            && other.numbers.iter().any(|n| wanted.contains(&normalize(n)))
    });
    if let Some(other) = taken {
        return Answer::twirp(
            400,
            "invalid_argument",
            &format!(
                "Conflicting inbound SIP Trunks: \"<new>\" and {:?}, using the same number(s) {:?} without AllowedNumbers set",
                other.sip_trunk_id, trunk.numbers
            ),
        );
    }
    trunk.sip_trunk_id = new_id();
    state.inbound.push(trunk.clone());
    Answer::ok(&trunk)
}

fn create_outbound(state: &mut State, request: proto::CreateSipOutboundTrunkRequest) -> Answer {
    let Some(mut trunk) = request.trunk else {
        return Answer::twirp(400, "invalid_argument", "missing trunk");
    };
    if trunk.numbers.is_empty() {
        return Answer::twirp(400, "invalid_argument", "no trunk numbers specified");
    }
    if trunk.address.is_empty() {
        return Answer::twirp(400, "invalid_argument", "no outbound address specified");
    }
    trunk.sip_trunk_id = new_id();
    state.outbound.push(trunk.clone());
    Answer::ok(&trunk)
}

fn delete(state: &mut State, id: &str) -> Answer {
    state.inbound.retain(|trunk| trunk.sip_trunk_id != id);
    state.outbound.retain(|trunk| trunk.sip_trunk_id != id);
    Answer::ok(&proto::SipTrunkInfo {
        sip_trunk_id: id.to_owned(),
        ..Default::default()
    })
}
