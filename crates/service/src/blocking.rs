//! Blocking storage work (the ledger's and repositories' synchronous calls) run on the
//! runtime's blocking pool, never on the thread that serves requests, inside the request's
//! [context](crate::context); and storage work the store queues to threads of its own
//! ([`queued`]), awaited without a thread.

use domain::{Answer, RepositoryError, RepositoryResult};

use crate::context;
use crate::observe::Observe;

/// Runs `work` on the blocking pool as part of the current request; a failure worth counting
/// is told to `observe`.
pub async fn blocking<T, F>(observe: &dyn Observe, work: F) -> Result<T, RepositoryError>
where
    F: FnOnce() -> RepositoryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let id = context::current_request_id();
    let outcome = tokio::task::spawn_blocking(move || context::in_request(id, work))
        .await
        .map_err(|_| RepositoryError::Internal("the blocking pool is shut down".into()))?;
    count_failure(observe, &outcome);
    outcome
}

/// Hands `queue` the code that takes the answer of a call the store queues to threads of its
/// own (`SipTrunkRepository::queue_create`, `queue_list`, `queue_get`) and waits for it
/// without holding a thread; a failure worth counting is told to `observe`.
pub async fn queued<T>(
    observe: &dyn Observe,
    queue: impl FnOnce(Answer<T>),
) -> Result<T, RepositoryError>
where
    T: Send + 'static,
{
    let (sender, answer) = tokio::sync::oneshot::channel();
    queue(Box::new(move |outcome| {
        // The caller may have gone (its client hung up): the answer is then dropped.
        let _ = sender.send(outcome);
    }));
    let outcome = answer.await.unwrap_or_else(|_| {
        Err(RepositoryError::Internal(
            "the store dropped a queued call unanswered".into(),
        ))
    });
    count_failure(observe, &outcome);
    outcome
}

/// Tells `observe` of a storage failure worth counting in `outcome` (not of a refusal).
pub fn count_failure<T>(observe: &dyn Observe, outcome: &RepositoryResult<T>) {
    if let Err(error) = outcome {
        let kind = match error {
            RepositoryError::Unavailable(_) => Some("unavailable"),
            RepositoryError::Corrupt(_) => Some("corrupt"),
            RepositoryError::Internal(_) => Some("internal"),
            _ => None,
        };
        if let Some(kind) = kind {
            observe.storage_failed(kind);
        }
    }
}
