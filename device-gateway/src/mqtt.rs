//! MQTT ingest: the same messages through the same pipeline, for deployments whose cabinets
//! talk to a broker (Mosquitto, EMQX) instead of a WebSocket.
//!
//! Devices publish protocol frames to `{prefix}/devices/{aed_id}/telemetry` (QoS 1, prefix
//! `aednet` by default); aednet answers on `{prefix}/devices/{aed_id}/ack` with the same ack and error frames, an ack only after
//! the message is stored. The broker authenticates devices and restricts each to its own topics
//! (ACLs); aednet trusts the AED id in the topic.

use std::sync::Arc;
use std::time::Duration;

use aednet_core::telemetry::DeviceMessage;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::gateway::{Gateway, Rejected};

/// Connects to `url` (`mqtt://host:port`) and processes messages until the process ends,
/// reconnecting after broker outages.
pub async fn run(gw: Arc<Gateway>, url: &str, client_id: &str, prefix: &str) -> anyhow::Result<()> {
    let filter = format!("{prefix}/devices/+/telemetry");
    let prefix = Arc::new(format!("{prefix}/devices/"));
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| anyhow::anyhow!("gateway.mqtt_url must start with mqtt://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.trim_end_matches('/').parse::<u16>()?),
        None => (rest.trim_end_matches('/').to_string(), 1883),
    };
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    // A persistent session: QoS 1 messages published while aednet restarts are delivered after.
    opts.set_clean_session(false);
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
                    tracing::warn!(error = %e, "MQTT connection lost; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(())
}

async fn handle(gw: &Gateway, client: &AsyncClient, prefix: &str, topic: &str, payload: &[u8]) {
    let Some(aed_id) = topic
        .strip_prefix(prefix)
        .and_then(|t| t.strip_suffix("/telemetry"))
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return;
    };
    let reply = match DeviceMessage::parse(payload) {
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
    let topic = format!("{prefix}{aed_id}/ack");
    // Never wait on the request queue here: the event loop that drains it is our caller.
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, reply.to_string()) {
        tracing::warn!(error = %e, aed_id, "publishing an MQTT ack");
    }
}

fn error_frame(seq: Option<u64>, r: Rejected) -> serde_json::Value {
    json!({"type": "error", "seq": seq, "code": r.code(), "message": r.message()})
}
