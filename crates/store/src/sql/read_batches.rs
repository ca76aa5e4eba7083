//! Trunk reads in batches on PostgreSQL: the list pages and single trunks asked for while a
//! reader thread waits on the server go together in its next statement.
//!
//! A read of its own is a round trip: a hop to a pool thread, a pooled connection, a message
//! to the server and a wait for its answer, and on the server the protocol's and the
//! executor's work for one statement. With many reads in flight that overhead, not the index
//! scan, was most of a read's cost (docs/performance.md, issue 25). So reads are queued
//! ([`SqlStore::queue_list`](domain::SipTrunkRepository::queue_list)) to a reader thread
//! ([`super::batch_queue`]), and each batch is one statement:
//!
//! ```sql
//! SELECT wanted.n, <the trunk's columns>
//! FROM unnest($owners, $after, $through, $rows) WITH ORDINALITY AS wanted(…, n)
//! CROSS JOIN LATERAL (SELECT * FROM sip_trunks
//!     WHERE user_id = wanted.user_id AND id > wanted.after_id AND id <= wanted.through_id
//!       AND provisioning_state <> 1
//!     ORDER BY id LIMIT wanted.page_rows) AS sip_trunks
//! ```
//!
//! Every read is still its own index scan on `(user_id, id)`, the same one a single read
//! makes: nothing is shared between requests, and one owner's bounds never reach another's
//! rows. A trunk by id is a page of one row bounded to that id. The statement begins after
//! every read of its batch was asked for, so each sees every write committed before it was
//! asked, as a read of its own would.
//!
//! SQLite reads on the worker's own connection instead ([`super::readers`]): there a read is
//! tens of microseconds, and a batch would add a thread hop. [`fetch`] still takes a batch
//! there (one read after another), so the contract suite runs one code path on both.

use diesel::dsl::AsSelect;
use diesel::expression::Expression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt};
use domain::{
    PasswordWithheld, RepositoryError, RepositoryResult, SipTrunk, TrunkId, TrunkListing,
    TrunkPage, UnreadableTrunk, UserId,
};

use super::connection::DbConnection;
use super::rows::ShownTrunkRow;
use super::schema::sip_trunks;
use super::visible::{self, NotCreating};

/// One read of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkRead {
    /// A page of the owner's trunks ([`domain::SipTrunkRepository::list_trunks`]).
    Page(UserId, TrunkPage),
    /// One of the owner's trunks ([`domain::SipTrunkRepository::get_trunk`]).
    One(UserId, TrunkId),
}

/// What a [`TrunkRead`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkReadOutcome {
    /// The page.
    Page(TrunkListing),
    /// The trunk.
    One(SipTrunk<PasswordWithheld>),
}

impl TrunkRead {
    /// The rows the read covers: the owner, ids in `(after, through]`, at most `rows`.
    fn bounds(&self) -> (i64, i64, i64, i64) {
        match *self {
            Self::Page(owner, page) => (
                owner.get(),
                page.after.map_or(0, TrunkId::get),
                i64::MAX,
                i64::try_from(page.limit).unwrap_or(i64::MAX),
            ),
            Self::One(owner, id) => (owner.get(), id.get() - 1, id.get(), 1),
        }
    }

    /// The outcome of the read from its rows, in id order.
    fn outcome(&self, rows: Vec<ShownTrunkRow>) -> RepositoryResult<TrunkReadOutcome> {
        match self {
            Self::Page(..) => listing_of(rows).map(TrunkReadOutcome::Page),
            Self::One(..) => match rows.into_iter().next() {
                Some(row) => Ok(TrunkReadOutcome::One(row.into_withheld()?)),
                None => Err(RepositoryError::NotFound),
            },
        }
    }
}

/// The listing of a page's rows (in id order): the rows that do not read are reported apart.
pub(crate) fn listing_of(rows: Vec<ShownTrunkRow>) -> RepositoryResult<TrunkListing> {
    let mut listing = TrunkListing {
        rows: rows.len(),
        ..TrunkListing::default()
    };
    for row in rows {
        let id = row.id();
        listing.last_id = TrunkId::new(id).or(listing.last_id);
        match row.into_withheld() {
            Ok(trunk) => listing.trunks.push(trunk),
            Err(error) => listing.unreadable.push(UnreadableTrunk {
                id: TrunkId::new(id).ok_or(RepositoryError::Corrupt(error.to_string()))?,
                reason: error.to_string(),
            }),
        }
    }
    Ok(listing)
}

/// Reads every one of `reads` on `conn` (PostgreSQL: in one statement) and gives their rows,
/// one vector per read, in the reads' order, each in id order.
pub(crate) fn fetch(
    conn: &mut DbConnection,
    reads: &[TrunkRead],
) -> QueryResult<Vec<Vec<ShownTrunkRow>>> {
    match conn {
        DbConnection::Postgres(conn) => fetch_together(conn, reads),
        DbConnection::Sqlite(conn) => reads
            .iter()
            .map(|read| {
                let (owner, after, through, rows) = read.bounds();
                sip_trunks::table
                    .filter(sip_trunks::user_id.eq(owner))
                    .filter(sip_trunks::id.gt(after))
                    .filter(sip_trunks::id.le(through))
                    .filter(visible::not_creating())
                    .order(sip_trunks::id.asc())
                    .limit(rows)
                    .select(ShownTrunkRow::as_select())
                    .load(conn)
            })
            .collect(),
    }
}

/// The rows of `reads` in one statement ([`PagesOf`]).
fn fetch_together(
    conn: &mut PgConnection,
    reads: &[TrunkRead],
) -> QueryResult<Vec<Vec<ShownTrunkRow>>> {
    let mut query = PagesOf {
        owners: Vec::with_capacity(reads.len()),
        after: Vec::with_capacity(reads.len()),
        through: Vec::with_capacity(reads.len()),
        rows: Vec::with_capacity(reads.len()),
        select: ShownTrunkRow::as_select(),
        visible: visible::not_creating(),
    };
    for read in reads {
        let (owner, after, through, rows) = read.bounds();
        query.owners.push(owner);
        query.after.push(after);
        query.through.push(through);
        query.rows.push(rows);
    }
    let mut found: Vec<Vec<ShownTrunkRow>> = (0..reads.len()).map(|_| Vec::new()).collect();
    // Each row goes straight to its read's vector: no vector of the whole answer between.
    for answered in
        query.load_iter::<(i64, ShownTrunkRow), diesel::connection::DefaultLoadingMode>(conn)?
    {
        let (n, row) = answered?;
        // `n` counts from 1 (WITH ORDINALITY).
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|index| found.get_mut(index))
            .ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!("a batched read answered for read {n} of {}", reads.len()).into(),
                )
            })?;
        slot.push(row);
    }
    // The lateral scan gives each read's rows in id order; SQL does not promise that the
    // join keeps it, so it is made sure of here (a no-op on rows already in order).
    for rows in &mut found {
        rows.sort_by_key(ShownTrunkRow::id);
    }
    Ok(found)
}

/// The outcome of each read of a batch from its rows ([`fetch`]).
pub(crate) fn outcomes(
    reads: &[TrunkRead],
    fetched: RepositoryResult<Vec<Vec<ShownTrunkRow>>>,
) -> Vec<RepositoryResult<TrunkReadOutcome>> {
    match fetched {
        Ok(rows) => reads
            .iter()
            .zip(rows)
            .map(|(read, rows)| read.outcome(rows))
            .collect(),
        Err(error) => reads.iter().map(|_| Err(error.clone())).collect(),
    }
}

/// The statement of a batch of reads (see the module's header).
#[derive(QueryId)]
struct PagesOf {
    owners: Vec<i64>,
    after: Vec<i64>,
    through: Vec<i64>,
    rows: Vec<i64>,
    select: AsSelect<ShownTrunkRow, Pg>,
    visible: NotCreating,
}

impl Query for PagesOf {
    type SqlType = (BigInt, <AsSelect<ShownTrunkRow, Pg> as Expression>::SqlType);
}

impl QueryFragment<Pg> for PagesOf {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT wanted.n, ");
        self.select.walk_ast(out.reborrow())?;
        out.push_sql(" FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.owners)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.after)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.through)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.rows)?;
        out.push_sql(
            ") WITH ORDINALITY AS wanted(user_id, after_id, through_id, page_rows, n) \
             CROSS JOIN LATERAL (SELECT * FROM sip_trunks \
             WHERE sip_trunks.user_id = wanted.user_id \
             AND sip_trunks.id > wanted.after_id AND sip_trunks.id <= wanted.through_id AND ",
        );
        self.visible.walk_ast(out.reborrow())?;
        out.push_sql(" ORDER BY sip_trunks.id LIMIT wanted.page_rows) AS sip_trunks");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for PagesOf {}
