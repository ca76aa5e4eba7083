//! The context a piece of work runs in: the id of the request it serves. A leaf: it depends
//! on nothing, and everything may use it. The id follows a request's future
//! ([`with_request_id`]) and the blocking work it hands to the pool ([`crate::blocking`]), so
//! every log line written for the request, in any crate, can carry it (the API's log formats
//! read [`current_request_id`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

thread_local! {
    static CURRENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The id of the request whose work runs on this thread now, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `work` as part of request `id` (its log lines carry it).
pub fn in_request<T>(id: Option<Arc<str>>, work: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|current| current.replace(id));
    let result = work();
    CURRENT.with(|current| *current.borrow_mut() = previous);
    result
}

/// `future`, each poll of it made as part of request `id`.
pub fn with_request_id<F: Future>(id: Arc<str>, future: F) -> WithRequestId<F> {
    WithRequestId {
        id,
        future: Box::pin(future),
    }
}

/// See [`with_request_id`].
pub struct WithRequestId<F> {
    id: Arc<str>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for WithRequestId<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let id = self.id.clone();
        let future = self.future.as_mut();
        in_request(Some(id), || future.poll(cx))
    }
}
