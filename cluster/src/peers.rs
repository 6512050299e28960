//! [`NatsPeers`]: signals and incident calls between nodes on core NATS (memory only: nothing
//! here is ever stored, which is where rescuer positions must stay).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aednet_core::{IncidentCall, IncidentRequest, PeerError, Peers, Signal};
use anyhow::Context as _;
use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::NODE_HEADER;

const SIGNAL_CAPACITY: usize = 4096;
/// Signals waiting to be sent; beyond this (NATS unreachable for long) new ones are dropped.
const SIGNAL_QUEUE: usize = 16_384;
const CALL_QUEUE: usize = 1024;
/// How long an unanswered call keeps its reply subject: callers have long given up by then.
const REPLY_WAIT: Duration = Duration::from_secs(60);

/// This node's view of the others.
#[derive(Debug)]
pub struct NatsPeers {
    node_id: String,
    client: async_nats::Client,
    prefix: String,
    signals: broadcast::Sender<Signal>,
    outgoing: mpsc::Sender<Signal>,
    calls: Mutex<Option<mpsc::Receiver<IncidentRequest>>>,
    calls_taken: Arc<AtomicBool>,
    tasks: Vec<AbortHandle>,
}

fn node_headers(node_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NODE_HEADER, node_id);
    headers
}

fn sent_by(message: &async_nats::Message, node_id: &str) -> bool {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(NODE_HEADER))
        .is_some_and(|v| v.as_str() == node_id)
}

impl NatsPeers {
    pub(crate) async fn start(
        client: async_nats::Client,
        prefix: &str,
        node_id: &str,
    ) -> anyhow::Result<NatsPeers> {
        let signal_subject = format!("{prefix}.signal");
        let mut signal_sub = client
            .subscribe(signal_subject.clone())
            .await
            .context("subscribing to signals")?;
        let mut call_sub = client
            .subscribe(format!("{prefix}.incident.*"))
            .await
            .context("subscribing to incident calls")?;

        let signals = broadcast::channel(SIGNAL_CAPACITY).0;
        let receive_signals = tokio::spawn({
            let signals = signals.clone();
            let node_id = node_id.to_string();
            async move {
                while let Some(message) = signal_sub.next().await {
                    if sent_by(&message, &node_id) {
                        continue;
                    }
                    match serde_json::from_slice::<Signal>(&message.payload) {
                        Ok(signal) => {
                            let _ = signals.send(signal);
                        }
                        Err(e) => {
                            tracing::warn!(node = %node_id, error = %e, "undecodable signal; skipped")
                        }
                    }
                }
            }
        });

        let (outgoing, mut queued) = mpsc::channel::<Signal>(SIGNAL_QUEUE);
        let send_signals = tokio::spawn({
            let client = client.clone();
            let node_id = node_id.to_string();
            async move {
                while let Some(signal) = queued.recv().await {
                    let Ok(json) = serde_json::to_vec(&signal) else {
                        continue;
                    };
                    let sent = client
                        .publish_with_headers(
                            signal_subject.clone(),
                            node_headers(&node_id),
                            Bytes::from(json),
                        )
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!(node = %node_id, error = %e, "signal not sent");
                    }
                }
            }
        });

        let (calls_tx, calls_rx) = mpsc::channel(CALL_QUEUE);
        let calls_taken = Arc::new(AtomicBool::new(false));
        let receive_calls = tokio::spawn({
            let client = client.clone();
            let node_id = node_id.to_string();
            let taken = calls_taken.clone();
            async move {
                while let Some(message) = call_sub.next().await {
                    if sent_by(&message, &node_id) || !taken.load(Ordering::Acquire) {
                        continue;
                    }
                    let Some(reply_to) = message.reply.clone() else {
                        continue;
                    };
                    let call = match serde_json::from_slice::<IncidentCall>(&message.payload) {
                        Ok(call) => call,
                        Err(e) => {
                            tracing::warn!(node = %node_id, subject = %message.subject, error = %e, "undecodable incident call; skipped");
                            continue;
                        }
                    };
                    let (reply, answer) = oneshot::channel();
                    let incident_id = call.incident_id;
                    match calls_tx.try_send(IncidentRequest { call, reply }) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(node = %node_id, incident_id, "incident call queue full; call dropped");
                            continue;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => continue,
                    }
                    let client = client.clone();
                    tokio::spawn(async move {
                        // A dropped sender means another node owns the incident: no reply.
                        if let Ok(Ok(value)) = tokio::time::timeout(REPLY_WAIT, answer).await {
                            let Ok(json) = serde_json::to_vec(&value) else {
                                return;
                            };
                            if let Err(e) = client.publish(reply_to, Bytes::from(json)).await {
                                tracing::warn!(incident_id, error = %e, "incident call reply not sent");
                            }
                        }
                    });
                }
            }
        });

        Ok(NatsPeers {
            node_id: node_id.to_string(),
            client,
            prefix: prefix.to_string(),
            signals,
            outgoing,
            calls: Mutex::new(Some(calls_rx)),
            calls_taken,
            tasks: vec![
                receive_signals.abort_handle(),
                send_signals.abort_handle(),
                receive_calls.abort_handle(),
            ],
        })
    }
}

impl Drop for NatsPeers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl Peers for NatsPeers {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn signal(&self, signal: Signal) {
        if self.outgoing.try_send(signal).is_err() {
            tracing::warn!(node = %self.node_id, "signal queue full (NATS unreachable?); signal dropped");
        }
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    async fn call(
        &self,
        call: &IncidentCall,
        timeout: Duration,
    ) -> Result<serde_json::Value, PeerError> {
        let id = call.incident_id;
        let json = serde_json::to_vec(call).map_err(|e| PeerError::Transport(e.to_string()))?;
        let request = async_nats::Request::new()
            .payload(Bytes::from(json))
            .headers(node_headers(&self.node_id))
            .timeout(Some(timeout));
        let subject = format!("{}.incident.{id}", self.prefix);
        // The outer timeout also bounds a request stuck behind a reconnecting client.
        let answer = tokio::time::timeout(
            timeout + Duration::from_millis(50),
            self.client.send_request(subject, request),
        )
        .await;
        match answer {
            Err(_) => Err(PeerError::NoAnswer(id)),
            Ok(Ok(message)) => serde_json::from_slice(&message.payload)
                .map_err(|e| PeerError::Transport(format!("undecodable answer: {e}"))),
            Ok(Err(e)) => match e.kind() {
                RequestErrorKind::TimedOut | RequestErrorKind::NoResponders => {
                    Err(PeerError::NoAnswer(id))
                }
                _ => Err(PeerError::Transport(e.to_string())),
            },
        }
    }

    fn take_calls(&self) -> Option<mpsc::Receiver<IncidentRequest>> {
        let rx = self.calls.lock().ok()?.take();
        if rx.is_some() {
            self.calls_taken.store(true, Ordering::Release);
        }
        rx
    }
}
