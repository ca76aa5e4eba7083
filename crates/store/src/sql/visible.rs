//! `provisioning_state <> 1` ("not being created"), written into the SQL rather than bound.
//!
//! SQLite (3.50, bundled) re-prepares a cached statement on every new binding of a parameter
//! the planner looked at: one compared with a partial index's `WHERE` (here
//! `sip_trunks_provisioning_due … WHERE provisioning_state <> 0`), and a `LIMIT`. Diesel binds
//! every value, so each list or get parsed and planned its SQL again: the largest share of a
//! cache-off read's CPU (docs/performance.md; measured with `sqlite3_stmt_status`, 2,000
//! re-prepares in 2,000 runs, 13 µs a run against 5 µs without). A literal here, and no bound
//! `LIMIT` on the hot reads, keep the prepared statement.

use diesel::backend::Backend;
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping,
};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::QueryResult;

use super::CREATING;

// The literal below says 1: keep it in step with the constant.
const _: () = assert!(CREATING == 1);

/// The filter for trunks clients may see: `"sip_trunks"."provisioning_state" <> 1`.
#[derive(Debug, Clone, Copy, QueryId)]
pub(crate) struct NotCreating;

/// [`NotCreating`].
pub(crate) fn not_creating() -> NotCreating {
    NotCreating
}

impl Expression for NotCreating {
    type SqlType = diesel::sql_types::Bool;
}

impl<DB: Backend> QueryFragment<DB> for NotCreating {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("\"sip_trunks\".\"provisioning_state\" <> 1");
        Ok(())
    }
}

impl<QS> AppearsOnTable<QS> for NotCreating {}

impl<QS> SelectableExpression<QS> for NotCreating {}

impl<GroupBy> ValidGrouping<GroupBy> for NotCreating {
    type IsAggregate = is_aggregate::Never;
}
