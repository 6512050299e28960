//! `GET /ws/coverage`: the live map's changes as they happen.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::live::{summary_json, Coverage};
use crate::state::AppState;

/// `GET /ws/coverage`: `{"type":"cells","cells":[{cell,time_s,covered}],"summary":{…}}` for
/// the cells that changed, as they change; `{"type":"reload"}` when the whole map was rebuilt
/// (refetch); `{"type":"resync"}` when this socket fell behind (refetch). The first frame is a
/// `cells` frame with no cells and the current summary.
/// At most `[limits] ws_coverage` sockets are open at once; beyond that the upgrade is
/// refused with 503 `busy` and `Retry-After`.
pub async fn ws_coverage(
    State(state): State<AppState>,
    Extension(cov): Extension<Arc<Coverage>>,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = match state.limits.ws_coverage.open() {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // Subscribed before the upgrade completes: nothing after the handshake is missed.
    let rx = cov.frames.subscribe();
    ws.max_message_size(4096)
        .on_upgrade(move |socket| async move {
            forward(socket, rx, cov).await;
            drop(slot);
        })
}

async fn forward(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<str>>, cov: Arc<Coverage>) {
    cov.wait_ready().await;
    let hello = {
        let g = cov.live.read();
        g.as_ref().map(|l| {
            json!({"type": "cells", "cells": [], "summary": summary_json(&l.map, None, cov.config.res)})
                .to_string()
        })
    };
    if let Some(h) = hello {
        if socket.send(Message::Text(h.into())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let text: String = match frame {
                    Ok(f) => f.to_string(),
                    Err(RecvError::Lagged(n)) => json!({"type": "resync", "missed": n}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                if !matches!(msg, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) {
                    break;
                }
            }
        }
    }
}
