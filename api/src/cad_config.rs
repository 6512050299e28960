//! `[cad]`: settings of the link with the dispatch centre's CAD system (the routes are in
//! `aednet_dispatch::cad`). Here so that [`crate::AppState`] carries them to every node's
//! handlers and the dispatch engine.

use aednet_core::Secret;
use serde::{Deserialize, Serialize};

/// `[cad]`: the CAD link; off until a secret is set.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CadConfig {
    /// The shared HMAC secret (at least 32 characters). Unset: the CAD endpoint answers 404.
    pub secret: Option<Secret>,
    /// A request's timestamp may be this many seconds from the server's clock.
    pub replay_window_s: u64,
    /// Where incident events are POSTed (unset: none are sent).
    pub outbound_url: Option<String>,
    /// Tries per event before it is given up (logged).
    pub outbound_max_attempts: u32,
    pub outbound_timeout_s: u64,
}

impl Default for CadConfig {
    fn default() -> Self {
        Self {
            secret: None,
            replay_window_s: 300,
            outbound_url: None,
            outbound_max_attempts: 8,
            outbound_timeout_s: 5,
        }
    }
}

impl std::fmt::Debug for CadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CadConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("replay_window_s", &self.replay_window_s)
            .field("outbound_url", &self.outbound_url)
            .field("outbound_max_attempts", &self.outbound_max_attempts)
            .field("outbound_timeout_s", &self.outbound_timeout_s)
            .finish()
    }
}

impl CadConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = &self.secret {
            if s.expose().len() < 32 {
                return Err("cad.secret must be at least 32 characters".into());
            }
        }
        if self.replay_window_s == 0 || self.replay_window_s > 3600 {
            return Err("cad.replay_window_s must be 1..=3600".into());
        }
        if let Some(u) = &self.outbound_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err("cad.outbound_url must be an http(s) URL".into());
            }
        }
        Ok(())
    }
}
