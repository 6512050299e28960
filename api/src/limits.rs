//! `[limits]`: bounds that keep one kind of work from starving another — open WebSockets per
//! kind, rescuers' location reports per rescuer, and the background threads. (Device sockets are bounded by
//! `[gateway] max_connections`; the coverage routes' own bounds are in `[coverage]`.)
//!
//! A full socket kind answers the upgrade with 503 `busy` and `Retry-After`, before any
//! WebSocket is opened: a client's reconnect loop backs off instead of piling up sockets.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// `[limits]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sustained location reports per second per rescuer (HTTP and `/ws/rescuer` together);
    /// 0 turns the limit off (load tests).
    pub location_per_s: u32,
    /// Reports a rescuer may send at once before the sustained rate applies.
    pub location_burst: u32,
    /// Most open sockets per kind (0 refuses that kind).
    pub ws_coverage: usize,
    pub ws_rescuer: usize,
    pub ws_dispatch: usize,
    pub ws_maintenance: usize,
    /// Threads for background work (coverage maps for other parameters, the live map's
    /// rebuilds, imports): at most this many such jobs run at once ([`crate::background`]).
    pub background_threads: usize,
    /// Run those threads at the lowest normal priority (nice 19), so they only use a core the
    /// callers, devices and dispatch leave idle.
    pub background_low_priority: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            location_per_s: 2,
            location_burst: 10,
            ws_coverage: 1_000,
            ws_rescuer: 50_000,
            ws_dispatch: 500,
            ws_maintenance: 500,
            background_threads: 1,
            background_low_priority: true,
        }
    }
}

/// The live counters behind `[limits]`, shared through [`crate::AppState::limits`].
#[derive(Debug)]
pub struct Limits {
    pub config: LimitsConfig,
    pub ws_coverage: SocketCap,
    pub ws_rescuer: SocketCap,
    pub ws_dispatch: SocketCap,
    pub ws_maintenance: SocketCap,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            ws_coverage: SocketCap::new("coverage", config.ws_coverage),
            ws_rescuer: SocketCap::new("rescuer", config.ws_rescuer),
            ws_dispatch: SocketCap::new("dispatch", config.ws_dispatch),
            ws_maintenance: SocketCap::new("maintenance", config.ws_maintenance),
            config,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(LimitsConfig::default())
    }
}

/// At most `max` open sockets of one kind. The permit lives as long as the socket.
#[derive(Debug)]
pub struct SocketCap {
    kind: &'static str,
    max: usize,
    slots: Arc<Semaphore>,
}

impl SocketCap {
    pub fn new(kind: &'static str, max: usize) -> Self {
        Self {
            kind,
            max,
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// A slot for one more socket, or 503 `busy` with `Retry-After` when all are taken.
    pub fn open(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy {
                message: format!(
                    "too many /ws/{} connections (limit {}); retry later",
                    self.kind, self.max
                ),
                retry_after_s: 5,
            })
    }

    pub fn in_use(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_refuses_when_full_and_frees_on_drop() {
        let cap = SocketCap::new("coverage", 2);
        let a = cap.open().unwrap();
        let _b = cap.open().unwrap();
        let err = cap.open().unwrap_err();
        let (status, body) = err.status_and_body();
        assert_eq!(status.as_u16(), 503);
        assert_eq!(body.error, "busy");
        assert!(body.message.contains("/ws/coverage"), "{}", body.message);
        assert_eq!(cap.in_use(), 2);
        drop(a);
        assert!(cap.open().is_ok(), "a closed socket frees its slot");
        assert!(SocketCap::new("dispatch", 0).open().is_err());
    }
}
