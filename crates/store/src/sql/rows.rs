//! Rows as stored, and their conversion to and from domain values. A row that no longer
//! parses is reported as `Corrupt`, naming the row and column but never a value.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use domain::{
    AllowedIps, ApiKey, ApiKeyId, ApiKeyName, AuthorizationType, CallingFormat, CountryCode, Email,
    FieldError, InboundAuthorization, Lease, LegId, Nickname, PasswordWithheld, PhoneNumber,
    ProvisioningState, RepositoryError, SipAddress, SipPassword, SipTrunk, SipUsername, Timestamp,
    TrunkId, TrunkSettings, TrunkType, User, UserId, UserName,
};

use super::schema::{api_keys, sip_trunks, users};
use super::stored_text::{StoredCode, StoredText};
use super::stored_time::StoredTime;
use crate::secrets::{Keyring, Sealed};

/// What a sealed password is bound to (its associated data), stored beside it in
/// `sip_password_binding` so that rows sealed before trunk binding existed still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordBinding {
    /// 1: the owner only (rows written before migration 000003, until re-sealed).
    Owner,
    /// 2: the owner and the trunk id: a sealed password moved to another row does not open.
    OwnerAndTrunk,
}

impl PasswordBinding {
    /// The column value.
    pub(crate) fn code(self) -> i16 {
        match self {
            Self::Owner => 1,
            Self::OwnerAndTrunk => 2,
        }
    }

    fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(Self::Owner),
            2 => Some(Self::OwnerAndTrunk),
            _ => None,
        }
    }

    /// The associated data of the password of trunk `id` of `owner`.
    pub(crate) fn context(self, owner: UserId, id: TrunkId) -> Vec<u8> {
        match self {
            Self::Owner => format!("sip_trunks.sip_password:user:{owner}"),
            Self::OwnerAndTrunk => format!("sip_trunks.sip_password:user:{owner}:trunk:{id}"),
        }
        .into_bytes()
    }
}

/// A password as stored, and what it is bound to.
pub(crate) struct StoredPassword {
    pub(crate) sealed: Sealed,
    pub(crate) binding: PasswordBinding,
}

impl StoredPassword {
    /// The password of trunk `id` of `owner`, opened with `keys`.
    pub(crate) fn open(
        &self,
        keys: &Keyring,
        owner: UserId,
        id: TrunkId,
    ) -> Result<SipPassword, String> {
        let plaintext = keys
            .open(&self.sealed, &self.binding.context(owner, id))
            .map_err(|error| error.to_string())?;
        SipPassword::parse(&plaintext).map_err(|error| error.to_string())
    }
}

/// `password` sealed with the current key, bound to trunk `id` of `owner`.
pub(crate) fn seal_password(
    keys: &Keyring,
    owner: UserId,
    id: TrunkId,
    password: &SipPassword,
) -> Sealed {
    keys.seal(
        password.expose_secret(),
        &PasswordBinding::OwnerAndTrunk.context(owner, id),
    )
}

fn corrupt(table: &str, id: i64, column: &str, why: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::Corrupt(format!("{table} row {id}, column {column}: {why}"))
}

/// A `sip_trunks` row, columns in table order.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sip_trunks)]
pub(crate) struct TrunkRow {
    id: i64,
    user_id: i64,
    sip_trunk_type: String,
    phone_number: String,
    nickname: Option<String>,
    sip_username: String,
    sip_password_sealed: String,
    sip_password_key_id: String,
    sip_password_binding: i16,
    sip_address: String,
    sip_calling_format: String,
    inbound_authorization_type: String,
    allowed_inbound_ips: Option<String>,
    outbound_proxy: i16,
    country_code: String,
    inbound_trunk_id: Option<String>,
    outbound_trunk_id: Option<String>,
    #[diesel(deserialize_as = StoredTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTime)]
    updated_at: NaiveDateTime,
    provisioning_state: i16,
    // Read with the row (an insert's `get_result` takes every column, in table order); the
    // ledger's queries filter on them instead.
    #[allow(dead_code)]
    provisioning_lease: Option<String>,
    #[allow(dead_code)]
    provisioning_lease_until: Option<NaiveDateTime>,
}

impl TrunkRow {
    /// The row's id (for reports about a row that does not read).
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// The row with `password` in its password's columns: what an insert with a placeholder
    /// password reads as once [`super::fixed_statements::SealPassword`] has written it.
    pub(crate) fn with_password(self, password: SealedPasswordColumns) -> Self {
        Self {
            sip_password_sealed: password.sip_password_sealed,
            sip_password_key_id: password.sip_password_key_id,
            sip_password_binding: password.sip_password_binding,
            ..self
        }
    }

    /// Its provisioning state (an unknown code reads as `Repair`: look at its legs).
    pub(crate) fn provisioning_state(&self) -> ProvisioningState {
        ProvisioningState::from_code(self.provisioning_state).unwrap_or(ProvisioningState::Repair)
    }

    /// The domain trunk, its password opened with `keys`.
    pub(crate) fn into_domain(self, keys: &Keyring) -> Result<SipTrunk, RepositoryError> {
        let (trunk, password) = self.into_parts()?;
        let sip_password = password
            .open(keys, trunk.owner, trunk.id)
            .map_err(|why| corrupt("sip_trunks", trunk.id.get(), "sip_password_sealed", why))?;
        Ok(SipTrunk {
            id: trunk.id,
            owner: trunk.owner,
            settings: TrunkSettings {
                phone_number: trunk.settings.phone_number,
                nickname: trunk.settings.nickname,
                sip_username: trunk.settings.sip_username,
                sip_password,
                sip_address: trunk.settings.sip_address,
                calling_format: trunk.settings.calling_format,
                inbound_authorization: trunk.settings.inbound_authorization,
                outbound_proxy: trunk.settings.outbound_proxy,
                country_code: trunk.settings.country_code,
            },
            inbound_trunk_id: trunk.inbound_trunk_id,
            outbound_trunk_id: trunk.outbound_trunk_id,
            created_at: trunk.created_at,
            updated_at: trunk.updated_at,
        })
    }

    /// The trunk without its password (nothing is decrypted), and the password as stored.
    pub(crate) fn into_parts(
        self,
    ) -> Result<(SipTrunk<PasswordWithheld>, StoredPassword), RepositoryError> {
        let password = StoredPassword {
            sealed: Sealed {
                text: self.sip_password_sealed,
                key_id: self.sip_password_key_id,
            },
            binding: PasswordBinding::from_code(self.sip_password_binding).ok_or_else(|| {
                corrupt("sip_trunks", self.id, "sip_password_binding", "not 1 or 2")
            })?,
        };
        let shown = ShownTrunkRow {
            id: self.id,
            user_id: self.user_id,
            sip_trunk_type: TrunkType::parse(&self.sip_trunk_type),
            phone_number: self.phone_number.into(),
            nickname: self.nickname.map(StoredText::from),
            sip_username: self.sip_username.into(),
            sip_address: self.sip_address.into(),
            sip_calling_format: CallingFormat::parse(&self.sip_calling_format),
            inbound_authorization_type: AuthorizationType::parse(&self.inbound_authorization_type),
            allowed_inbound_ips: self.allowed_inbound_ips,
            outbound_proxy: self.outbound_proxy,
            country_code: CountryCode::parse(&self.country_code),
            inbound_trunk_id: self.inbound_trunk_id.map(StoredText::from),
            outbound_trunk_id: self.outbound_trunk_id.map(StoredText::from),
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok((shown.into_withheld()?, password))
    }
}

/// The columns a client's read shows: every column but the password's and the provisioning
/// lease's. Lists and gets read only these (less to send, decode and allocate per row).
#[derive(Queryable, Selectable)]
#[diesel(table_name = sip_trunks)]
pub(crate) struct ShownTrunkRow {
    id: i64,
    user_id: i64,
    // The code columns are parsed from the row's own text ([`StoredCode`]): no `String`.
    #[diesel(deserialize_as = StoredCode<TrunkType>)]
    sip_trunk_type: Result<TrunkType, FieldError>,
    // The texts a trunk keeps are read into short strings ([`StoredText`]).
    phone_number: StoredText,
    nickname: Option<StoredText>,
    sip_username: StoredText,
    sip_address: StoredText,
    #[diesel(deserialize_as = StoredCode<CallingFormat>)]
    sip_calling_format: Result<CallingFormat, FieldError>,
    #[diesel(deserialize_as = StoredCode<AuthorizationType>)]
    inbound_authorization_type: Result<AuthorizationType, FieldError>,
    allowed_inbound_ips: Option<String>,
    outbound_proxy: i16,
    #[diesel(deserialize_as = StoredCode<CountryCode>)]
    country_code: Result<CountryCode, FieldError>,
    inbound_trunk_id: Option<StoredText>,
    outbound_trunk_id: Option<StoredText>,
    #[diesel(deserialize_as = StoredTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTime)]
    updated_at: NaiveDateTime,
}

impl ShownTrunkRow {
    /// The row's id (for reports about a row that does not read).
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// The trunk, its password withheld (it was not read).
    pub(crate) fn into_withheld(self) -> Result<SipTrunk<PasswordWithheld>, RepositoryError> {
        let id = self.id;
        let bad =
            |column: &str, why: &dyn std::fmt::Display| corrupt("sip_trunks", id, column, why);
        let trunk_id = TrunkId::new(id).ok_or_else(|| bad("id", &"not positive"))?;
        let owner = UserId::new(self.user_id).ok_or_else(|| bad("user_id", &"not positive"))?;
        let kind = self.sip_trunk_type.map_err(|e| bad("sip_trunk_type", &e))?;
        // The text columns move into the domain's values (`from_stored`): no second copy.
        let phone_number = PhoneNumber::from_stored(kind, self.phone_number.0)
            .map_err(|e| bad("phone_number", &e))?;
        let nickname = match self.nickname {
            Some(raw) => Nickname::from_stored(raw.0).map_err(|e| bad("nickname", &e))?,
            None => None,
        };
        let inbound_authorization = match (
            self.inbound_authorization_type
                .map_err(|e| bad("inbound_authorization_type", &e))?,
            &self.allowed_inbound_ips,
        ) {
            (AuthorizationType::Auth, None) => InboundAuthorization::Credentials,
            (AuthorizationType::Ip, Some(list)) => {
                let entries: Vec<&str> = list.split(',').collect();
                InboundAuthorization::AllowList(
                    AllowedIps::from_stored(&entries)
                        .map_err(|e| bad("allowed_inbound_ips", &e))?,
                )
            }
            _ => {
                return Err(bad(
                    "allowed_inbound_ips",
                    &"does not fit the authorization type",
                ))
            }
        };
        let settings = TrunkSettings {
            phone_number,
            nickname,
            sip_username: SipUsername::from_stored(self.sip_username.0)
                .map_err(|e| bad("sip_username", &e))?,
            sip_password: PasswordWithheld,
            sip_address: SipAddress::from_stored(self.sip_address.0)
                .map_err(|e| bad("sip_address", &e))?,
            calling_format: self
                .sip_calling_format
                .map_err(|e| bad("sip_calling_format", &e))?,
            inbound_authorization,
            outbound_proxy: match self.outbound_proxy {
                0 => false,
                1 => true,
                _ => return Err(bad("outbound_proxy", &"not 0 or 1")),
            },
            country_code: self.country_code.map_err(|e| bad("country_code", &e))?,
        };
        let trunk = SipTrunk {
            id: trunk_id,
            owner,
            settings,
            inbound_trunk_id: self.inbound_trunk_id.and_then(|id| LegId::new(id.0)),
            outbound_trunk_id: self.outbound_trunk_id.and_then(|id| LegId::new(id.0)),
            created_at: Timestamp::from_naive_utc(self.created_at),
            updated_at: Timestamp::from_naive_utc(self.updated_at),
        };
        Ok(trunk)
    }
}

/// The password columns: what re-sealing reads and writes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sip_trunks)]
pub(crate) struct PasswordRow {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) sip_password_sealed: String,
    pub(crate) sip_password_key_id: String,
    pub(crate) sip_password_binding: i16,
}

impl PasswordRow {
    /// The password as stored, or why the binding column does not read.
    pub(crate) fn stored(&self) -> Option<StoredPassword> {
        Some(StoredPassword {
            sealed: Sealed {
                text: self.sip_password_sealed.clone(),
                key_id: self.sip_password_key_id.clone(),
            },
            binding: PasswordBinding::from_code(self.sip_password_binding)?,
        })
    }
}

/// A sealed password as written: the columns an insert fills in and an update rewrites.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = sip_trunks, treat_none_as_default_value = false)]
pub(crate) struct SealedPasswordColumns {
    sip_password_sealed: String,
    sip_password_key_id: String,
    sip_password_binding: i16,
}

impl SealedPasswordColumns {
    /// `password` of trunk `id` of `owner`, sealed with the current key.
    pub(crate) fn of(keys: &Keyring, owner: UserId, id: TrunkId, password: &SipPassword) -> Self {
        let sealed = seal_password(keys, owner, id, password);
        Self {
            sip_password_sealed: sealed.text,
            sip_password_key_id: sealed.key_id,
            sip_password_binding: PasswordBinding::OwnerAndTrunk.code(),
        }
    }

    /// The sealed text, the key's id and the binding's code, as the columns hold them.
    pub(crate) fn columns(&self) -> (&String, &String, &i16) {
        (
            &self.sip_password_sealed,
            &self.sip_password_key_id,
            &self.sip_password_binding,
        )
    }

    /// Nothing sealed yet (binding 2 already, so the row never enters the index of rows to
    /// re-bind): for an insert whose id is not known before it runs, in a transaction that
    /// seals the password before it commits.
    pub(crate) fn placeholder() -> Self {
        Self {
            sip_password_sealed: String::new(),
            sip_password_key_id: String::new(),
            sip_password_binding: PasswordBinding::OwnerAndTrunk.code(),
        }
    }
}

/// The columns a client controls but the password, plus `updated_at`: what an insert sets
/// beside the fixed columns, and what an update rewrites. The password is sealed for the
/// trunk's id, so it is written with [`SealedPasswordColumns`] once the id is known. The legs
/// are written by provisioning, not here.
#[derive(Insertable, AsChangeset)]
#[diesel(
    table_name = sip_trunks,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub(crate) struct TrunkFields<'a> {
    phone_number: &'a str,
    nickname: Option<&'a str>,
    sip_username: &'a str,
    sip_address: &'a str,
    sip_calling_format: &'a str,
    inbound_authorization_type: &'a str,
    allowed_inbound_ips: Option<String>,
    outbound_proxy: i16,
    country_code: &'a str,
    updated_at: NaiveDateTime,
}

impl<'a> TrunkFields<'a> {
    /// The columns of `settings`.
    pub(crate) fn of<P>(settings: &'a TrunkSettings<P>, updated_at: Timestamp) -> Self {
        Self {
            phone_number: settings.phone_number.as_str(),
            nickname: settings.nickname.as_ref().map(Nickname::as_str),
            sip_username: settings.sip_username.as_str(),
            sip_address: settings.sip_address.as_str(),
            sip_calling_format: settings.calling_format.as_str(),
            inbound_authorization_type: settings.inbound_authorization.kind().as_str(),
            allowed_inbound_ips: settings
                .inbound_authorization
                .allowed_ips()
                .map(|list| list.to_strings().join(",")),
            outbound_proxy: i16::from(settings.outbound_proxy),
            country_code: settings.country_code.as_str(),
            updated_at: updated_at.naive_utc(),
        }
    }
}

/// A new trunk row: the fields plus what never changes, and its password; the database
/// gives its id (SQLite), or [`NewTrunkRow::with_id`] does.
///
/// A `None` is written as NULL, not left to the column's default: Diesel then writes every
/// column whatever the values, so the insert is one statement it keeps prepared.
#[derive(Insertable)]
#[diesel(table_name = sip_trunks, treat_none_as_default_value = false)]
pub(crate) struct NewTrunkRow<'a> {
    user_id: i64,
    sip_trunk_type: &'a str,
    created_at: NaiveDateTime,
    #[diesel(embed)]
    password: SealedPasswordColumns,
    #[diesel(embed)]
    fields: TrunkFields<'a>,
    provisioning_state: i16,
    provisioning_lease: Option<String>,
    provisioning_lease_until: Option<NaiveDateTime>,
}

impl<'a> NewTrunkRow<'a> {
    /// The row of a new trunk of `owner`, created `now` with `settings`: `Ready`, or
    /// `Creating` under `creating`.
    pub(crate) fn of(
        owner: UserId,
        settings: &'a TrunkSettings,
        now: Timestamp,
        password: SealedPasswordColumns,
        creating: Option<&Lease>,
    ) -> Self {
        Self {
            user_id: owner.get(),
            sip_trunk_type: settings.phone_number.kind().as_str(),
            created_at: now.naive_utc(),
            password,
            fields: TrunkFields::of(settings, now),
            provisioning_state: creating
                .map_or(ProvisioningState::Ready, |_| ProvisioningState::Creating)
                .code(),
            provisioning_lease: creating.map(|lease| lease.token.clone()),
            provisioning_lease_until: creating.map(|lease| lease.until.naive_utc()),
        }
    }

    /// The row with its id drawn before the insert (PostgreSQL's sequence).
    pub(crate) fn with_id(self, id: TrunkId) -> NewTrunkRowWithId<'a> {
        NewTrunkRowWithId {
            id: id.get(),
            row: self,
        }
    }
}

/// A [`NewTrunkRow`] and its id.
#[derive(Insertable)]
#[diesel(table_name = sip_trunks, treat_none_as_default_value = false)]
pub(crate) struct NewTrunkRowWithId<'a> {
    id: i64,
    #[diesel(embed)]
    row: NewTrunkRow<'a>,
}

/// A `users` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    id: i64,
    email: String,
    name: String,
    created_at: NaiveDateTime,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> Result<User, RepositoryError> {
        let id = self.id;
        let bad = |column: &str, why: &dyn std::fmt::Display| corrupt("users", id, column, why);
        Ok(User {
            id: UserId::new(id).ok_or_else(|| bad("id", &"not positive"))?,
            email: Email::parse(&self.email).map_err(|e| bad("email", &e))?,
            name: UserName::parse(&self.name).map_err(|e| bad("name", &e))?,
            created_at: Timestamp::from_naive_utc(self.created_at),
        })
    }
}

/// A new `users` row.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow<'a> {
    pub(crate) email: &'a str,
    pub(crate) name: &'a str,
    pub(crate) created_at: NaiveDateTime,
}

/// An `api_keys` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub(crate) struct ApiKeyRow {
    id: i64,
    user_id: i64,
    name: String,
    #[allow(dead_code)]
    token_hash: String,
    last_used_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

impl ApiKeyRow {
    pub(crate) fn into_domain(self) -> Result<ApiKey, RepositoryError> {
        let id = self.id;
        let bad = |column: &str, why: &dyn std::fmt::Display| corrupt("api_keys", id, column, why);
        Ok(ApiKey {
            id: ApiKeyId::new(id).ok_or_else(|| bad("id", &"not positive"))?,
            owner: UserId::new(self.user_id).ok_or_else(|| bad("user_id", &"not positive"))?,
            name: ApiKeyName::parse(&self.name).map_err(|e| bad("name", &e))?,
            last_used_at: self.last_used_at.map(Timestamp::from_naive_utc),
            created_at: Timestamp::from_naive_utc(self.created_at),
        })
    }
}

/// A new `api_keys` row.
#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct NewApiKeyRow<'a> {
    pub(crate) user_id: i64,
    pub(crate) name: &'a str,
    pub(crate) token_hash: String,
    pub(crate) created_at: NaiveDateTime,
}
