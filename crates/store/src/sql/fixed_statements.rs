//! SQLite updates on the create path written as statements whose SQL never changes, so that
//! Diesel keeps them prepared.
//!
//! Diesel never caches an `UPDATE` built with its DSL (its `SET` list may vary), so each one
//! is parsed and planned by SQLite again on every execution: with the insert (see
//! `NewTrunkRow`), a third of the CPU of a create on SQLite went to preparing statements. Each
//! type here names one statement: its SQL is a constant, its values are bound, and its
//! [`QueryId`] is the type itself, so the statement cache finds it by type without even
//! building the SQL. They run on the SQLite connection itself (`?` placeholders).

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, SmallInt, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

use super::rows::SealedPasswordColumns;

/// `UPDATE users SET trunk_count = trunk_count + 1 WHERE id = owner AND trunk_count < max`:
/// one place claimed for a new trunk while the account's counter is under its limit (see
/// `claim_place`). Changes one row, or none when the counter is at the limit or there is no
/// such user.
pub(crate) struct ClaimTrunkPlace {
    /// The account.
    pub(crate) owner: i64,
    /// Its limit.
    pub(crate) max: i64,
}

impl QueryId for ClaimTrunkPlace {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for ClaimTrunkPlace {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE users SET trunk_count = trunk_count + 1 WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.owner)?;
        out.push_sql(" AND trunk_count < ");
        out.push_bind_param::<BigInt, _>(&self.max)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for ClaimTrunkPlace {}

/// `UPDATE sip_trunks SET <the sealed password's columns> WHERE id = trunk`: the password of
/// a trunk just inserted, sealed for its id.
pub(crate) struct SealPassword<'a> {
    /// The trunk.
    pub(crate) trunk: i64,
    /// Its password, sealed.
    pub(crate) password: &'a SealedPasswordColumns,
}

/// [`SealPassword`]'s identity in the statement cache (a type id needs a `'static` type).
pub(crate) struct SealPasswordStatement;

impl QueryId for SealPassword<'_> {
    type QueryId = SealPasswordStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for SealPassword<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let (sealed, key_id, binding) = self.password.columns();
        out.push_sql("UPDATE sip_trunks SET sip_password_sealed = ");
        out.push_bind_param::<Text, _>(sealed)?;
        out.push_sql(", sip_password_key_id = ");
        out.push_bind_param::<Text, _>(key_id)?;
        out.push_sql(", sip_password_binding = ");
        out.push_bind_param::<SmallInt, _>(binding)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.trunk)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for SealPassword<'_> {}
