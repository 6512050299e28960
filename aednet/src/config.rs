//! Configuration, layered: built-in defaults < a TOML file (`--config`, or `aednet.toml` in the
//! working directory if present) < environment variables `AEDNET_*` < command-line flags.
//!
//! The database URL may carry a password: `Debug` redacts it, and it is never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// `sqlite://path/to/file.db` (embedded default) or `postgres://user@host/db`.
    pub database_url: String,
    /// Public HTTP listener.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listener, kept off the public port.
    pub metrics_listen: SocketAddr,
    /// The caller lane: when set, the caller's nearest queries (`/api/v1/aeds/nearest`,
    /// `/api/v1/stations/nearest`) are also served here, alone, by a thread of their own
    /// (see [`crate::server::CallerLane`]); a reverse proxy routes those paths to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_listen: Option<SocketAddr>,
    /// `pretty` (default) or `json` log lines on stderr.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `aednet=debug,sqlx=warn`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// Walking model for fetch times (`[walk]`, e.g. `AEDNET_WALK__SPEED_MPS=1.2`).
    pub walk: aednet_geoindex::WalkModel,
    /// Per-client limits on the public endpoints (`[public]`).
    pub public: aednet_mobile_api::PublicLimits,
    /// Device telemetry limits and timing (`[gateway]`).
    pub gateway: aednet_device_gateway::GatewayConfig,
    /// Who is alerted and how (`[dispatch]`): waves, roles, time-outs.
    pub dispatch: aednet_dispatch::Policy,
    /// Four-minute coverage (`[coverage]`): mode, budget, resolution, population grid.
    pub coverage: aednet_api::coverage::CoverageConfig,
    /// Several nodes over one PostgreSQL (`[cluster]`, e.g.
    /// `AEDNET_CLUSTER__NATS_URL=nats://127.0.0.1:4222`); unset is one node.
    pub cluster: aednet_cluster::ClusterConfig,
    /// Open sockets per kind, location reports per rescuer (`[limits]`).
    pub limits: aednet_api::limits::LimitsConfig,
    /// Offer delivery beyond the socket (`[notify]`, `[notify.web_push]`, `[notify.webhook]`):
    /// Web Push keys, the webhook URL and secret (both redacted in Debug).
    pub notify: aednet_notify::NotifyConfig,
    /// The link with the dispatch centre's CAD system (`[cad]`, e.g.
    /// `AEDNET_CAD__SECRET=…`); off until a secret is set. See docs/cad.md.
    pub cad: aednet_api::cad_config::CadConfig,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://aednet-data/aednet.db".into(),
            listen: "127.0.0.1:8080".parse().expect("static address"),
            metrics_listen: "127.0.0.1:9090".parse().expect("static address"),
            caller_listen: None,
            log_format: LogFormat::Pretty,
            log_level: "info,sqlx=warn".into(),
            walk: aednet_geoindex::WalkModel::default(),
            public: aednet_mobile_api::PublicLimits::default(),
            gateway: aednet_device_gateway::GatewayConfig::default(),
            dispatch: aednet_dispatch::Policy::default(),
            coverage: aednet_api::coverage::CoverageConfig::default(),
            cluster: aednet_cluster::ClusterConfig::default(),
            limits: aednet_api::limits::LimitsConfig::default(),
            notify: aednet_notify::NotifyConfig::default(),
            cad: aednet_api::cad_config::CadConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("caller_listen", &self.caller_listen)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("walk", &self.walk)
            .field("public", &self.public)
            .field("gateway", &self.gateway)
            .field("dispatch", &self.dispatch)
            .field("coverage", &self.coverage)
            .field(
                "cluster.nats_url",
                &self.cluster.nats_url.as_deref().map(redact_url),
            )
            .field("cluster.prefix", &self.cluster.prefix)
            .field("limits", &self.limits)
            .field("notify", &self.notify)
            .field("cad", &self.cad)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[REDACTED]@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[REDACTED]@{host}"),
        None => url.to_string(),
    }
}

/// Values given on the command line; `None` means "not given, keep the lower layers".
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let default_file = PathBuf::from("aednet.toml");
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                fig = fig.merge(Toml::file(path));
            }
            None if default_file.exists() => fig = fig.merge(Toml::file(default_file)),
            None => {}
        }
        fig = fig
            .merge(Env::prefixed("AEDNET_").ignore(&["config"]).split("__"))
            .merge(Serialized::defaults(overrides));
        let config: Config = fig.extract()?;
        config.walk.validate().map_err(anyhow::Error::msg)?;
        config.coverage.validate().map_err(anyhow::Error::msg)?;
        config.cad.validate().map_err(anyhow::Error::msg)?;
        if config.cluster.nats_url.is_some() {
            anyhow::ensure!(
                config.database_url.starts_with("postgres://")
                    || config.database_url.starts_with("postgresql://"),
                "cluster.nats_url is set: every node must share one PostgreSQL database \
                 (database_url = postgres://…), not an embedded SQLite file"
            );
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_debug_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1111\"\ndatabase_url = \"postgres://u:pw@h/db\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 1111);
        let over = Overrides {
            listen: Some("127.0.0.1:2222".parse().unwrap()),
            ..Default::default()
        };
        let c2 = Config::load(Some(&file), &over).unwrap();
        assert_eq!(c2.listen.port(), 2222);
        let dbg = format!("{c2:?}");
        assert!(dbg.contains("[REDACTED]") && !dbg.contains("pw"), "{dbg}");
        assert!(Config::load(
            Some(&dir.path().join("missing.toml")),
            &Overrides::default()
        )
        .is_err());
    }

    #[test]
    fn redacts_only_passwords() {
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:[REDACTED]@h/db"
        );
    }
}
