//! Open WebSockets by the token that opened them, so that taking a token's rights away reaches
//! sockets already open, on every node: revoking the token, changing its role, deleting the
//! rescuer it belongs to or a device's AED. Each socket holds a [`SessionWatch`] and closes with
//! [`CLOSE_REVOKED`] when it fires.
//!
//! The changes arrive as [`Event`]s, so on a cluster a revocation on one node reaches the
//! sockets on the others through the bus. A token checked just before a revocation and attached
//! to its socket just after it is caught by the revocation epoch (see [`Sessions::open`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aednet_core::{Event, Role};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use crate::auth::Caller;
use crate::state::AppState;

/// WebSocket close code when the socket's token no longer grants it (revoked, role changed,
/// rescuer or AED deleted). Documented in docs/rescuer-protocol.md and docs/device-protocol.md.
pub const CLOSE_REVOKED: u16 = 4401;

/// The open sockets of this node, by token.
#[derive(Debug, Default)]
pub struct Sessions {
    next: AtomicU64,
    /// Incremented (before the sockets are told) by every revocation on this node.
    epoch: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    token_id: i64,
    role: Role,
    subject: Option<i64>,
    tx: Option<oneshot::Sender<&'static str>>,
}

/// One socket's registration; dropping it unregisters.
#[derive(Debug)]
pub struct SessionWatch {
    id: u64,
    sessions: Option<Arc<Sessions>>,
    rx: Option<oneshot::Receiver<&'static str>>,
}

impl SessionWatch {
    /// Resolves with the reason once the socket's token no longer grants it; never for a socket
    /// opened without a token. Call again only after it was cancelled (it is cancel-safe).
    pub async fn revoked(&mut self) -> &'static str {
        match self.rx.as_mut() {
            Some(rx) => {
                let reason = rx.await.unwrap_or("revoked");
                self.rx = None;
                reason
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        if let Some(s) = &self.sessions {
            s.open.lock().remove(&self.id);
        }
    }
}

impl Sessions {
    /// The revocation epoch; [`Caller`] records it before looking its token up.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Registers a socket opened by `caller`. If any revocation happened on this node since the
    /// caller's token was checked, the check may predate it: the watch fires at once and the
    /// client reconnects (revocations are rare; a needless reconnect is cheap, a revoked socket
    /// left open is not).
    pub fn open(self: &Arc<Self>, caller: &Caller) -> SessionWatch {
        let Some(token) = &caller.token else {
            return SessionWatch {
                id: 0,
                sessions: None,
                rx: None,
            };
        };
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock();
        let mut entry = Entry {
            token_id: token.id,
            role: token.role,
            subject: token.subject_id,
            tx: Some(tx),
        };
        // Read under the lock: a revocation bumps the epoch before it takes the lock to walk the
        // sockets, so either it sees this entry or this sees its epoch.
        if self.epoch() != caller.epoch {
            entry.fire("revoked");
        }
        open.insert(id, entry);
        SessionWatch {
            id,
            sessions: Some(self.clone()),
            rx: Some(rx),
        }
    }

    /// Closes every socket matching `hit`; returns how many. `bump`: a revocation that a
    /// socket being opened right now may have missed (see [`Sessions::open`]).
    fn revoke_where(
        &self,
        reason: &'static str,
        bump: bool,
        hit: impl Fn(&Entry) -> bool,
    ) -> usize {
        if bump {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        let mut open = self.open.lock();
        open.values_mut()
            .filter(|e| hit(e))
            .map(|e| e.fire(reason))
            .filter(|fired| *fired)
            .count()
    }

    /// The sockets of token `id`.
    pub fn revoke_token(&self, id: i64, reason: &'static str) -> usize {
        self.revoke_where(reason, true, |e| e.token_id == id)
    }

    /// The sockets of tokens of `role` bound to `subject` (a rescuer, a device's AED).
    pub fn revoke_subject(&self, role: Role, subject: i64) -> usize {
        self.revoke_where("deleted", true, |e| {
            e.role == role && e.subject == Some(subject)
        })
    }

    /// Every socket whose token is no longer live with the same role and subject is closed:
    /// after missing events, and every [`RECHECK_EVERY`] for revocations that publish none
    /// (`aednet token revoke`, another process).
    async fn recheck(&self, state: &AppState) -> aednet_store::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let live: HashMap<i64, (Role, Option<i64>)> = state
            .store
            .list_tokens()
            .await?
            .into_iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| (t.id, (t.role, t.subject_id)))
            .collect();
        self.revoke_where("revoked", false, |e| {
            live.get(&e.token_id) != Some(&(e.role, e.subject))
        });
        Ok(())
    }

    /// Open sockets (for tests and metrics).
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entry {
    fn fire(&mut self, reason: &'static str) -> bool {
        match self.tx.take() {
            Some(tx) => {
                let _ = tx.send(reason);
                true
            }
            None => false,
        }
    }
}

/// Revokes (in the store) every live token of `role` bound to `subject`, publishing one
/// [`Event::TokenRevoked`] for each: a deleted rescuer or AED keeps no working token.
pub async fn revoke_tokens_of(
    state: &AppState,
    role: Role,
    subject: i64,
) -> aednet_store::Result<()> {
    let tokens = state.store.list_tokens().await?;
    for t in tokens
        .into_iter()
        .filter(|t| t.revoked_at.is_none() && t.role == role && t.subject_id == Some(subject))
    {
        if state.store.revoke_token(t.id).await? {
            state.tokens.clear();
            state.bus.publish(Event::TokenRevoked { id: t.id });
        }
    }
    Ok(())
}

/// Applies one event to the token cache and the open sockets of this node.
pub fn apply(state: &AppState, event: &Event) {
    match *event {
        Event::TokenRevoked { id } => {
            state.tokens.clear();
            state.sessions.revoke_token(id, "revoked");
        }
        Event::TokenChanged { id } => {
            state.tokens.clear();
            state.sessions.revoke_token(id, "role changed");
        }
        Event::RescuerDeleted { id } => {
            state.sessions.revoke_subject(Role::Rescuer, id);
        }
        Event::AedDeleted { id } => {
            state.sessions.revoke_subject(Role::Device, id);
        }
        _ => {}
    }
}

/// How often open sockets are checked against the store, for revocations no event announced.
pub const RECHECK_EVERY: std::time::Duration = crate::auth::TOKEN_CACHE_TTL;

/// Follows the bus: revocations from this node and (on a cluster) from the others. After
/// falling behind the bus, forgets every cached token and rechecks every open socket; and
/// rechecks them every [`RECHECK_EVERY`].
pub fn spawn_watcher(state: &AppState) -> tokio::task::JoinHandle<()> {
    let mut rx = state.bus.subscribe();
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let recheck = tokio::select! {
                m = rx.recv() => match m {
                    Ok(event) => {
                        apply(&state, &event);
                        false
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "sessions fell behind the event bus; rechecking");
                        state.tokens.clear();
                        true
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = tick.tick() => true,
            };
            if recheck {
                if let Err(e) = state.sessions.recheck(&state).await {
                    tracing::error!(error = %e, "rechecking open sockets failed");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_store::TokenRecord;

    fn caller(id: i64, role: Role, subject: Option<i64>, epoch: u64) -> Caller {
        Caller {
            role,
            token: Some(TokenRecord {
                id,
                name: "t".into(),
                role,
                subject_id: subject,
                created_at: chrono::Utc::now(),
                revoked_at: None,
            }),
            epoch,
        }
    }

    #[tokio::test]
    async fn revocation_fires_the_matching_watches_only() {
        let s = Arc::new(Sessions::default());
        let e = s.epoch();
        let mut a = s.open(&caller(1, Role::Rescuer, Some(7), e));
        let mut b = s.open(&caller(2, Role::Rescuer, Some(8), e));
        let mut d = s.open(&caller(3, Role::Device, Some(7), e));
        let mut public = s.open(&Caller {
            role: Role::Public,
            token: None,
            epoch: e,
        });
        assert_eq!(s.len(), 3);
        assert_eq!(s.revoke_token(1, "revoked"), 1);
        assert_eq!(a.revoked().await, "revoked");
        assert_eq!(s.revoke_subject(Role::Device, 7), 1);
        assert_eq!(d.revoked().await, "deleted");
        let pending = |w: &mut SessionWatch| {
            futures::FutureExt::now_or_never(Box::pin(w.revoked())).is_none()
        };
        assert!(pending(&mut b), "another token's socket stays open");
        assert!(
            pending(&mut public),
            "a tokenless socket has nothing to revoke"
        );
        drop(a);
        assert_eq!(s.len(), 2);
    }

    #[tokio::test]
    async fn a_token_checked_before_a_revocation_is_not_attached_after_it() {
        let s = Arc::new(Sessions::default());
        let checked_at = s.epoch();
        // Any revocation between the check and the upgrade.
        s.revoke_token(99, "revoked");
        let mut w = s.open(&caller(1, Role::Dispatcher, None, checked_at));
        assert_eq!(w.revoked().await, "revoked");
    }
}
