//! The number-taken answers of each account ([`NumberConflictLog`]), in the database so that
//! every replica and every restart counts the same answers.

use diesel::prelude::*;
use domain::{NumberConflictLog, RepositoryError, RepositoryResult, Timestamp, UserId};

use super::schema::{number_conflicts, users};
use super::{SqlStore, TxError};

impl NumberConflictLog for SqlStore {
    fn number_conflicts_since(
        &self,
        owner: UserId,
        since: Timestamp,
    ) -> RepositoryResult<Vec<Timestamp>> {
        let times: Vec<chrono::NaiveDateTime> = self.with_connection(|conn| {
            number_conflicts::table
                .filter(number_conflicts::user_id.eq(owner.get()))
                .filter(number_conflicts::answered_at.gt(since.naive_utc()))
                .order((number_conflicts::answered_at, number_conflicts::id))
                .select(number_conflicts::answered_at)
                .load(conn)
        })?;
        Ok(times.into_iter().map(Timestamp::from_naive_utc).collect())
    }

    fn record_number_conflict(
        &self,
        owner: UserId,
        at: Timestamp,
        since: Timestamp,
        budget: u32,
    ) -> RepositoryResult<bool> {
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                // The owner's row lock makes count-then-insert one step for concurrent
                // answers to the same account (SQLite: its write lock does).
                let locked = diesel::update(users::table.filter(users::id.eq(owner.get())))
                    .set(users::name.eq(users::name))
                    .execute(conn)?;
                if locked == 0 {
                    return Err(TxError::Outcome(RepositoryError::NotFound));
                }
                let of_owner = number_conflicts::user_id.eq(owner.get());
                diesel::delete(
                    number_conflicts::table
                        .filter(of_owner)
                        .filter(number_conflicts::answered_at.le(since.naive_utc())),
                )
                .execute(conn)?;
                let held: i64 = number_conflicts::table
                    .filter(of_owner)
                    .count()
                    .get_result(conn)?;
                if held >= i64::from(budget) {
                    return Ok(false);
                }
                diesel::insert_into(number_conflicts::table)
                    .values((
                        number_conflicts::user_id.eq(owner.get()),
                        number_conflicts::answered_at.eq(at.naive_utc()),
                    ))
                    .execute(conn)?;
                Ok(true)
            })
        })
    }
}
