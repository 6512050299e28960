//! Finished public answers (map GeoJSON, weekly profile, district summary), kept by their
//! parameters and the live map's version, so a crowd asking the same question costs one
//! computation. Bounded by count, bytes and age; the least recently used goes first.
//!
//! While every computing slot is taken, a question answered before gets that earlier answer
//! if it is at most `stale` old (`x-aednet-cache: stale`), even if the map has moved since:
//! the live changes reach clients over `/ws/coverage`, and a planner's map a few seconds old
//! is better than a 503. Only a question never answered before is turned away.

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

    /// The response, saying where it came from (`x-aednet-cache: hit|miss|stale`).
    pub(super) fn into_response(self, source: Source) -> Response {
        let mut resp = (
            [
                (header::CONTENT_TYPE, self.content_type),
                (
                    header::HeaderName::from_static("x-aednet-cache"),
                    source.as_str(),
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

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The cache, for the live map's current version.
    Hit,
    /// Computed for this request.
    Miss,
    /// The cache, from an earlier version of the map, because every slot was busy.
    Stale,
}

impl Source {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Stale => "stale",
        }
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
        entries.retain(|e| e.stored.elapsed() < ttl);
        let e = entries
            .iter_mut()
            .find(|e| e.version == version && e.key == key)?;
        e.used = *tick;
        Some(e.answer.clone())
    }

    /// The newest answer for `key` of any version, if stored at most `max_age` ago.
    pub(super) fn get_stale(&self, key: &str, max_age: Duration) -> Option<Answer> {
        let mut g = self.entries.lock();
        let (entries, tick) = &mut *g;
        *tick += 1;
        let e = entries
            .iter_mut()
            .filter(|e| e.key == key && e.stored.elapsed() <= max_age)
            .max_by_key(|e| e.version)?;
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
        // One entry per question: the newer answer replaces any older version's.
        entries.retain(|e| e.key != key);
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
    /// How old an earlier answer may be to stand in while every slot is busy.
    stale: Duration,
    /// `aednet_coverage_answers_total{result="hit|computed|stale|busy"}`.
    counter: prometheus::IntCounterVec,
}

impl Answers {
    pub(super) fn new(
        cache: AnswerCache,
        max_concurrent: usize,
        stale: Duration,
        counter: prometheus::IntCounterVec,
    ) -> Self {
        Self {
            cache,
            busy: Arc::new(Semaphore::new(max_concurrent.max(1))),
            stale,
            counter,
        }
    }

    /// The answer for `key` at `version` from the cache, or computed by `compute` while
    /// holding one of the slots and kept for the next asker. When all slots are taken: an
    /// earlier answer to the same question at most `stale` old, else 503 `busy` with
    /// `Retry-After`.
    pub(super) async fn get_or_compute(
        &self,
        key: String,
        version: u64,
        compute: impl Future<Output = ApiResult<Answer>>,
    ) -> ApiResult<(Answer, Source)> {
        if let Some(hit) = self.cache.get(&key, version) {
            self.counter.with_label_values(&["hit"]).inc();
            return Ok((hit, Source::Hit));
        }
        let Ok(_slot) = self.busy.clone().try_acquire_owned() else {
            if let Some(old) = self.cache.get_stale(&key, self.stale) {
                self.counter.with_label_values(&["stale"]).inc();
                return Ok((old, Source::Stale));
            }
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
        Ok((answer, Source::Miss))
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
        // A new map version: the old answer is not current…
        assert!(c.get("d", 2).is_none());
        // …but may stand in while young enough, and a newer answer replaces it.
        assert!(c.get_stale("d", Duration::from_secs(60)).is_some());
        assert!(c.get_stale("d", Duration::ZERO).is_none());
        assert!(c.get_stale("x", Duration::from_secs(60)).is_none());
        c.put("d".into(), 2, answer(7));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("d", 2).unwrap().body.len(), 7);
        assert_eq!(
            c.get_stale("d", Duration::from_secs(60))
                .unwrap()
                .body
                .len(),
            7
        );
    }

    fn counter() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["result"]).unwrap()
    }

    #[tokio::test]
    async fn one_slot_busy_while_computing_hits_still_served() {
        let answers = Answers::new(
            AnswerCache::new(8, 1 << 20, Duration::from_secs(60)),
            1,
            Duration::from_secs(30),
            counter(),
        );
        let answers = Arc::new(answers);
        let (a, source) = answers
            .get_or_compute("cached".into(), 1, async { Ok(answer(3)) })
            .await
            .unwrap();
        assert!(source == Source::Miss && a.body.len() == 3);
        // A slow computation holds the only slot…
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let answers = answers.clone();
            tokio::spawn(async move {
                answers
                    .get_or_compute("slow".into(), 2, async move {
                        let _ = started_tx.send(());
                        let _ = wait.await;
                        Ok(answer(5))
                    })
                    .await
            })
        };
        started.await.unwrap();
        // …so a question never answered before is refused at once with Retry-After,
        let err = answers
            .get_or_compute("other".into(), 2, async { Ok(answer(1)) })
            .await
            .unwrap_err();
        let (status, body) = err.status_and_body();
        assert_eq!((status.as_u16(), body.error), (503, "busy"));
        let resp = axum::response::IntoResponse::into_response(err);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        // …a current cached answer is still served,
        let (_, source) = answers
            .get_or_compute("cached".into(), 1, async { unreachable!() })
            .await
            .unwrap();
        assert_eq!(source, Source::Hit);
        // …and one answered for an earlier version of the map stands in, marked stale.
        let (a, source) = answers
            .get_or_compute("cached".into(), 2, async { unreachable!() })
            .await
            .unwrap();
        assert_eq!((source, a.body.len()), (Source::Stale, 3));
        let resp = a.into_response(source);
        assert_eq!(resp.headers()["x-aednet-cache"], "stale");
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap().unwrap().1, Source::Miss);
        // The slot is free again and the slow answer is cached.
        let (_, source) = answers
            .get_or_compute("slow".into(), 2, async { unreachable!() })
            .await
            .unwrap();
        assert_eq!(source, Source::Hit);
        // With a free slot, an out-of-date question is computed afresh, not served stale.
        let (a, source) = answers
            .get_or_compute("cached".into(), 2, async { Ok(answer(4)) })
            .await
            .unwrap();
        assert_eq!((source, a.body.len()), (Source::Miss, 4));
        assert_eq!(answers.counter.with_label_values(&["busy"]).get(), 1);
        assert_eq!(answers.counter.with_label_values(&["stale"]).get(), 1);
    }

    #[test]
    fn entries_expire() {
        let c = AnswerCache::new(4, 100, Duration::ZERO);
        c.put("a".into(), 1, answer(1));
        assert!(c.get("a", 1).is_none());
    }
}
