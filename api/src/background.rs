//! Background work: CPU-heavy jobs no caller waits on in the golden minutes — coverage maps
//! for other parameters or resolutions, the live map's rebuild after an import, the weekly
//! profile, imports themselves — run on a fixed number of dedicated threads at the lowest
//! normal scheduling priority (like `nice -n 19`).
//!
//! Why not tokio's blocking pool: it grows to hundreds of threads at normal priority, so two
//! res-10 map builds and an import took both cores from the caller's nearest query (p99 3 ms
//! alone, 46 ms beside them in `load-tests isolation`). Here at most `[limits]
//! background_threads` jobs run at once, the rest wait in order, and the kernel gives those
//! threads a core only when the async workers (callers, device acks, dispatch) leave it idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{ApiError, ApiResult};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool; cheap to share (`Arc`). Its threads end when the last handle is dropped.
#[derive(Debug)]
pub struct Background {
    tx: Mutex<mpsc::Sender<Job>>,
    queued: Arc<AtomicUsize>,
    threads: usize,
    /// Whether the threads run at the lowest priority (setting it may be refused, e.g. in a
    /// container without the capability; the work still runs, bounded in count).
    pub low_priority: bool,
}

impl Background {
    /// `threads` dedicated threads (at least one), at the lowest normal priority when `low`.
    pub fn new(threads: usize, low: bool) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let (lowered_tx, lowered_rx) = mpsc::channel::<bool>();
        for i in 0..threads {
            let (rx, queued, lowered_tx) = (rx.clone(), queued.clone(), lowered_tx.clone());
            std::thread::Builder::new()
                .name(format!("aednet-bg-{i}"))
                .spawn(move || {
                    let ok = !low || lower_priority();
                    let _ = lowered_tx.send(ok);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        queued.fetch_sub(1, Ordering::AcqRel);
                        job();
                    }
                })
                .expect("spawning a background thread");
        }
        drop(lowered_tx);
        let low_priority = low && lowered_rx.iter().take(threads).all(|ok| ok);
        if low && !low_priority {
            tracing::warn!(
                "background threads could not lower their priority; they run at normal priority"
            );
        }
        Self {
            tx: Mutex::new(tx),
            queued,
            threads,
            low_priority,
        }
    }

    /// Runs `f` on a background thread and waits for its result without holding an async
    /// worker. A job that panics answers 500 and leaves the pool working.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> ApiResult<R> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done.send(r);
        });
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.lock().send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Internal("background pool stopped".into()));
        }
        match result.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(ApiError::Internal("background job panicked".into())),
            Err(_) => Err(ApiError::Internal("background job dropped".into())),
        }
    }

    /// Jobs waiting for a thread (not counting those running).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Default for Background {
    fn default() -> Self {
        Self::new(1, true)
    }
}

/// Lowers the calling thread to the lowest normal priority (nice 19 on Linux); `false` when
/// the system refuses. (Also used by `load-tests isolation` for its load generators.)
pub fn lower_priority() -> bool {
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_on_bounded_threads_and_survives_a_panic() {
        let pool = Background::new(1, true);
        // One thread: jobs run one after another, in order.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut waits = Vec::new();
        for i in 0..5 {
            let log = log.clone();
            waits.push(pool.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                log.lock().push(i);
                std::thread::current().name().map(str::to_string)
            }));
        }
        let names = futures::future::join_all(waits).await;
        assert_eq!(*log.lock(), vec![0, 1, 2, 3, 4]);
        for n in names {
            assert_eq!(n.unwrap().as_deref(), Some("aednet-bg-0"));
        }
        let err = pool.run(|| panic!("boom")).await.unwrap_err();
        assert!(matches!(err, ApiError::Internal(_)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "the pool still works");
        assert_eq!(pool.queued(), 0);
    }

    /// The calling thread's nice value: field 19 of `/proc/thread-self/stat`.
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        after_comm
            .split(' ')
            .nth(16)
            .unwrap()
            .parse::<i32>()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn threads_run_at_the_lowest_priority() {
        let pool = Background::new(2, true);
        // Raising priority needs a capability, lowering never does.
        assert!(pool.low_priority);
        let nice = pool.run(own_nice).await.unwrap();
        assert_eq!(nice, 19);
        let normal = Background::new(1, false);
        let nice = normal.run(own_nice).await.unwrap();
        assert!(nice < 19, "{nice}");
    }
}
