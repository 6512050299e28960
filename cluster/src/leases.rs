//! [`PgLeases`]: incident leases as PostgreSQL session-level advisory locks.
//!
//! One dedicated connection (not a pool: advisory locks belong to a session, and a pool would
//! hand the lock's session to someone else) holds every lease of this node. When that session
//! ends, for whatever reason, PostgreSQL frees all its locks at once, which is exactly how a dead
//! node hands its incidents over. A live node whose session broke (PostgreSQL restarting) takes
//! its leases again on the next session before anything else, so its incidents stay with it
//! unless another node was quicker.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aednet_core::{Leases, PeerError};
use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// The first key of every aednet lease (`pg_try_advisory_lock(int4, int4)`): "AEDN" in ASCII,
/// so aednet's locks do not collide with another application's single-key locks.
pub const LEASE_NAMESPACE: i32 = 0x4145_444E;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// This node's incident leases.
pub struct PgLeases {
    node_id: String,
    /// Holds the password if the URL had one: never logged, and not in `Debug`.
    options: PgConnectOptions,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
    held: Mutex<HashSet<i64>>,
    /// What was held when the session last broke: taken again first thing on the next
    /// session, before the other nodes can see those incidents as orphans.
    wanted: Mutex<HashSet<i64>>,
    lost: watch::Sender<u64>,
    heartbeat: Duration,
    heartbeat_task: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for PgLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLeases")
            .field("node_id", &self.node_id)
            .field("held", &self.held())
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl PgLeases {
    /// Opens the lease session (`application_name` = `aednet-leases <node_id>`) and starts its
    /// heartbeat. Fails when PostgreSQL cannot be reached now.
    pub async fn connect(
        database_url: &str,
        node_id: &str,
        heartbeat: Duration,
    ) -> anyhow::Result<Arc<PgLeases>> {
        // The parse error must not echo the URL (it may carry a password).
        let options = PgConnectOptions::from_str(database_url)
            .map_err(|_| anyhow::anyhow!("leases: the database URL does not parse"))?
            .application_name(&format!("aednet-leases {node_id}"))
            // The server notices a vanished client (no FIN: power cut, partition) after about
            // 5 s idle + 3 probes 1 s apart, and ends the session, freeing its leases.
            .options([
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "1"),
                ("tcp_keepalives_count", "3"),
            ])
            // One `SELECT 1` a second would otherwise flood debug logs.
            .disable_statement_logging();
        let conn = open(&options, heartbeat)
            .await
            .context("leases: connecting to PostgreSQL")?;
        let leases = Arc::new(PgLeases {
            node_id: node_id.to_string(),
            options,
            conn: tokio::sync::Mutex::new(Some(conn)),
            held: Mutex::new(HashSet::new()),
            wanted: Mutex::new(HashSet::new()),
            lost: watch::channel(0).0,
            heartbeat,
            heartbeat_task: Mutex::new(None),
        });
        let task = tokio::spawn(heartbeat_loop(Arc::downgrade(&leases)));
        if let Ok(mut slot) = leases.heartbeat_task.lock() {
            *slot = Some(task.abort_handle());
        }
        Ok(leases)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The incidents whose lease this node holds, sorted.
    pub fn held(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.held_set().iter().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Whether the lease session is open now.
    pub async fn is_connected(&self) -> bool {
        self.conn.lock().await.is_some()
    }

    fn held_set(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        // A panic while holding this lock cannot leave the set half-updated.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wanted_set(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn query_timeout(&self) -> Duration {
        self.heartbeat.max(Duration::from_secs(1))
    }

    /// The session broke (or may have): every lease may be gone.
    fn lose(&self, conn: &mut Option<PgConnection>, why: &str) {
        *conn = None;
        let held = std::mem::take(&mut *self.held_set());
        self.wanted_set().extend(held.iter().copied());
        self.lost.send_modify(|n| *n += 1);
        tracing::warn!(
            node = %self.node_id, held = held.len(), reason = why,
            "lease session lost; its incidents must be taken again"
        );
    }

    /// On a new session, before anyone else can use it: takes again the leases the broken
    /// one held (those another node took meanwhile stay theirs). Returns how many. On an
    /// error nothing changes (the session is dropped, and with it whatever it locked).
    async fn retake(&self, c: &mut PgConnection) -> Result<usize, sqlx::Error> {
        let ids: Vec<i64> = self.wanted_set().iter().copied().collect();
        let mut got = Vec::new();
        for id in ids {
            let Ok(key) = lease_key(id) else { continue };
            let locked = tokio::time::timeout(
                self.query_timeout(),
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1, $2)")
                    .bind(LEASE_NAMESPACE)
                    .bind(key)
                    .fetch_one(&mut *c),
            )
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
            if locked {
                got.push((id, key));
            }
        }
        // Released (their incident closed) while the session was down: not wanted now.
        let unwanted: Vec<(i64, i32)> = {
            let wanted = self.wanted_set();
            got.iter()
                .copied()
                .filter(|(id, _)| !wanted.contains(id))
                .collect()
        };
        for (_, key) in &unwanted {
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
                .bind(LEASE_NAMESPACE)
                .bind(*key)
                .fetch_one(&mut *c)
                .await?;
        }
        let mut held = self.held_set();
        held.extend(
            got.iter()
                .filter(|g| !unwanted.contains(g))
                .map(|(id, _)| *id),
        );
        let n = held.len();
        drop(held);
        // Those another node holds now are not asked for again.
        self.wanted_set().clear();
        Ok(n)
    }
}

impl Drop for PgLeases {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.heartbeat_task.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }
}

async fn open(options: &PgConnectOptions, timeout: Duration) -> anyhow::Result<PgConnection> {
    let timeout = timeout.max(Duration::from_secs(5));
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => anyhow::bail!("timed out after {timeout:?}"),
    }
}

fn lease_key(incident_id: i64) -> Result<i32, PeerError> {
    i32::try_from(incident_id).map_err(|_| {
        PeerError::Transport(format!(
            "incident {incident_id} does not fit an advisory lock key (int4)"
        ))
    })
}

async fn heartbeat_loop(leases: Weak<PgLeases>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(this) = leases.upgrade() else {
            return;
        };
        let connected = {
            let mut conn = this.conn.lock().await;
            if let Some(c) = conn.as_mut() {
                let ping = tokio::time::timeout(
                    this.query_timeout(),
                    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(c),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => this.lose(&mut conn, &format!("heartbeat: {e}")),
                    Err(_) => this.lose(&mut conn, "heartbeat timed out"),
                }
            }
            conn.is_some()
        };
        let wait = if connected {
            this.heartbeat
        } else {
            // Opened without holding the session lock, so that `try_acquire` fails at once
            // while PostgreSQL is unreachable instead of waiting for the connect timeout.
            let reopened = match open(&this.options, this.heartbeat).await {
                Ok(mut c) => match this.retake(&mut c).await {
                    Ok(n) => Ok((c, n)),
                    Err(e) => Err(anyhow::anyhow!("taking the leases again: {e}")),
                },
                Err(e) => Err(e),
            };
            match reopened {
                Ok((c, retaken)) => {
                    *this.conn.lock().await = Some(c);
                    backoff = Duration::from_millis(100);
                    tracing::info!(node = %this.node_id, retaken, "lease session reopened");
                    this.heartbeat
                }
                Err(e) => {
                    tracing::warn!(node = %this.node_id, error = %e, "lease session cannot reopen; retrying");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            }
        };
        drop(this);
        tokio::time::sleep(wait).await;
    }
}

#[async_trait::async_trait]
impl Leases for PgLeases {
    async fn try_acquire(&self, incident_id: i64) -> Result<bool, PeerError> {
        let key = lease_key(incident_id)?;
        if self.held_set().contains(&incident_id) {
            return Ok(true);
        }
        let mut conn = self.conn.lock().await;
        // Taken while this call waited for the session.
        if self.held_set().contains(&incident_id) {
            return Ok(true);
        }
        let Some(c) = conn.as_mut() else {
            return Err(PeerError::Transport(
                "the lease session to PostgreSQL is down".into(),
            ));
        };
        let result = tokio::time::timeout(
            self.query_timeout(),
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1, $2)")
                .bind(LEASE_NAMESPACE)
                .bind(key)
                .fetch_one(c),
        )
        .await;
        match result {
            Ok(Ok(true)) => {
                self.held_set().insert(incident_id);
                Ok(true)
            }
            Ok(Ok(false)) => Ok(false),
            Ok(Err(e)) => {
                // The lock may or may not have been taken: only ending the session is sure.
                self.lose(&mut conn, &format!("try_acquire: {e}"));
                Err(PeerError::Transport(format!("lease query failed: {e}")))
            }
            Err(_) => {
                self.lose(&mut conn, "try_acquire timed out");
                Err(PeerError::Transport("lease query timed out".into()))
            }
        }
    }

    async fn release(&self, incident_id: i64) {
        let Ok(key) = lease_key(incident_id) else {
            return;
        };
        self.wanted_set().remove(&incident_id);
        let mut conn = self.conn.lock().await;
        if !self.held_set().contains(&incident_id) {
            return;
        }
        let Some(c) = conn.as_mut() else {
            return;
        };
        let result = tokio::time::timeout(
            self.query_timeout(),
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
                .bind(LEASE_NAMESPACE)
                .bind(key)
                .fetch_one(c),
        )
        .await;
        match result {
            Ok(Ok(_)) => {
                self.held_set().remove(&incident_id);
            }
            Ok(Err(e)) => self.lose(&mut conn, &format!("release: {e}")),
            Err(_) => self.lose(&mut conn, "release timed out"),
        }
    }

    fn lost(&self) -> watch::Receiver<u64> {
        self.lost.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_keys_are_int4() {
        assert_eq!(lease_key(42), Ok(42));
        assert!(matches!(
            lease_key(i64::from(i32::MAX) + 1),
            Err(PeerError::Transport(m)) if m.contains("2147483648")
        ));
        assert_eq!(LEASE_NAMESPACE.to_be_bytes(), *b"AEDN");
    }
}
