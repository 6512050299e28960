//! The device and rescuer side of the fault tests: their sockets, frames and tokens.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The demo's token for `role`.
pub fn demo_token(dir: &std::path::Path, role: &str) -> String {
    std::fs::read_to_string(dir.join("aednet-data/demo-tokens.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{role}\t")))
        .unwrap()
        .to_string()
}

/// A WebSocket to `path` (`/ws/device`, `/ws/rescuer`) with `token` as its bearer.
async fn socket(base: &str, path: &str, token: &str) -> Ws {
    let mut req = (base.replace("http://", "ws://") + path)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

pub async fn device_socket(base: &str, token: &str) -> Ws {
    socket(base, "/ws/device", token).await
}

pub async fn rescuer_socket(base: &str, token: &str) -> Ws {
    socket(base, "/ws/rescuer", token).await
}

/// The next JSON text frame within 10 s; `None` when the socket closed (with its close frame).
pub async fn next_json(ws: &mut Ws) -> Result<Value, Option<(u16, String)>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
        {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(c))) => {
                return Err(c.map(|c| (u16::from(c.code), c.reason.to_string())))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// A device token for an AED without telemetry so far (admin over the API).
pub async fn device_for_unknown_aed(base: &str, admin: &str, nth: usize) -> (i64, String) {
    let client = reqwest::Client::new();
    let unknown: Value = client
        .get(format!("{base}/api/v1/aeds?status=unknown&limit=20"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aed_id = unknown["items"][nth]["id"].as_i64().unwrap();
    let created: Value = client
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": format!("cabinet-{nth}"), "role": "device", "subject_id": aed_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    (aed_id, token)
}

/// A rescuer on duty with consent, and a token for them.
pub async fn rescuer_token(base: &str, admin: &str, n: u32) -> (i64, String) {
    let client = reqwest::Client::new();
    let r: Value = client
        .post(format!("{base}/api/v1/rescuers"))
        .bearer_auth(admin)
        .json(
            &json!({"name": format!("救护员{n}"), "certificate_no": format!("ZJQZ-FAULT-{n}"),
            "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": "2030-04-30",
            "on_duty": true, "location_consent": true}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"].as_i64().unwrap_or_else(|| panic!("{r}"));
    let t: Value = client
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "phone", "role": "rescuer", "subject_id": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, t["token"].as_str().unwrap().to_string())
}

pub fn door(seq: u64, open: bool) -> Message {
    Message::Text(
        json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z", "type": "door", "open": open})
            .to_string()
            .into(),
    )
}
