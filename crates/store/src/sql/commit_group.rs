//! Group commit: writes of this process that arrive while another batch is committing wait
//! for it, then go together in one transaction, with one commit (one fsync).
//!
//! There is no timer and no background thread. The first writer to find nobody committing
//! leads: it takes every job queued so far (its own included, at most [`MAX_BATCH`]), runs
//! them, hands each its result and steps down. Writers that queued meanwhile are woken, and
//! the first of them whose job is still queued leads the next batch. A lone writer therefore
//! commits at once, exactly as without grouping, and under load a batch holds what arrived
//! during the previous commit.
//!
//! Each job is still answered only after the commit that holds it: a follower returns when
//! the leader has committed (or failed, and then every job of the batch fails with it).
//! If the process dies between the commit and the answers, the jobs are committed and their
//! callers get no answer, as with a single write that dies before its reply.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};

use domain::{RepositoryError, RepositoryResult};

/// The most jobs in one transaction: bounds how long a batch holds its locks and how long its
/// last job waits for the first.
pub(crate) const MAX_BATCH: usize = 64;

/// Jobs of type `J` waiting to be committed together, each answered with a `T` or an error.
pub(crate) struct CommitGroup<J, T> {
    state: Mutex<Queue<J, T>>,
    /// Woken when a batch is answered (and so when nobody leads any more).
    answered: Condvar,
}

/// What the group's mutex guards.
struct Queue<J, T> {
    /// Jobs not yet taken by a leader, with their tickets, in arrival order.
    waiting: Vec<(u64, J)>,
    /// Answers not yet collected, by ticket.
    answers: HashMap<u64, RepositoryResult<T>>,
    /// Whether a leader is running a batch now.
    leading: bool,
    next_ticket: u64,
}

impl<J, T> Default for CommitGroup<J, T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(Queue {
                waiting: Vec::new(),
                answers: HashMap::new(),
                leading: false,
                next_ticket: 0,
            }),
            answered: Condvar::new(),
        }
    }
}

impl<J, T> CommitGroup<J, T> {
    /// Queues `job`, waits until a batch that holds it is committed, and gives its answer.
    ///
    /// `run` commits a batch: it gets the jobs in arrival order and must give one answer per
    /// job, in the same order. Every caller passes the same logic; whichever caller leads
    /// runs it, for its own job and those queued with it. A panic in `run` fails the batch's jobs instead of leaving their callers
    /// waiting.
    pub(crate) fn submit(
        &self,
        job: J,
        run: impl Fn(Vec<J>) -> Vec<RepositoryResult<T>>,
    ) -> RepositoryResult<T> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, job));
        loop {
            if let Some(answer) = queue.answers.remove(&ticket) {
                return answer;
            }
            if queue.leading {
                queue = self
                    .answered
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead the oldest jobs; with more than a batch queued, this caller's own may wait
            // for the next batch, which it may lead too.
            queue.leading = true;
            let take = queue.waiting.len().min(MAX_BATCH);
            let (tickets, jobs): (Vec<u64>, Vec<J>) = queue.waiting.drain(..take).unzip();
            drop(queue);
            let answers = run_batch(&run, jobs, tickets.len());
            queue = self.lock();
            queue.answers.extend(tickets.into_iter().zip(answers));
            queue.leading = false;
            self.answered.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<J, T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs one batch, turning a panic or a wrong count of answers into an error for every job.
fn run_batch<J, T>(
    run: &impl Fn(Vec<J>) -> Vec<RepositoryResult<T>>,
    jobs: Vec<J>,
    count: usize,
) -> Vec<RepositoryResult<T>> {
    let failed = |why: &str| {
        log::error!("a grouped write failed: {why}");
        (0..count)
            .map(|_| Err(RepositoryError::Internal(format!("grouped write: {why}"))))
            .collect()
    };
    match catch_unwind(AssertUnwindSafe(|| run(jobs))) {
        Ok(answers) if answers.len() == count => answers,
        Ok(_) => failed("a batch gave the wrong number of answers"),
        Err(_) => failed("a batch panicked"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn a_lone_job_is_run_at_once_in_a_batch_of_its_own() {
        let group = CommitGroup::<u32, u32>::default();
        let answer = group.submit(7, |jobs| {
            assert_eq!(jobs, vec![7]);
            jobs.into_iter().map(|job| Ok(job * 2)).collect()
        });
        assert_eq!(answer, Ok(14));
    }

    #[test]
    fn concurrent_jobs_share_batches_and_each_gets_its_own_answer() {
        let group = Arc::new(CommitGroup::<usize, usize>::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let threads = 32;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let (group, batches, start) = (group.clone(), batches.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    group.submit(n, |jobs| {
                        batches.fetch_add(1, Ordering::SeqCst);
                        // A commit takes a while: the others queue meanwhile.
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        jobs.into_iter().map(|job| Ok(job + 1000)).collect()
                    })
                })
            })
            .collect();
        for (n, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.join().unwrap(), Ok(n + 1000));
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            batches < threads,
            "{threads} jobs that arrived together took {batches} batches"
        );
    }

    #[test]
    fn more_jobs_than_a_batch_holds_are_all_answered() {
        let group = Arc::new(CommitGroup::<usize, usize>::default());
        let threads = MAX_BATCH * 3;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let (group, start) = (group.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    group.submit(n, |jobs| {
                        assert!(jobs.len() <= MAX_BATCH);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        jobs.into_iter().map(Ok).collect()
                    })
                })
            })
            .collect();
        for (n, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.join().unwrap(), Ok(n));
        }
    }

    #[test]
    fn one_jobs_failure_is_its_own_and_the_others_still_succeed() {
        let group = CommitGroup::<i32, i32>::default();
        let run = |jobs: Vec<i32>| {
            jobs.into_iter()
                .map(|job| {
                    if job < 0 {
                        Err(RepositoryError::Conflict)
                    } else {
                        Ok(job)
                    }
                })
                .collect()
        };
        assert_eq!(group.submit(-1, run), Err(RepositoryError::Conflict));
        assert_eq!(group.submit(1, run), Ok(1));
    }

    #[test]
    fn a_panicking_batch_fails_its_jobs_and_the_group_keeps_working() {
        let group = CommitGroup::<u8, u8>::default();
        let answer = group.submit(1, |_| panic!("the batch runner broke"));
        assert!(
            matches!(answer, Err(RepositoryError::Internal(_))),
            "{answer:?}"
        );
        let short = group.submit(2, |_| Vec::new());
        assert!(
            matches!(short, Err(RepositoryError::Internal(_))),
            "{short:?}"
        );
        assert_eq!(
            group.submit(3, |jobs| jobs.into_iter().map(Ok).collect()),
            Ok(3)
        );
    }
}
