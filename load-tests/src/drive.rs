//! Closed-loop and open-loop load with HDR histograms (microseconds).
//!
//! Open loop schedules request i at `start + i / rate` whatever happened before, and measures
//! its latency from that intended start: a stalled server makes every queued request late and
//! the histogram shows it (no coordinated omission).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::LatLon;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::targets::Target;

#[derive(Debug, Clone)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub answers: u64,
    pub hist: Histogram<u64>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    /// Latency at quantile `q` in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    pub fn mean_answers(&self) -> f64 {
        self.answers as f64 / self.requests.max(1) as f64
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// `concurrency` workers each send the next query as soon as the last one is answered.
pub async fn closed_loop(
    target: Arc<Target>,
    queries: Arc<Vec<LatLon>>,
    k: usize,
    concurrency: usize,
    duration: Duration,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, queries, next) = (target.clone(), queries.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut h, mut errors, mut answers) = (histogram(), 0u64, 0u64);
            while Instant::now() < deadline {
                let q = queries[next.fetch_add(1, Ordering::Relaxed) % queries.len()];
                let t = Instant::now();
                match target.query(q, k).await {
                    Ok(n) => answers += n as u64,
                    Err(_) => errors += 1,
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            (h, errors, answers)
        }));
    }
    let mut out = Outcome {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        answers: 0,
        hist: histogram(),
    };
    for t in tasks {
        if let Ok((h, e, a)) = t.await {
            let _ = out.hist.add(&h);
            out.errors += e;
            out.answers += a;
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.requests = out.hist.len();
    out
}

/// Requests at a fixed `rate` per second for `duration`, at most `max_in_flight` at once
/// (beyond that the schedule slips and the slip counts as latency).
pub async fn open_loop(
    target: Arc<Target>,
    queries: Arc<Vec<LatLon>>,
    k: usize,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> Outcome {
    let hist = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(AtomicU64::new(0));
    let answers = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    // The schedule runs on its own thread: std's sleep wakes within tens of microseconds, the
    // runtime's timer only at millisecond ticks, which would count as latency.
    let handle = tokio::runtime::Handle::current();
    let scheduler = {
        let (hist, errors, answers) = (hist.clone(), errors.clone(), answers.clone());
        std::thread::spawn(move || {
            let mut tasks = Vec::with_capacity(total as usize);
            for i in 0..total {
                let intended = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let permit = match permits.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => match handle.block_on(permits.clone().acquire_owned()) {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let (target, queries, hist, errors, answers) = (
                    target.clone(),
                    queries.clone(),
                    hist.clone(),
                    errors.clone(),
                    answers.clone(),
                );
                tasks.push(handle.spawn(async move {
                    let q = queries[i as usize % queries.len()];
                    match target.query(q, k).await {
                        Ok(n) => {
                            answers.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = hist.lock().record(intended.elapsed().as_micros() as u64);
                    drop(permit);
                }));
            }
            tasks
        })
    };
    let tasks = tokio::task::spawn_blocking(move || scheduler.join().unwrap_or_default())
        .await
        .unwrap_or_default();
    for t in tasks {
        let _ = t.await;
    }
    let hist = hist.lock().clone();
    Outcome {
        requests: hist.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        answers: answers.load(Ordering::Relaxed),
        hist,
    }
}
