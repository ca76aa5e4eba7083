//! Test helpers: the app over an in-memory store, a caller with a token, and requests that
//! return status, headers and the raw body text (key order is checked on the text).

use std::fmt::Display;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use api::AppState;
use domain::{AccountRepository, ApiKeyName, ApiToken, Email, TokenSecret, UserName};
use serde_json::Value;
use store::MemoryStore;

/// A user of the service and their bearer token.
pub struct Caller {
    pub token: String,
}

/// Creates a user with one API key directly in the store.
pub fn caller(store: &MemoryStore, email: &str) -> Caller {
    named_caller(store, email, "Test")
}

/// [`caller`], the user named `name`.
pub fn named_caller(store: &MemoryStore, email: &str, name: &str) -> Caller {
    Caller {
        token: named_token(store, email, name),
    }
}

/// A token of a new user `email` of `accounts` (any store).
pub fn caller_of(accounts: &dyn AccountRepository, email: &str) -> String {
    named_token(accounts, email, "Test")
}

fn named_token(accounts: &dyn AccountRepository, email: &str, name: &str) -> String {
    let user = accounts
        .create_user(
            &Email::parse(email).unwrap(),
            &UserName::parse(name).unwrap(),
        )
        .unwrap();
    let secret = TokenSecret::generate();
    let key = accounts
        .create_api_key(
            user.id,
            &ApiKeyName::parse("test").unwrap(),
            &secret.hash(),
            1000,
        )
        .unwrap();
    ApiToken::new(key.id, secret).expose_secret()
}

/// The state over a fresh in-memory store.
pub fn memory_state() -> (AppState, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (AppState::new(store.clone(), Arc::new(|| Ok(()))), store)
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {:?}", self.text))
    }

    /// The keys of the JSON object at `pointer`, in the order of the text (the tests build
    /// serde_json with `preserve_order`).
    pub fn keys_at(&self, pointer: &str) -> Vec<String> {
        match self.json().pointer(pointer) {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("no object at {pointer}: {other:?} in {}", self.text),
        }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The app under test, in process (zero2prod's `spawn_app`): one method per endpoint, so
/// that a test reads as the calls a client makes.
pub struct TestApp<S> {
    service: S,
}

impl TestApp<()> {
    /// The app over `state`, ready for requests.
    pub async fn spawn(
        state: AppState,
    ) -> TestApp<
        impl Service<
            actix_http::Request,
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
        >,
    > {
        TestApp {
            service: test::init_service(api::app(state)).await,
        }
    }
}

impl<S, B> TestApp<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    /// `GET …/sip-trunks/{id}/status`.
    pub async fn trunk_status(&self, token: &str, id: impl Display) -> Reply {
        self.send(request(
            "GET",
            &format!("{}/status", trunk_path(id)),
            Some(token),
            None,
        ))
        .await
    }

    /// `POST …/sip-trunks/{id}/status/probe`.
    pub async fn probe_trunk(&self, token: &str, id: impl Display) -> Reply {
        self.send(request(
            "POST",
            &format!("{}/status/probe", trunk_path(id)),
            Some(token),
            None,
        ))
        .await
    }

    /// Sends `request` as it is.
    pub async fn send(&self, request: TestRequest) -> Reply {
        let response = self.call(request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = test::read_body(response).await;
        Reply {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Sends `request` and hands back the response unread (to read its body by hand).
    pub async fn call(&self, request: TestRequest) -> ServiceResponse<B> {
        test::call_service(&self.service, request.to_request()).await
    }

    /// `GET /api/user/phone-numbers/sip-trunks`
    pub async fn list_trunks(&self, token: &str) -> Reply {
        self.send(request("GET", TRUNKS, Some(token), None)).await
    }

    /// `POST /api/user/phone-numbers/sip-trunks`
    pub async fn create_trunk(&self, token: &str, body: &Value) -> Reply {
        self.send(request("POST", TRUNKS, Some(token), Some(body)))
            .await
    }

    /// `GET /api/user/phone-numbers/sip-trunks/{id}`
    pub async fn get_trunk(&self, token: &str, id: impl Display) -> Reply {
        self.send(request("GET", &trunk_path(id), Some(token), None))
            .await
    }

    /// `PUT /api/user/phone-numbers/sip-trunks/{id}`
    pub async fn update_trunk(&self, token: &str, id: impl Display, body: &Value) -> Reply {
        self.send(request("PUT", &trunk_path(id), Some(token), Some(body)))
            .await
    }

    /// `PATCH /api/user/phone-numbers/sip-trunks/{id}`
    pub async fn patch_trunk(&self, token: &str, id: impl Display, body: &Value) -> Reply {
        self.send(request("PATCH", &trunk_path(id), Some(token), Some(body)))
            .await
    }

    /// `DELETE /api/user/phone-numbers/sip-trunks/{id}`
    pub async fn delete_trunk(&self, token: &str, id: impl Display) -> Reply {
        self.send(request("DELETE", &trunk_path(id), Some(token), None))
            .await
    }

    /// `GET /api/user/phone-numbers/all`
    pub async fn list_phone_numbers(&self, token: &str) -> Reply {
        self.send(request("GET", PHONE_NUMBERS, Some(token), None))
            .await
    }

    /// `PUT /api/user/phone-numbers/{id}`
    pub async fn rename_phone_number(&self, token: &str, id: impl Display, body: &Value) -> Reply {
        self.send(request("PUT", &phone_path(id), Some(token), Some(body)))
            .await
    }

    /// `DELETE /api/user/phone-numbers/{id}`
    pub async fn delete_phone_number(&self, token: &str, id: impl Display) -> Reply {
        self.send(request("DELETE", &phone_path(id), Some(token), None))
            .await
    }

    /// `GET /api/user/me`
    pub async fn me(&self, token: &str) -> Reply {
        self.send(request("GET", ME, Some(token), None)).await
    }

    /// `GET /api/user/api-keys`
    pub async fn list_api_keys(&self, token: &str) -> Reply {
        self.send(request("GET", API_KEYS, Some(token), None)).await
    }

    /// `POST /api/user/api-keys`
    pub async fn create_api_key(&self, token: &str, body: &Value) -> Reply {
        self.send(request("POST", API_KEYS, Some(token), Some(body)))
            .await
    }

    /// `DELETE /api/user/api-keys/{id}`
    pub async fn revoke_api_key(&self, token: &str, id: impl Display) -> Reply {
        self.send(request(
            "DELETE",
            &format!("{API_KEYS}/{id}"),
            Some(token),
            None,
        ))
        .await
    }
}

/// A request with the bearer token and, when given, a JSON body.
pub fn request(method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> TestRequest {
    let mut request = TestRequest::default()
        .method(method.parse().unwrap())
        .uri(path);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    if let Some(body) = body {
        request = request
            .insert_header(("Content-Type", "application/json"))
            .set_payload(serde_json::to_vec(body).unwrap());
    }
    request
}

/// The contract's first example: an E.164 number with credentials.
pub fn number_trunk() -> Value {
    serde_json::json!({
        "sip_trunk_type": "number",
        "phone_number": "+14155551234",
        "nickname": "Main line",
        "sip_username": "acme_user",
        "sip_password": "Sup3r-Secret-Pass",
        "sip_address": "sip.carrier.example",
        "sip_calling_format": "+e164",
        "inbound_authorization_type": "auth",
        "country_code": "US",
        "outbound_proxy": false
    })
}

/// The contract's second example: an extension with an allow-list.
pub fn extension_trunk() -> Value {
    serde_json::json!({
        "sip_trunk_type": "extension",
        "phone_number": "1000",
        "sip_username": "pbx_user",
        "sip_password": "Pbx-Secret-Pass",
        "sip_address": "203.0.113.10",
        "sip_calling_format": "national",
        "inbound_authorization_type": "ip",
        "allowed_inbound_ips": ["203.0.113.10", "198.51.100.0/24"],
        "country_code": "GB",
        "outbound_proxy": true
    })
}

pub const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";

pub const PHONE_NUMBERS: &str = "/api/user/phone-numbers/all";
pub const ME: &str = "/api/user/me";
pub const API_KEYS: &str = "/api/user/api-keys";

pub fn trunk_path(id: impl Display) -> String {
    format!("{TRUNKS}/{id}")
}

pub fn phone_path(id: impl Display) -> String {
    format!("/api/user/phone-numbers/{id}")
}
