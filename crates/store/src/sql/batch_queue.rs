//! Jobs run in batches on threads of the store's own: jobs queued while a thread works go
//! together in its next batch. Creates use it for group commit (one transaction, one fsync for
//! a batch); PostgreSQL reads use it to ask for many pages and trunks in one statement (one
//! round trip instead of one each).
//!
//! A caller queues a job with the code that takes its answer ([`BatchQueue::submit`]) and
//! returns at once, so an async caller needs no thread of its own to wait on: the answer
//! wakes it. [`BatchQueue::run`] waits for the answer instead, for synchronous callers.
//! Each thread takes the jobs queued so far (at most [`MAX_BATCH`]), runs them, and hands
//! each its answer. A lone job is run at once; under load a batch holds what arrived during
//! the previous one. There is no timer.
//!
//! Jobs go to one of several threads by a key (for creates, the owner), so that on a database
//! with concurrent writers (PostgreSQL) accounts commit side by side while one account's jobs
//! still share transactions; SQLite, with one writer at a time, has one writer thread.
//!
//! Each write is answered only after the commit that holds it (or its failure, and then every
//! job of the batch fails with it). If the process dies between the commit and the answers,
//! the jobs are committed and their callers get no answer, as with a single write that dies
//! before its reply. Jobs still queued when the process dies were never begun.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use domain::{RepositoryError, RepositoryResult};

/// The most jobs in one batch: bounds how long a batch holds its locks and how long its last
/// job waits for the first.
pub(crate) const MAX_BATCH: usize = 64;

/// Takes a job's answer, once, on the thread that ran it: it must not block.
pub(crate) type Answer<T> = Box<dyn FnOnce(RepositoryResult<T>) + Send>;

/// A job and whoever waits for its answer.
struct Queued<J, T> {
    job: J,
    answer: Answer<T>,
}

/// Threads running jobs of type `J` in batches, each answered with a `T` or an error.
/// Dropping the queue lets the threads finish the jobs already queued, then joins them.
pub(crate) struct BatchQueue<J, T> {
    workers: Vec<mpsc::Sender<Queued<J, T>>>,
    threads: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static, T: Send + 'static> BatchQueue<J, T> {
    /// Starts `workers` threads (at least one) named after `name`. `run` runs a batch: it
    /// gets the jobs in arrival order and must give one answer per job, in the same order. A
    /// panic in `run`, or a wrong count of answers, fails the batch's jobs instead of leaving
    /// their callers waiting.
    pub(crate) fn start<R>(name: &str, workers: usize, run: R) -> std::io::Result<Self>
    where
        R: Fn(Vec<J>) -> Vec<RepositoryResult<T>> + Send + Sync + 'static,
    {
        let run = Arc::new(run);
        let mut queue = Self {
            workers: Vec::new(),
            threads: Vec::new(),
        };
        for index in 0..workers.max(1) {
            let (sender, receiver) = mpsc::channel();
            let run = run.clone();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || write_batches(&receiver, run.as_ref()))?;
            queue.workers.push(sender);
            queue.threads.push(thread);
        }
        Ok(queue)
    }

    /// Queues `job` on the thread chosen by `key`; `answer` gets its outcome once the batch
    /// that holds it has run (at once, with an error, if the thread has stopped).
    pub(crate) fn submit(&self, key: u64, job: J, answer: Answer<T>) {
        let count = u64::try_from(self.workers.len()).unwrap_or(1).max(1);
        let index = usize::try_from(key % count).unwrap_or(0);
        let Some(worker) = self.workers.get(index) else {
            answer(Err(stopped()));
            return;
        };
        if let Err(mpsc::SendError(queued)) = worker.send(Queued { job, answer }) {
            (queued.answer)(Err(stopped()));
        }
    }

    /// Queues `job` as [`BatchQueue::submit`] does and waits for its answer.
    pub(crate) fn run(&self, key: u64, job: J) -> RepositoryResult<T> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(
            key,
            job,
            Box::new(move |answer| {
                let _ = sender.send(answer);
            }),
        );
        receiver.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

impl<J, T> Drop for BatchQueue<J, T> {
    fn drop(&mut self) {
        self.workers.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a store batch thread panicked");
            }
        }
    }
}

fn stopped() -> RepositoryError {
    RepositoryError::Internal("the store's batch thread has stopped".into())
}

/// A batch thread's life: batches until every sender is gone and the queue is empty.
fn write_batches<J, T>(
    receiver: &mpsc::Receiver<Queued<J, T>>,
    run: &dyn Fn(Vec<J>) -> Vec<RepositoryResult<T>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let (jobs, answers): (Vec<J>, Vec<Answer<T>>) = batch
            .into_iter()
            .map(|queued| (queued.job, queued.answer))
            .unzip();
        let outcomes = run_batch(run, jobs, answers.len());
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // Whoever takes the answer cannot stop the thread.
            if catch_unwind(AssertUnwindSafe(|| answer(outcome))).is_err() {
                log::error!("taking a queued job's answer panicked");
            }
        }
    }
}

/// Runs one batch, turning a panic or a wrong count of answers into an error for every job.
fn run_batch<J, T>(
    run: &dyn Fn(Vec<J>) -> Vec<RepositoryResult<T>>,
    jobs: Vec<J>,
    count: usize,
) -> Vec<RepositoryResult<T>> {
    let failed = |why: &str| {
        log::error!("a batch of queued jobs failed: {why}");
        (0..count)
            .map(|_| Err(RepositoryError::Internal(format!("batched job: {why}"))))
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
    use std::sync::{Barrier, Mutex};
    use std::time::Duration;

    use super::*;

    fn doubling() -> BatchQueue<u32, u32> {
        BatchQueue::start("test-writer", 1, |jobs: Vec<u32>| {
            jobs.into_iter().map(|job| Ok(job * 2)).collect()
        })
        .unwrap()
    }

    #[test]
    fn a_lone_job_is_run_at_once_and_answered() {
        assert_eq!(doubling().run(0, 7), Ok(14));
    }

    #[test]
    fn concurrent_jobs_share_batches_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let queue = Arc::new(
            BatchQueue::start("test-writer", 1, move |jobs: Vec<usize>| {
                counted.fetch_add(1, Ordering::SeqCst);
                // A commit takes a while: the others queue meanwhile.
                std::thread::sleep(Duration::from_millis(20));
                jobs.into_iter().map(|job| Ok(job + 1000)).collect()
            })
            .unwrap(),
        );
        let threads = 32;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let (queue, start) = (queue.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    queue.run(0, n)
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
    fn more_jobs_than_a_batch_holds_are_all_answered_in_batches_no_larger() {
        let largest = Arc::new(AtomicUsize::new(0));
        let seen = largest.clone();
        let queue = BatchQueue::start("test-writer", 1, move |jobs: Vec<usize>| {
            seen.fetch_max(jobs.len(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            jobs.into_iter().map(Ok).collect()
        })
        .unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let count = MAX_BATCH * 3;
        let (done_sender, done) = mpsc::channel();
        for n in 0..count {
            let (answers, done_sender) = (answers.clone(), done_sender.clone());
            queue.submit(
                0,
                n,
                Box::new(move |answer| {
                    answers.lock().unwrap().push(answer);
                    done_sender.send(()).unwrap();
                }),
            );
        }
        for _ in 0..count {
            done.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        let mut answers = answers.lock().unwrap().clone();
        answers.sort_by_key(|answer| *answer.as_ref().unwrap());
        assert_eq!(answers, (0..count).map(Ok).collect::<Vec<_>>());
        assert!(largest.load(Ordering::SeqCst) <= MAX_BATCH);
    }

    #[test]
    fn jobs_go_to_the_writer_their_key_names() {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let seen = threads.clone();
        let queue = BatchQueue::start("test-writer", 4, move |jobs: Vec<u64>| {
            let name = std::thread::current().name().unwrap().to_owned();
            seen.lock().unwrap().push((jobs.clone(), name));
            jobs.into_iter().map(Ok).collect()
        })
        .unwrap();
        for key in [1, 5, 2, 9] {
            assert_eq!(queue.run(key, key), Ok(key));
        }
        let threads = threads.lock().unwrap().clone();
        let writer_of = |key: u64| {
            threads
                .iter()
                .find(|(jobs, _)| jobs.contains(&key))
                .map(|(_, name)| name.clone())
                .unwrap()
        };
        assert_eq!(writer_of(1), "test-writer-1");
        assert_eq!(writer_of(5), "test-writer-1");
        assert_eq!(writer_of(9), "test-writer-1");
        assert_eq!(writer_of(2), "test-writer-2");
    }

    #[test]
    fn one_jobs_failure_is_its_own_and_the_others_still_succeed() {
        let queue = BatchQueue::start("test-writer", 1, |jobs: Vec<i32>| {
            jobs.into_iter()
                .map(|job| {
                    if job < 0 {
                        Err(RepositoryError::Conflict)
                    } else {
                        Ok(job)
                    }
                })
                .collect()
        })
        .unwrap();
        assert_eq!(queue.run(0, -1), Err(RepositoryError::Conflict));
        assert_eq!(queue.run(0, 1), Ok(1));
    }

    #[test]
    fn a_panicking_batch_or_answer_fails_its_jobs_and_the_writer_keeps_working() {
        let queue = BatchQueue::start("test-writer", 1, |jobs: Vec<u8>| match jobs[..] {
            [1] => panic!("the batch runner broke"),
            [2] => Vec::new(),
            _ => jobs.into_iter().map(Ok).collect(),
        })
        .unwrap();
        let answer = queue.run(0, 1);
        assert!(
            matches!(answer, Err(RepositoryError::Internal(_))),
            "{answer:?}"
        );
        let short = queue.run(0, 2);
        assert!(
            matches!(short, Err(RepositoryError::Internal(_))),
            "{short:?}"
        );
        queue.submit(0, 4, Box::new(|_| panic!("the answer's taker broke")));
        assert_eq!(queue.run(0, 3), Ok(3));
    }

    #[test]
    fn dropping_the_queue_answers_what_was_queued_and_stops_its_writers() {
        let queue = BatchQueue::start("test-writer", 2, |jobs: Vec<u32>| {
            std::thread::sleep(Duration::from_millis(5));
            jobs.into_iter().map(Ok).collect()
        })
        .unwrap();
        let (sender, answers) = mpsc::channel();
        for n in 0..10 {
            let sender = sender.clone();
            queue.submit(
                n.into(),
                n,
                Box::new(move |answer| sender.send(answer).unwrap()),
            );
        }
        drop(queue);
        drop(sender);
        let mut answered: Vec<_> = answers.iter().collect();
        answered.sort_by_key(|answer| *answer.as_ref().unwrap());
        assert_eq!(answered, (0..10).map(Ok).collect::<Vec<_>>());
    }
}
