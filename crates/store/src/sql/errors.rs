//! Mapping Diesel and pool errors onto the domain's `RepositoryError`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::RepositoryError;

/// Messages by which SQLite and libpq say "not now" rather than "never".
const TRANSIENT: [&str; 9] = [
    "database is locked",
    "database table is locked",
    "server closed the connection",
    "terminating connection",
    "no connection to the server",
    "could not receive data",
    "could not send data",
    "connection refused",
    "the database system is",
];

/// The repository error for a failed query.
pub(crate) fn from_diesel(error: DieselError) -> RepositoryError {
    match error {
        DieselError::NotFound => RepositoryError::NotFound,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            RepositoryError::Conflict
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            RepositoryError::NotFound
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            RepositoryError::Unavailable(info.message().to_owned())
        }
        DieselError::DatabaseError(_, info) if is_transient(info.message()) => {
            RepositoryError::Unavailable(info.message().to_owned())
        }
        DieselError::BrokenTransactionManager => {
            RepositoryError::Unavailable("the connection was left in a broken transaction".into())
        }
        other if is_transient(&other.to_string()) => {
            RepositoryError::Unavailable(other.to_string())
        }
        other => RepositoryError::Internal(other.to_string()),
    }
}

/// The repository error for a connection that could not be had in time.
pub(crate) fn from_pool(error: r2d2::Error) -> RepositoryError {
    RepositoryError::Unavailable(error.to_string())
}

fn is_transient(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_constraint_violations_map_to_domain_errors() {
        assert!(matches!(
            from_diesel(DieselError::NotFound),
            RepositoryError::NotFound
        ));
        assert!(matches!(
            from_diesel(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("dup".to_string())
            )),
            RepositoryError::Conflict
        ));
    }

    #[test]
    fn a_locked_database_is_unavailable_not_internal() {
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_string()),
        );
        assert!(matches!(
            from_diesel(error),
            RepositoryError::Unavailable(_)
        ));
    }
}
