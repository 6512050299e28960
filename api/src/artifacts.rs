//! Serving nodes' copies of the artifacts an import builds (walking graph, basemap, address
//! index): [`follow`] loads one kind in the background at start-up, then again whenever its
//! stored version moves — told by [`Event::ArtifactReplaced`] from this cluster, or noticed by
//! polling the store's small version table (an `aednet import` run by another process publishes
//! on no bus). The decoded value is swapped in whole; readers keep the copy they took, so a
//! request never sees half of an old and half of a new one, and nothing waits for a load.

use std::sync::Arc;
use std::time::Duration;

use aednet_core::event::Event;
use aednet_store::prelude::*;
use aednet_store::ArtifactInfo;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::state::AppState;

/// How often the version table is read when no event says anything.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// A decoded artifact with what the store said of it.
#[derive(Debug)]
pub struct Loaded<T> {
    pub info: ArtifactInfo,
    pub value: T,
}

/// The current copy of one artifact kind on this node.
#[derive(Debug)]
pub struct ArtifactSlot<T> {
    kind: &'static str,
    current: RwLock<Option<Arc<Loaded<T>>>>,
    /// The loaded version (0: none yet); dependents (coverage on a new graph) watch it.
    version: watch::Sender<i64>,
}

impl<T> ArtifactSlot<T> {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            current: RwLock::new(None),
            version: watch::channel(0).0,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The copy in use now, `None` before the first load or when none is stored.
    pub fn get(&self) -> Option<Arc<Loaded<T>>> {
        self.current.read().clone()
    }

    /// Changes to the loaded version; `0` while none is loaded.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.version.subscribe()
    }

    /// Puts a value in place (tests; the demo right after generating it).
    pub fn set(&self, loaded: Loaded<T>) {
        let v = loaded.info.version;
        *self.current.write() = Some(Arc::new(loaded));
        self.version.send_replace(v);
    }

    fn clear(&self) {
        *self.current.write() = None;
        self.version.send_replace(0);
    }
}

/// Loads `kind` now and whenever its stored version changes, decoding with `decode` on the
/// background threads ([`crate::background`]). A value that fails to decode is logged and the
/// previous one kept.
pub fn follow<T: Send + Sync + 'static>(
    state: &AppState,
    kind: &'static str,
    decode: fn(&[u8]) -> Result<T, String>,
) -> Arc<ArtifactSlot<T>> {
    let slot = Arc::new(ArtifactSlot::new(kind));
    follow_into(state, slot.clone(), decode);
    slot
}

/// [`follow`] into a slot made beforehand (one that [`AppState`] already holds).
pub fn follow_into<T: Send + Sync + 'static>(
    state: &AppState,
    slot: Arc<ArtifactSlot<T>>,
    decode: fn(&[u8]) -> Result<T, String>,
) {
    let kind = slot.kind;
    let s = slot;
    let store = state.store.clone();
    let pool = state.background.clone();
    let mut events = state.bus.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The version that last failed to decode, so a bad artifact is not decoded every tick.
        let mut failed: i64 = 0;
        loop {
            let stored = match store.artifact_versions().await {
                Ok(v) => v.into_iter().find(|i| i.kind == kind),
                Err(e) => {
                    tracing::warn!(error = %e, kind, "reading artifact versions");
                    None
                }
            };
            let have = *s.version.borrow();
            match stored {
                Some(info) if info.version != have && info.version != failed => {
                    match load(store.as_ref(), &pool, kind, decode).await {
                        Ok(Some(loaded)) => {
                            tracing::info!(
                                kind,
                                version = loaded.info.version,
                                bytes = loaded.info.size_bytes,
                                "artifact loaded"
                            );
                            s.set(loaded);
                        }
                        Ok(None) => s.clear(),
                        Err(e) => {
                            tracing::error!(error = %e, kind, version = info.version, "artifact not usable; keeping the one in use");
                            failed = info.version;
                        }
                    }
                }
                None if have != 0 => s.clear(),
                _ => {}
            }
            // Wake on this kind's event or the poll tick.
            loop {
                tokio::select! {
                    _ = tick.tick() => break,
                    ev = events.recv() => match ev {
                        Ok(Event::ArtifactReplaced { kind: k, .. }) if k == kind => break,
                        Ok(Event::BulkChange { .. }) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    });
}

async fn load<T: Send + 'static>(
    store: &dyn Store,
    pool: &crate::background::Background,
    kind: &'static str,
    decode: fn(&[u8]) -> Result<T, String>,
) -> Result<Option<Loaded<T>>, String> {
    let Some(a) = store.get_artifact(kind).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let info = a.info;
    let value = pool
        .run(move || decode(&a.bytes))
        .await
        .map_err(|e| format!("decode task: {e}"))??;
    Ok(Some(Loaded { info, value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_core::event::LocalBus;
    use aednet_core::SystemClock;

    fn decode(b: &[u8]) -> Result<String, String> {
        let s = String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?;
        if s == "bad" {
            return Err("bad artifact".into());
        }
        Ok(s)
    }

    async fn wait_for(slot: &ArtifactSlot<String>, want: Option<&str>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = slot.get().map(|l| l.value.clone());
            if got.as_deref() == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "slot holds {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn loads_follows_events_and_keeps_the_last_good_copy() {
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        store.put_artifact("t", "{}", b"one").await.unwrap();
        let state = AppState::new(
            store.clone(),
            Arc::new(LocalBus::default()),
            Arc::new(SystemClock),
        );
        let slot = follow(&state, "t", decode);
        wait_for(&slot, Some("one")).await;
        let v = store.put_artifact("t", "{}", b"two").await.unwrap();
        state.bus.publish(Event::ArtifactReplaced {
            kind: "t".into(),
            version: v,
        });
        wait_for(&slot, Some("two")).await;
        assert_eq!(*slot.subscribe().borrow(), 2);
        // A broken replacement is refused; the good copy stays.
        let v = store.put_artifact("t", "{}", b"bad").await.unwrap();
        state.bus.publish(Event::ArtifactReplaced {
            kind: "t".into(),
            version: v,
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_for(&slot, Some("two")).await;
        store.delete_artifact("t").await.unwrap();
        state.bus.publish(Event::BulkChange {
            source: "test".into(),
        });
        wait_for(&slot, None).await;
    }
}
