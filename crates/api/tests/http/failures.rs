//! Storage failures: unavailable is 503 with Retry-After, anything else a bare 500.

use std::sync::Arc;

use api::AppState;
use domain::*;

use crate::support::*;

/// A store whose every call fails with the error `make` builds; authentication succeeds so
/// the failure reaches the handlers.
struct FailingStore {
    make: fn() -> RepositoryError,
}

fn key() -> ApiKey {
    ApiKey {
        id: ApiKeyId::new(1).unwrap(),
        owner: UserId::new(1).unwrap(),
        name: ApiKeyName::parse("k").unwrap(),
        last_used_at: Some(Timestamp::now()),
        created_at: Timestamp::now(),
    }
}

impl SipTrunkRepository for FailingStore {
    fn list_trunks(&self, _: UserId, _: TrunkPage) -> RepositoryResult<TrunkListing> {
        Err((self.make)())
    }
    fn get_trunk(&self, _: UserId, _: TrunkId) -> RepositoryResult<SipTrunk<PasswordWithheld>> {
        Err((self.make)())
    }
    fn open_trunk(&self, _: UserId, _: TrunkId) -> RepositoryResult<SipTrunk> {
        Err((self.make)())
    }
    fn create_trunk(&self, _: UserId, _: &NewSipTrunk, _: u32) -> RepositoryResult<SipTrunk> {
        Err((self.make)())
    }
    fn update_trunk(
        &self,
        _: UserId,
        _: TrunkId,
        _: &SipTrunkPatch,
    ) -> RepositoryResult<TrunkUpdate> {
        Err((self.make)())
    }
    fn delete_trunk(&self, _: UserId, _: TrunkId) -> RepositoryResult<()> {
        Err((self.make)())
    }
}

impl AccountRepository for FailingStore {
    fn create_user(&self, _: &Email, _: &UserName) -> RepositoryResult<User> {
        Err((self.make)())
    }
    fn find_user_by_email(&self, _: &Email) -> RepositoryResult<User> {
        Err((self.make)())
    }
    fn find_user(&self, _: UserId) -> RepositoryResult<User> {
        Err((self.make)())
    }
    fn create_api_key(
        &self,
        _: UserId,
        _: &ApiKeyName,
        _: &TokenHash,
        _: u32,
    ) -> RepositoryResult<ApiKey> {
        Err((self.make)())
    }
    fn list_api_keys(&self, _: UserId) -> RepositoryResult<Vec<ApiKey>> {
        Err((self.make)())
    }
    fn revoke_api_key(&self, _: UserId, _: ApiKeyId) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn revoke_any_api_key(&self, _: ApiKeyId) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn authenticate(&self, _: &ApiToken) -> RepositoryResult<ApiKey> {
        Ok(key())
    }
    fn touch_api_key(&self, _: ApiKeyId, _: Timestamp) -> RepositoryResult<()> {
        Ok(())
    }
}

impl NumberConflictLog for FailingStore {
    fn number_conflicts_since(&self, _: UserId, _: Timestamp) -> RepositoryResult<Vec<Timestamp>> {
        Err((self.make)())
    }
    fn record_number_conflict(
        &self,
        _: UserId,
        _: Timestamp,
        _: Timestamp,
        _: u32,
    ) -> RepositoryResult<bool> {
        Err((self.make)())
    }
}

impl TrunkNotes for FailingStore {
    fn record_leg_checks(&self, _: &[LegCheck], _: Timestamp, _: bool) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn record_provisioning_failure(
        &self,
        _: TrunkId,
        _: ProvisioningFailure,
        _: Timestamp,
    ) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn provisioning_record(
        &self,
        _: UserId,
        _: TrunkId,
    ) -> RepositoryResult<TrunkProvisioningRecord> {
        Err((self.make)())
    }
    fn claim_probe_slot(
        &self,
        _: UserId,
        _: TrunkId,
        _: Timestamp,
        _: std::time::Duration,
    ) -> RepositoryResult<Option<Timestamp>> {
        Err((self.make)())
    }
}

impl CarrierHealthStore for FailingStore {
    fn sync_carrier_addresses(&self, _: Timestamp) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn claim_due_carriers(
        &self,
        _: Timestamp,
        _: Timestamp,
        _: usize,
    ) -> RepositoryResult<Vec<(String, CarrierHealth)>> {
        Err((self.make)())
    }
    fn record_carrier_health(
        &self,
        _: &str,
        _: &CarrierHealth,
        _: Timestamp,
    ) -> RepositoryResult<()> {
        Err((self.make)())
    }
    fn carrier_health(&self, _: &str) -> RepositoryResult<Option<CarrierHealth>> {
        Err((self.make)())
    }
    fn trunks_by_carrier_state(&self) -> RepositoryResult<TrunksByCarrierState> {
        Err((self.make)())
    }
}

fn failing(make: fn() -> RepositoryError) -> AppState {
    let store = Arc::new(FailingStore { make });
    let ready: api::state::ReadinessProbe = Arc::new(move || Err(make()));
    AppState::new(store, ready)
}

const TOKEN: &str = "1|anything";

#[actix_web::test]
async fn unreachable_storage_is_503_with_retry_after_on_every_endpoint() {
    let app = TestApp::spawn(failing(|| {
        RepositoryError::Unavailable("connection refused".into())
    }))
    .await;
    let body = number_trunk();
    for (method, path, body) in [
        ("GET", TRUNKS.to_owned(), None),
        ("POST", TRUNKS.to_owned(), Some(&body)),
        ("GET", trunk_path(1), None),
        ("PUT", trunk_path(1), Some(&body)),
        ("GET", format!("{}/status", trunk_path(1)), None),
        ("POST", format!("{}/status/probe", trunk_path(1)), None),
        ("DELETE", "/api/user/phone-numbers/1".to_owned(), None),
        ("GET", "/api/user/api-keys".to_owned(), None),
        ("GET", "/readyz".to_owned(), None),
    ] {
        let reply = app.send(request(method, &path, Some(TOKEN), body)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (503, r#"{"message":"Service temporarily unavailable."}"#),
            "{method} {path}"
        );
        assert_eq!(reply.header("retry-after"), Some("5"));
    }
}

#[actix_web::test]
async fn an_internal_or_corrupt_failure_is_a_bare_500() {
    for make in [
        (|| RepositoryError::Internal("syntax error near SELECT".into()))
            as fn() -> RepositoryError,
        || RepositoryError::Corrupt("sip_trunks row 1, column sip_address".into()),
    ] {
        let app = TestApp::spawn(failing(make)).await;
        let reply = app.list_trunks(TOKEN).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (500, r#"{"error":"Internal server error."}"#)
        );
    }
}
