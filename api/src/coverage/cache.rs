//! Finished public answers (map GeoJSON, weekly profile, district summary), kept by their
//! parameters and the live map's version, so a crowd asking the same question costs one
//! computation. Bounded by count, bytes and age; the least recently used goes first.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// A finished answer: its content type and body, cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) content_type: &'static str,
    pub(super) disposition: Option<&'static str>,
    pub(super) body: Bytes,
}

impl Answer {
    pub(super) fn json(body: String) -> Self {
        Self {
            content_type: "application/json",
            disposition: None,
            body: body.into(),
        }
    }

    /// The response, saying whether it came from the cache (`x-aednet-cache: hit|miss`).
    pub(super) fn into_response(self, hit: bool) -> Response {
        let mut resp = (
            [
                (header::CONTENT_TYPE, self.content_type),
                (
                    header::HeaderName::from_static("x-aednet-cache"),
                    if hit { "hit" } else { "miss" },
                ),
            ],
            self.body,
        )
            .into_response();
        if let Some(d) = self.disposition {
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                header::HeaderValue::from_static(d),
            );
        }
        resp
    }
}

#[derive(Debug)]
struct Entry {
    key: String,
    version: u64,
    stored: Instant,
    used: u64,
    answer: Answer,
}

#[derive(Debug)]
pub(super) struct AnswerCache {
    entries: Mutex<(Vec<Entry>, u64)>,
    max_entries: usize,
    max_bytes: usize,
    ttl: Duration,
}

impl AnswerCache {
    pub(super) fn new(max_entries: usize, max_bytes: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new((Vec::new(), 0)),
            max_entries,
            max_bytes,
            ttl,
        }
    }

    pub(super) fn get(&self, key: &str, version: u64) -> Option<Answer> {
        let mut g = self.entries.lock();
        let (entries, tick) = &mut *g;
        *tick += 1;
        let ttl = self.ttl;
        // Entries of older versions can never be asked for again.
        entries.retain(|e| e.version >= version && e.stored.elapsed() < ttl);
        let e = entries
            .iter_mut()
            .find(|e| e.version == version && e.key == key)?;
        e.used = *tick;
        Some(e.answer.clone())
    }

    pub(super) fn put(&self, key: String, version: u64, answer: Answer) {
        let size = answer.body.len();
        if self.max_entries == 0 || size > self.max_bytes {
            return;
        }
        let mut g = self.entries.lock();
        let (entries, tick) = &mut *g;
        *tick += 1;
        entries.retain(|e| !(e.key == key && e.version == version));
        let mut total: usize = entries.iter().map(|e| e.answer.body.len()).sum::<usize>() + size;
        while !entries.is_empty() && (entries.len() >= self.max_entries || total > self.max_bytes) {
            let oldest = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            total -= entries.swap_remove(oldest).answer.body.len();
        }
        entries.push(Entry {
            key,
            version,
            stored: Instant::now(),
            used: *tick,
            answer,
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().0.len()
    }
}

/// The cache and the slots for computing what it lacks.
#[derive(Debug)]
pub(super) struct Answers {
    cache: AnswerCache,
    busy: Arc<Semaphore>,
    /// `aednet_coverage_answers_total{result="hit|computed|busy"}`.
    counter: prometheus::IntCounterVec,
}

impl Answers {
    pub(super) fn new(
        cache: AnswerCache,
        max_concurrent: usize,
        counter: prometheus::IntCounterVec,
    ) -> Self {
        Self {
            cache,
            busy: Arc::new(Semaphore::new(max_concurrent.max(1))),
            counter,
        }
    }

    /// The answer for `key` at `version` from the cache (`true`), or computed by `compute`
    /// while holding one of the slots — 503 `busy` with `Retry-After` when all are taken —
    /// and kept for the next asker.
    pub(super) async fn get_or_compute(
        &self,
        key: String,
        version: u64,
        compute: impl Future<Output = ApiResult<Answer>>,
    ) -> ApiResult<(Answer, bool)> {
        if let Some(hit) = self.cache.get(&key, version) {
            self.counter.with_label_values(&["hit"]).inc();
            return Ok((hit, true));
        }
        let Ok(_slot) = self.busy.clone().try_acquire_owned() else {
            self.counter.with_label_values(&["busy"]).inc();
            return Err(ApiError::Busy {
                message: "coverage answers are being computed for other clients; retry shortly"
                    .into(),
                retry_after_s: 1,
            });
        };
        let answer = compute.await?;
        self.counter.with_label_values(&["computed"]).inc();
        // Under the version read before computing: if the map moved meanwhile, this entry is
        // never served.
        self.cache.put(key, version, answer.clone());
        Ok((answer, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Answer {
        Answer::json("x".repeat(n))
    }

    #[test]
    fn keyed_by_version_bounded_by_count_and_bytes_lru() {
        let c = AnswerCache::new(2, 100, Duration::from_secs(60));
        c.put("a".into(), 1, answer(10));
        assert!(c.get("a", 1).is_some());
        assert!(c.get("b", 1).is_none());
        c.put("b".into(), 1, answer(10));
        // "a" used more recently than "b": "b" goes when "c" arrives.
        assert!(c.get("a", 1).is_some());
        c.put("c".into(), 1, answer(10));
        assert_eq!(c.len(), 2);
        assert!(c.get("b", 1).is_none() && c.get("a", 1).is_some());
        // Bytes: a 95-byte answer pushes out everything else.
        c.put("d".into(), 1, answer(95));
        assert_eq!(c.len(), 1);
        // Too large for the cache at all: not kept.
        c.put("e".into(), 1, answer(101));
        assert!(c.get("e", 1).is_none());
        // A new map version: the old answers are gone.
        assert!(c.get("d", 2).is_none());
        assert_eq!(c.len(), 0);
    }

    fn counter() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["result"]).unwrap()
    }

    #[tokio::test]
    async fn one_slot_busy_while_computing_hits_still_served() {
        let answers = Answers::new(
            AnswerCache::new(8, 1 << 20, Duration::from_secs(60)),
            1,
            counter(),
        );
        let answers = Arc::new(answers);
        let (a, hit) = answers
            .get_or_compute("cached".into(), 1, async { Ok(answer(3)) })
            .await
            .unwrap();
        assert!(!hit && a.body.len() == 3);
        // A slow computation holds the only slot…
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let answers = answers.clone();
            tokio::spawn(async move {
                answers
                    .get_or_compute("slow".into(), 1, async move {
                        let _ = started_tx.send(());
                        let _ = wait.await;
                        Ok(answer(5))
                    })
                    .await
            })
        };
        started.await.unwrap();
        // …so another computation is refused at once with Retry-After,
        let err = answers
            .get_or_compute("other".into(), 1, async { Ok(answer(1)) })
            .await
            .unwrap_err();
        let (status, body) = err.status_and_body();
        assert_eq!((status.as_u16(), body.error), (503, "busy"));
        let resp = axum::response::IntoResponse::into_response(err);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        // …while a cached answer is still served.
        let (_, hit) = answers
            .get_or_compute("cached".into(), 1, async { unreachable!() })
            .await
            .unwrap();
        assert!(hit);
        release.send(()).unwrap();
        assert!(!slow.await.unwrap().unwrap().1);
        // The slot is free again and the slow answer is cached.
        assert!(
            answers
                .get_or_compute("slow".into(), 1, async { unreachable!() })
                .await
                .unwrap()
                .1
        );
        assert!(answers
            .get_or_compute("other".into(), 1, async { Ok(answer(1)) })
            .await
            .is_ok());
        assert_eq!(answers.counter.with_label_values(&["busy"]).get(), 1);
    }

    #[test]
    fn entries_expire() {
        let c = AnswerCache::new(4, 100, Duration::ZERO);
        c.put("a".into(), 1, answer(1));
        assert!(c.get("a", 1).is_none());
    }
}
