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
    queued_then(observe, queue, Ok).await
}

/// [`queued`], with `then` applied to a successful answer where the store gives it, on the
/// store's thread and as part of the current request (its log lines carry the request's id).
/// For work on what the store made that should end where it was made: what the store
/// allocated is freed on the thread that allocated it, which the allocator does far more
/// cheaply than a free from another thread (docs/performance.md). `then` must not block.
pub async fn queued_then<T, U>(
    observe: &dyn Observe,
    queue: impl FnOnce(Answer<T>),
    then: impl FnOnce(T) -> RepositoryResult<U> + Send + 'static,
) -> Result<U, RepositoryError>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let (sender, answer) = tokio::sync::oneshot::channel();
    let id = context::current_request_id();
    queue(Box::new(move |outcome: RepositoryResult<T>| {
        let outcome = outcome.and_then(|value| context::in_request(id, || then(value)));
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Default)]
    struct Failures(Mutex<Vec<&'static str>>);

    impl Observe for Failures {
        fn storage_failed(&self, kind: &'static str) {
            self.0.lock().unwrap().push(kind);
        }
    }

    /// A store that answers `outcome` from a thread of its own, as the SQL store's readers do.
    fn answer_from_another_thread<T: Send + 'static>(
        outcome: RepositoryResult<T>,
    ) -> impl FnOnce(Answer<T>) {
        move |answer| {
            std::thread::spawn(move || answer(outcome));
        }
    }

    #[tokio::test]
    async fn then_runs_on_the_answering_thread_as_part_of_the_request() {
        let observe = Failures::default();
        let caller = std::thread::current().id();
        let seen = Arc::new(Mutex::new(None));
        let seen_by_then = seen.clone();
        let work = queued_then(
            &observe,
            answer_from_another_thread(Ok(20)),
            move |value: i32| {
                *seen_by_then.lock().unwrap() =
                    Some((std::thread::current().id(), context::current_request_id()));
                Ok(value + 1)
            },
        );
        let outcome = context::with_request_id(Arc::from("req-7"), work).await;
        assert_eq!(outcome, Ok(21));
        let (thread, request) = seen.lock().unwrap().take().unwrap();
        assert_ne!(thread, caller);
        assert_eq!(request.as_deref(), Some("req-7"));
        assert!(observe.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_call_skips_then_and_is_counted() {
        let observe = Failures::default();
        let outcome = queued_then(
            &observe,
            answer_from_another_thread::<i32>(Err(RepositoryError::Unavailable("down".into()))),
            |_| -> RepositoryResult<i32> { panic!("then ran on a failure") },
        )
        .await;
        assert_eq!(outcome, Err(RepositoryError::Unavailable("down".into())));
        assert_eq!(*observe.0.lock().unwrap(), ["unavailable"]);
    }

    #[tokio::test]
    async fn a_failure_of_then_is_the_answer_and_is_counted() {
        let observe = Failures::default();
        let outcome = queued_then(&observe, answer_from_another_thread(Ok(1)), |_| {
            Err::<i32, _>(RepositoryError::Internal("cannot render".into()))
        })
        .await;
        assert_eq!(
            outcome,
            Err(RepositoryError::Internal("cannot render".into()))
        );
        assert_eq!(*observe.0.lock().unwrap(), ["internal"]);
    }

    #[tokio::test]
    async fn a_call_the_store_drops_unanswered_is_an_internal_failure() {
        let observe = Failures::default();
        let outcome = queued(&observe, |answer: Answer<i32>| drop(answer)).await;
        assert!(matches!(outcome, Err(RepositoryError::Internal(_))));
    }
}
