//! The reconciler's typed failure: what went wrong in one step, with a label from a fixed
//! set for the metrics (`sip_trunks_reconciler_failures_total{error=...}`), so that an
//! operator can tell a storage outage from a carrier's refusal without reading logs.

use domain::{ProvisionError, RepositoryError};

/// Why a reconciler step (a pass, or one trunk's repair) did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The database: unreachable, a lease lost to another holder, a row that does not read.
    #[error("storage: {0}")]
    Storage(#[from] RepositoryError),
    /// The voice infrastructure refused, timed out or was unreachable.
    #[error("{0}")]
    Infrastructure(#[from] ProvisionError),
}

impl ReconcileError {
    /// Every label [`Self::metric_label`] gives, for metrics that list them up front.
    pub const LABELS: [&'static str; 8] = [
        "lease_lost",
        "storage_unavailable",
        "storage",
        "not_found",
        "number_taken",
        "refused",
        "unauthorized",
        "unavailable",
    ];

    /// A label from [`Self::LABELS`]: never a value a stranger chose.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Storage(RepositoryError::LeaseLost) => "lease_lost",
            Self::Storage(RepositoryError::Unavailable(_)) => "storage_unavailable",
            Self::Storage(RepositoryError::NotFound) => "not_found",
            Self::Storage(_) => "storage",
            Self::Infrastructure(ProvisionError::NumberTaken) => "number_taken",
            Self::Infrastructure(ProvisionError::Refused(_)) => "refused",
            Self::Infrastructure(ProvisionError::Unauthorized(_)) => "unauthorized",
            Self::Infrastructure(ProvisionError::Unavailable(_)) => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_listed_in_labels() {
        let errors = [
            ReconcileError::from(RepositoryError::LeaseLost),
            RepositoryError::Unavailable("down".into()).into(),
            RepositoryError::NotFound.into(),
            RepositoryError::Internal("x".into()).into(),
            RepositoryError::Conflict.into(),
            ProvisionError::NumberTaken.into(),
            ProvisionError::Refused("no".into()).into(),
            ProvisionError::Unauthorized("key".into()).into(),
            ProvisionError::Unavailable("timeout".into()).into(),
        ];
        for error in errors {
            assert!(
                ReconcileError::LABELS.contains(&error.metric_label()),
                "{error}"
            );
        }
    }
}
