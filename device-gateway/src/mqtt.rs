//! MQTT ingest: the same messages through the same pipeline, for deployments whose cabinets
//! talk to a broker (Mosquitto, EMQX) instead of a WebSocket.
//!
//! Devices publish protocol frames to `{prefix}/devices/{aed_id}/telemetry` (QoS 1, prefix
//! `aednet` by default); aednet answers on `{prefix}/devices/{aed_id}/ack` with the same ack and
//! error frames, an ack only after the message is stored.
//!
//! Who may publish where is the broker's to enforce: each device logs in with its own user name
//! (its AED id) and an ACL lets it write only its own topic (docs/device-protocol.md shows the
//! Mosquitto ACL). A broker does not tell subscribers who published, so aednet can check the
//! topic against a credential only when the device sends one: a `"token"` field in the payload
//! (its device token) must belong to the AED in the topic, and `[gateway] mqtt_require_token`
//! refuses messages without one.
//!
//! aednet logs in with `mqtt_username`/`mqtt_password`, over TLS for `mqtts://` URLs (rustls;
//! the CA in `mqtt_ca_file`, or the system's roots), with a client id unique to the node.

use std::sync::Arc;
use std::time::Duration;

use aednet_core::telemetry::DeviceMessage;
use aednet_core::Role;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::json;

use crate::gateway::{Gateway, GatewayConfig, Rejected};

/// Where and how to reach the broker, from `[gateway]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
pub fn parse_url(url: &str) -> anyhow::Result<Broker> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        anyhow::bail!("gateway.mqtt_url must start with mqtt:// or mqtts://");
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') {
        anyhow::bail!(
            "gateway.mqtt_url must not hold credentials: set gateway.mqtt_username and mqtt_password"
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| anyhow::anyhow!("gateway.mqtt_url: bad port '{p}'"))?,
        ),
        None => (rest.to_string(), default_port),
    };
    if host.is_empty() {
        anyhow::bail!("gateway.mqtt_url has no host");
    }
    Ok(Broker { host, port, tls })
}

/// The configured client id, or `aednet-gateway-<host name>-<random>`: two nodes with one id
/// would throw each other off the broker in turn (MQTT lets the newer connection take over).
pub fn client_id(cfg: &GatewayConfig) -> String {
    if !cfg.mqtt_client_id.is_empty() {
        return cfg.mqtt_client_id.clone();
    }
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("aednet-gateway-{host}-{}", &random[..8])
}

/// The client options for `cfg`: credentials, TLS, keep-alive and session.
pub fn options(cfg: &GatewayConfig, broker: &Broker) -> anyhow::Result<MqttOptions> {
    let mut opts = MqttOptions::new(client_id(cfg), broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    // A configured (stable) id keeps a persistent session: QoS 1 messages published while
    // aednet restarts are delivered after. A generated id is new at every start, so its
    // session is not kept (the broker would queue for it forever); devices resend what was
    // not acked.
    opts.set_clean_session(cfg.mqtt_client_id.is_empty());
    if let Some(user) = &cfg.mqtt_username {
        let password = cfg
            .mqtt_password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        opts.set_credentials(user.clone(), password);
    } else if cfg.mqtt_password.is_some() {
        anyhow::bail!("gateway.mqtt_password is set without gateway.mqtt_username");
    }
    if broker.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(cfg.mqtt_ca_file.as_deref())?),
        )));
    } else if cfg.mqtt_ca_file.is_some() {
        anyhow::bail!("gateway.mqtt_ca_file needs an mqtts:// URL");
    }
    Ok(opts)
}

/// rustls (ring) trusting the CA in `ca_file`, or the system's roots.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("gateway.mqtt_ca_file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("gateway.mqtt_ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!(
                    "gateway.mqtt_ca_file {} holds no certificate",
                    path.display()
                );
            }
            for c in certs {
                roots.add(c)?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects to the broker of `gw`'s configuration and processes messages until the process
/// ends, reconnecting after broker outages. A bad configuration is an error now; a broker that
/// is down (or refuses the login) is retried, and logged.
pub async fn run(gw: Arc<Gateway>) -> anyhow::Result<()> {
    let cfg = gw.config().clone();
    let url = cfg.mqtt_url.clone().unwrap_or_default();
    let broker = parse_url(&url)?;
    let opts = options(&cfg, &broker)?;
    let prefix = cfg.mqtt_prefix.clone();
    let filter = format!("{prefix}/devices/+/telemetry");
    let prefix = Arc::new(format!("{prefix}/devices/"));
    tracing::info!(client_id = %opts.client_id(), tls = broker.tls, user = ?cfg.mqtt_username, "MQTT client");
    let (client, mut events) = AsyncClient::new(opts, 1024);
    client.subscribe(filter.clone(), QoS::AtLeastOnce).await?;
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // Inline, so each device's messages are processed in the order received.
                    handle(&gw, &client, &prefix, &p.topic, &p.payload).await;
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT connection lost or refused; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(())
}

/// The payload without its `"token"` field, after checking the token belongs to a device of
/// `aed_id`; the payload as it is when it has none and none is required.
async fn authorise(gw: &Gateway, aed_id: i64, payload: &[u8]) -> Result<Vec<u8>, Refused> {
    let require = gw.config().mqtt_require_token;
    // The common case (no token sent, none required) costs one substring search.
    if !require && !payload.windows(7).any(|w| w == b"\"token\"") {
        return Ok(payload.to_vec());
    }
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(payload) else {
        // Not an object: the parser names what is wrong (a token cannot be in it).
        return if require {
            Err(Refused::Unauthorized)
        } else {
            Ok(payload.to_vec())
        };
    };
    let Some(serde_json::Value::String(token)) = obj.remove("token") else {
        return Err(Refused::Unauthorized);
    };
    match aednet_api::auth::verify_token(gw.app_state(), &token).await {
        Ok(rec) if rec.role == Role::Device && rec.subject_id == Some(aed_id) => {
            Ok(serde_json::to_vec(&obj).unwrap_or_default())
        }
        Ok(_) | Err(aednet_api::ApiError::Unauthorized) => Err(Refused::Unauthorized),
        Err(_) => Err(Refused::Internal),
    }
}

/// Why a message was refused before it was parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refused {
    /// No token where one is required, or one that is not this AED's device token.
    Unauthorized,
    /// The token could not be checked now (the store): resend later.
    Internal,
}

impl Refused {
    fn frame(self) -> serde_json::Value {
        let (code, message) = match self {
            Refused::Unauthorized => (
                "unauthorized",
                "the token is not this AED's device token (or none was sent)",
            ),
            Refused::Internal => ("internal", "not stored; resend later"),
        };
        json!({"type": "error", "seq": null, "code": code, "message": message})
    }
}

async fn handle(gw: &Gateway, client: &AsyncClient, prefix: &str, topic: &str, payload: &[u8]) {
    let Some(aed_id) = topic
        .strip_prefix(prefix)
        .and_then(|t| t.strip_suffix("/telemetry"))
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return;
    };
    let payload = match authorise(gw, aed_id, payload).await {
        Ok(p) => p,
        Err(r) => {
            tracing::warn!(aed_id, refused = ?r, "MQTT message refused");
            publish(client, prefix, aed_id, &r.frame());
            return;
        }
    };
    let reply = match DeviceMessage::parse(&payload) {
        Err(e) => {
            let (seq, r) = Rejected::from_parse(e);
            error_frame(seq, r)
        }
        Ok(m) if !m.version_supported() => {
            error_frame(Some(m.seq), Rejected::UnsupportedVersion(m.v))
        }
        Ok(m) => match gw.process(aed_id, &m).await {
            Ok(()) => json!({"type": "ack", "seq": m.seq}),
            Err(r) => error_frame(Some(m.seq), r),
        },
    };
    publish(client, prefix, aed_id, &reply);
}

fn publish(client: &AsyncClient, prefix: &str, aed_id: i64, reply: &serde_json::Value) {
    let topic = format!("{prefix}{aed_id}/ack");
    // Never wait on the request queue here: the event loop that drains it is our caller.
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, reply.to_string()) {
        tracing::warn!(error = %e, aed_id, "publishing an MQTT ack");
    }
}

fn error_frame(seq: Option<u64>, r: Rejected) -> serde_json::Value {
    json!({"type": "error", "seq": seq, "code": r.code(), "message": r.message()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_schemes_ports_and_no_credentials() {
        let b = parse_url("mqtt://broker.local").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.local", 1883, false)
        );
        let b = parse_url("mqtts://broker.local/").unwrap();
        assert_eq!((b.port, b.tls), (8883, true));
        let b = parse_url("mqtts://10.0.0.2:9883").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("10.0.0.2", 9883));
        assert!(parse_url("tcp://x").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
        let e = parse_url("mqtt://user:secret@x").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn client_ids_are_unique_per_node_unless_configured() {
        let cfg = GatewayConfig::default();
        let (a, b) = (client_id(&cfg), client_id(&cfg));
        assert!(a.starts_with("aednet-gateway-"), "{a}");
        assert_ne!(a, b, "two nodes never share a generated id");
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let fixed = GatewayConfig {
            mqtt_client_id: "gw-1".into(),
            ..GatewayConfig::default()
        };
        assert_eq!(client_id(&fixed), "gw-1");
        // A generated id gets a clean session, a configured one a persistent session.
        let b = parse_url("mqtt://x").unwrap();
        assert!(options(&cfg, &b).unwrap().clean_session());
        assert!(!options(&fixed, &b).unwrap().clean_session());
    }

    #[test]
    fn credentials_and_tls_options() {
        let b = parse_url("mqtt://x").unwrap();
        let cfg = GatewayConfig {
            mqtt_username: Some("aednet".into()),
            mqtt_password: Some(aednet_core::secret::Secret::new("hunter2")),
            ..GatewayConfig::default()
        };
        let o = options(&cfg, &b).unwrap();
        assert_eq!(
            o.credentials().map(|l| (l.username, l.password)),
            Some(("aednet".to_string(), "hunter2".to_string()))
        );
        assert!(
            !format!("{cfg:?}").contains("hunter2"),
            "the password is redacted"
        );
        let no_user = GatewayConfig {
            mqtt_password: Some(aednet_core::secret::Secret::new("x")),
            ..GatewayConfig::default()
        };
        assert!(options(&no_user, &b).is_err());
        let ca_without_tls = GatewayConfig {
            mqtt_ca_file: Some("/nonexistent.pem".into()),
            ..GatewayConfig::default()
        };
        assert!(options(&ca_without_tls, &b).is_err());
        let tls = parse_url("mqtts://x").unwrap();
        let missing = options(&ca_without_tls, &tls).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent.pem"), "{missing}");
        // The system's roots when no CA file is given.
        assert!(options(&GatewayConfig::default(), &tls).is_ok());
    }
}
