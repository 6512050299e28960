//! Incident events to the CAD: every change of an incident the CAD handed over (offers out,
//! accepted, AED on the way, arrived, stand-down, closed, cancelled) is POSTed to
//! `[cad] outbound_url` as JSON, signed like inbound requests. Events wait in a bounded queue
//! of their own and are sent in order by one task, each retried with exponential back-off
//! (1 s doubling to 60 s, `outbound_max_attempts` tries); a full queue drops the event with a
//! warning. Dispatch itself never waits for the CAD. Rescuers' identities and positions are
//! never sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aednet_core::Secret;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::{sign, CadConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::engine::Engine;
use crate::incident::Incident;

const QUEUE: usize = 10_000;

/// The events of one board frame worth telling the CAD, as payloads.
pub fn payloads(inc: &Incident, frame_events: &[Value]) -> Vec<Value> {
    let Some(intake) = &inc.intake else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in frame_events {
        let kind = e.get("kind").and_then(Value::as_str).unwrap_or("");
        let offer = e.get("offer").and_then(Value::as_u64);
        let at = e.get("at").cloned().unwrap_or(Value::Null);
        let fetch_aed = offer.and_then(|o| {
            inc.offers
                .iter()
                .find(|r| u64::from(r.id) == o)
                .and_then(|r| r.fetch_aed)
        });
        let role = if fetch_aed.is_some() {
            "fetch_aed"
        } else {
            "cpr"
        };
        let mut push = |event: &str, detail: Value| {
            out.push(json!({
                "call_id": intake.call_id,
                "incident_id": inc.id,
                "event_id": format!("{}-{}-{}-{}", inc.id, event, offer.unwrap_or(0), at.as_str().unwrap_or("")),
                "event": event,
                "at": at.clone(),
                "state": inc.state,
                "detail": detail,
            }));
        };
        match kind {
            "created" => push("created", json!({})),
            "offered" => push(
                "offer_out",
                json!({"offer": offer, "role": role, "eta_s": e.get("eta_s")}),
            ),
            "accepted" => {
                push("accepted", json!({"offer": offer}));
                if let Some(aed) = fetch_aed {
                    push("aed_on_the_way", json!({"offer": offer, "aed_id": aed}));
                }
            }
            "declined" | "timed_out" | "arrived" => push(kind, json!({"offer": offer})),
            "stood_down" => push("stand_down", json!({"offer": offer})),
            "state" if e.get("to").and_then(Value::as_str) == Some("cancelled") => {
                push("cancelled", json!({}))
            }
            "closed" => push("closed", json!({"outcome": e.get("outcome")})),
            _ => {}
        }
    }
    out
}

/// Starts the two tasks: one turns board frames into events, one sends them.
pub fn start(engine: Arc<Engine>, url: String, secret: Secret, config: &CadConfig) {
    let (tx, rx) = mpsc::channel::<Value>(QUEUE);
    let mut board = engine.board();
    tokio::spawn(async move {
        // Which incidents came from the CAD (None: not from the CAD).
        let mut known: HashMap<i64, bool> = HashMap::new();
        loop {
            let frame = match board.recv().await {
                Ok(f) => f,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "CAD outbound: board frames missed");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Ok(v) = serde_json::from_str::<Value>(&frame) else {
                continue;
            };
            if v.get("type").and_then(Value::as_str) != Some("incident") {
                continue;
            }
            let Some(id) = v.get("incident_id").and_then(Value::as_i64) else {
                continue;
            };
            if known.get(&id) == Some(&false) {
                continue;
            }
            let Ok(inc) = engine.get(id).await else {
                continue;
            };
            known.insert(id, inc.intake.is_some());
            let events = v
                .get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for p in payloads(&inc, &events) {
                if tx.try_send(p).is_err() {
                    tracing::warn!(incident = id, "CAD outbound queue full: event dropped");
                }
            }
        }
    });
    let attempts = config.outbound_max_attempts.max(1);
    let timeout = Duration::from_secs(config.outbound_timeout_s.max(1));
    tokio::spawn(send_loop(rx, url, secret, attempts, timeout));
}

async fn send_loop(
    mut rx: mpsc::Receiver<Value>,
    url: String,
    secret: Secret,
    attempts: u32,
    timeout: Duration,
) {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "CAD outbound: no HTTP client; events are not sent");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let body = event.to_string();
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=attempts {
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = sign(secret.expose().as_bytes(), &ts, body.as_bytes());
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, &ts)
                .header(SIGNATURE_HEADER, sig)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "CAD refused an event"),
                Err(e) => tracing::warn!(error = %e, attempt, "CAD unreachable"),
            }
            if attempt == attempts {
                tracing::error!(event = %event["event_id"], "CAD event given up after {attempts} tries");
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
}
