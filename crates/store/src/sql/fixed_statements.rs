//! Statements on the create path whose SQL never changes, written so that Diesel keeps them
//! prepared.
//!
//! Diesel never caches an `UPDATE` built with its DSL (its `SET` list may vary), nor raw SQL
//! (`sql_query`), so each one is parsed and planned by the database again on every execution:
//! with the insert (see `NewTrunkRow`), a third of the CPU of a create on SQLite went to
//! preparing statements. Each type here names one statement: its SQL is a constant, its
//! values are bound, and its [`QueryId`] is the type itself, so the statement cache finds it
//! by type without even building the SQL.

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, SmallInt, Text};
use diesel::sqlite::Sqlite;
use diesel::{PgConnection, QueryResult, RunQueryDsl, SqliteConnection};

use super::rows::SealedPasswordColumns;

/// `UPDATE users SET trunk_count = trunk_count + count WHERE id = owner AND trunk_count <=
/// room`: `count` places claimed for new trunks of `owner` while its counter leaves room for
/// them (`room` is the limit less `count`; see `claim_place`). Changes one row, or none when
/// the counter is too near the limit or there is no such user.
pub(crate) struct ClaimTrunkPlaces {
    /// The account.
    pub(crate) owner: i64,
    /// How many places.
    pub(crate) count: i64,
    /// The highest the counter may be before the claim.
    pub(crate) room: i64,
}

impl ClaimTrunkPlaces {
    /// One place for a new trunk of `owner`, whose limit is `max`.
    pub(crate) fn one(owner: i64, max: i64) -> Self {
        Self {
            owner,
            count: 1,
            room: max - 1,
        }
    }
}

impl QueryId for ClaimTrunkPlaces {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for ClaimTrunkPlaces
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE users SET trunk_count = trunk_count + ");
        out.push_bind_param::<BigInt, _>(&self.count)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.owner)?;
        out.push_sql(" AND trunk_count <= ");
        out.push_bind_param::<BigInt, _>(&self.room)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for ClaimTrunkPlaces {}
impl RunQueryDsl<PgConnection> for ClaimTrunkPlaces {}

/// PostgreSQL: `count` ids drawn from the trunks' sequence, one per row.
pub(crate) struct DrawTrunkIds {
    /// How many.
    pub(crate) count: i64,
}

impl QueryId for DrawTrunkIds {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for DrawTrunkIds {
    type SqlType = BigInt;
}

impl QueryFragment<Pg> for DrawTrunkIds {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT nextval(pg_get_serial_sequence('sip_trunks', 'id')) FROM generate_series(1, ",
        );
        out.push_bind_param::<BigInt, _>(&self.count)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for DrawTrunkIds {}

/// SQLite: `UPDATE sip_trunks SET <the sealed password's columns> WHERE id = trunk`: the
/// password of a trunk just inserted, sealed for its id.
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
