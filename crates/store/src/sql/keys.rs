//! The stored passwords as a whole: which keys sealed them (checked at start, so that a
//! missing key is found before any read needs it), and re-sealing them with the current key
//! and the current binding (after a rotation, and once for rows sealed before trunk binding).

use diesel::dsl::{min, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use domain::{RepositoryResult, TrunkId, UserId};

use super::rows::{PasswordBinding, PasswordRow, SealedPasswordColumns};
use super::schema::sip_trunks;
use super::{SqlStore, TxError};

/// Which rows [`SqlStore::reseal`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResealScope {
    /// Every row not sealed with the current key and bound to its trunk (`sip-trunks
    /// reencrypt`).
    NotCurrent,
    /// Only rows still bound to their owner alone (done at every start; nothing to do once
    /// they are all re-sealed).
    OwnerBound,
}

/// What a re-seal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Rows re-sealed with the current key, bound to their trunk.
    pub resealed: u64,
    /// Rows that changed while they were being re-sealed (an update wrote a current seal, or
    /// a delete removed them): left as the other writer left them.
    pub changed_meanwhile: u64,
    /// Rows whose password does not open (a key missing from the ring, or damage): left
    /// untouched, by id, with the reason (never a value).
    pub unreadable: Vec<(i64, String)>,
}

/// Rows re-sealed per transaction: each batch commits on its own, so an interrupted run
/// keeps what it did and the next run starts where it stopped.
const RESEAL_BATCH: i64 = 500;

impl SqlStore {
    /// The ids of the keys the stored passwords were sealed with, ascending. One index seek
    /// per key (a skip scan), so it costs the same on ten rows and on ten million.
    pub fn password_key_ids(&self) -> RepositoryResult<Vec<String>> {
        self.with_connection(|conn| {
            let mut ids = Vec::new();
            loop {
                let after = ids.last().cloned().unwrap_or_default();
                let next: Option<String> = sip_trunks::table
                    .filter(sip_trunks::sip_password_key_id.gt(after))
                    .select(min(sip_trunks::sip_password_key_id))
                    .get_result(conn)?;
                match next {
                    Some(id) => ids.push(id),
                    None => return Ok(ids),
                }
            }
        })
    }

    /// How many stored passwords the key `key_id` sealed (a count of its rows).
    pub fn passwords_sealed_by(&self, key_id: &str) -> RepositoryResult<u64> {
        let key_id = key_id.to_owned();
        let rows: i64 = self.with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::sip_password_key_id.eq(key_id))
                .count()
                .get_result(conn)
        })?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// Rows sealed with the current key and bound to their trunk: what a full re-seal leaves.
    pub fn current_password_rows(&self) -> RepositoryResult<u64> {
        let current = self.keys.current_id().to_owned();
        let rows: i64 = self.with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::sip_password_key_id.eq(current))
                .filter(sip_trunks::sip_password_binding.eq(PasswordBinding::OwnerAndTrunk.code()))
                .count()
                .get_result(conn)
        })?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// Re-seals the passwords of `scope` with the current key, bound to their trunk, in
    /// batches of their own transaction; `progress` hears the running totals after each.
    /// A row is rewritten only if its sealed value is still the one that was read, so a
    /// concurrent update is never overwritten. Safe to interrupt and to run again.
    pub fn reseal(
        &self,
        scope: ResealScope,
        mut progress: impl FnMut(&ResealReport),
    ) -> RepositoryResult<ResealReport> {
        let mut report = ResealReport::default();
        let mut after = 0_i64;
        loop {
            let (rows, last) = self.write(|conn| {
                conn.transaction::<_, TxError, _>(|conn| {
                    let rows = self.reseal_candidates(conn, scope, after)?;
                    let last = rows.last().map(|row| row.id);
                    for row in &rows {
                        self.reseal_row(conn, row, &mut report)?;
                    }
                    Ok((rows.len(), last))
                })
            })?;
            progress(&report);
            match last {
                Some(last) if rows as i64 == RESEAL_BATCH => after = last,
                _ => return Ok(report),
            }
        }
    }

    fn reseal_candidates(
        &self,
        conn: &mut super::DbConnection,
        scope: ResealScope,
        after: i64,
    ) -> QueryResult<Vec<PasswordRow>> {
        let bound_to_trunk = PasswordBinding::OwnerAndTrunk.code();
        let page = sip_trunks::table
            .filter(sip_trunks::id.gt(after))
            .order(sip_trunks::id.asc())
            .limit(RESEAL_BATCH)
            .select(PasswordRow::as_select());
        match scope {
            ResealScope::NotCurrent => page
                .filter(
                    sip_trunks::sip_password_key_id
                        .ne(self.keys.current_id().to_owned())
                        .or(sip_trunks::sip_password_binding.ne(bound_to_trunk)),
                )
                .load(conn),
            // A literal, not a bound parameter, so both planners can use the partial index
            // `sip_trunks_owner_bound` (empty once every row is re-bound).
            ResealScope::OwnerBound => page
                .filter(sql::<Bool>("sip_password_binding = 1"))
                .load(conn),
        }
    }

    fn reseal_row(
        &self,
        conn: &mut super::DbConnection,
        row: &PasswordRow,
        report: &mut ResealReport,
    ) -> QueryResult<()> {
        let (Some(id), Some(owner), Some(stored)) =
            (TrunkId::new(row.id), UserId::new(row.user_id), row.stored())
        else {
            report
                .unreadable
                .push((row.id, "the row's ids or binding do not read".into()));
            return Ok(());
        };
        let password = match stored.open(&self.keys, owner, id) {
            Ok(password) => password,
            Err(why) => {
                report.unreadable.push((row.id, why));
                return Ok(());
            }
        };
        let touched = diesel::update(
            sip_trunks::table
                .filter(sip_trunks::id.eq(row.id))
                .filter(sip_trunks::sip_password_sealed.eq(&row.sip_password_sealed)),
        )
        .set(&SealedPasswordColumns::of(&self.keys, owner, id, &password))
        .execute(conn)?;
        if touched == 1 {
            report.resealed += 1;
        } else {
            report.changed_meanwhile += 1;
        }
        Ok(())
    }
}
