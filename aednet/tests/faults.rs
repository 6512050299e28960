//! The fault-injection suite: the real binary under the faults an emergency service meets in
//! the field, each time with nothing acked lost and the service answering afterwards.
//!
//! - kill -9 in the middle of a telemetry flood: every acked message is in the store, resending
//!   after the restart stores the rest exactly once;
//! - kill -9 in the middle of an incident: it resumes with its offers, audit log and timers;
//! - SQLite on a full disk (the data directory on a small tmpfs, filled up by another file):
//!   devices get `internal` ("resend"), API writes 503 with nothing changed, callers are still
//!   answered from memory, and everything works again once space returns;
//! - a malformed, oversized and flooding device and rescuer next to well-behaved ones: the
//!   misbehaving ones are refused or closed, the well-behaved ones never see an error.
//!
//! - PostgreSQL (a private server) stopped and started again in the middle of a telemetry
//!   flood: devices get `internal` and resend, and every message ends up stored exactly once.
//!
//! PostgreSQL restarting in the middle of an incident is in `faults_dispatch.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

use common::{start_aednet as start_env, terminate};

/// The demo's token for `role`.
fn demo_token(dir: &std::path::Path, role: &str) -> String {
    std::fs::read_to_string(dir.join("aednet-data/demo-tokens.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{role}\t")))
        .unwrap()
        .to_string()
}

async fn device_socket(base: &str, token: &str) -> Ws {
    let mut req = (base.replace("http://", "ws://") + "/ws/device")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn rescuer_socket(base: &str, token: &str) -> Ws {
    let mut req = (base.replace("http://", "ws://") + "/ws/rescuer")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next JSON text frame within 10 s; `None` when the socket closed (with its close frame).
async fn next_json(ws: &mut Ws) -> Result<Value, Option<(u16, String)>> {
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
async fn device_for_unknown_aed(base: &str, admin: &str, nth: usize) -> (i64, String) {
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
async fn rescuer_token(base: &str, admin: &str, n: u32) -> (i64, String) {
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

fn door(seq: u64, open: bool) -> Message {
    Message::Text(
        json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z", "type": "door", "open": open})
            .to_string()
            .into(),
    )
}

/// A tmpfs mounted for one test (the test runs as root, as on CI and the dev machines);
/// unmounted when dropped, lazily so a still-running child cannot keep it busy.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8) is installed");
        assert!(
            st.success(),
            "mounting a tmpfs failed: this test needs root (CAP_SYS_ADMIN), as CI has"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails with "no space left".
fn fill_disk(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() && f.flush().is_ok() {}
    }
    let _ = f.sync_all();
}

async fn post_named_aed(client: &reqwest::Client, base: &str, admin: &str) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/aeds"))
        .bearer_auth(admin)
        .json(&common::aed_body(28.97, 118.87, "满盘测试"))
        .send()
        .await
        .unwrap()
}

/// SQLite on a full disk: writes fail, the service says so clearly and changes nothing, reads
/// go on, and it recovers by itself when space returns.
///
/// The data directory is a tmpfs; the WAL is checkpointed and emptied, then a filler file
/// takes every free byte. Writes are retried until the first refusal all the same (should
/// SQLite find room somewhere), and the test checks that exactly the acknowledged writes are
/// there.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_full_disk_clear_errors_then_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("aednet-data");
    let _fs = Tmpfs::mount(&data, "256m");
    let r = start_env(dir.path(), &["demo"], &[]);
    let admin = demo_token(dir.path(), "admin");
    let (aed_id, device) = device_for_unknown_aed(&r.base, &admin, 0).await;
    let client = reqwest::Client::new();
    let mut ws = device_socket(&r.base, &device).await;
    ws.send(door(1, true)).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "ack");

    // Everything so far is moved from the WAL into the database file and the WAL emptied, so
    // that any later commit needs new space (SQLite reuses the WAL's own space otherwise).
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", data.join("demo.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (busy,): (i64,) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut c)
                .await
                .unwrap();
            if busy == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the WAL never became free");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.close().await.unwrap();
    }
    // The disk fills up.
    let filler = data.join("filler");
    fill_disk(&filler);

    // The device is told to resend once its message cannot be stored; until then its
    // messages may still fit into pages SQLite holds already.
    let mut acked = vec![1u64];
    let mut seq: u64 = 1;
    let refused_seq: u64 = loop {
        seq += 1;
        assert!(
            seq < 2_000,
            "the device's writes never failed on a full disk"
        );
        ws.send(door(seq, seq.is_multiple_of(2))).await.unwrap();
        let e = next_json(&mut ws).await.unwrap();
        match e["type"].as_str() {
            Some("ack") => acked.push(seq),
            Some("error") => {
                assert_eq!(
                    (e["code"].as_str(), e["seq"].as_u64()),
                    (Some("internal"), Some(seq)),
                    "the device is told to resend: {e}"
                );
                break seq;
            }
            _ => panic!("unexpected reply {e}"),
        }
    };
    // The API refuses writes clearly (again, once any pages left are used up).
    let mut created = 0;
    let refusal = loop {
        let resp = post_named_aed(&client, &r.base, &admin).await;
        match resp.status().as_u16() {
            201 => created += 1,
            503 => break resp,
            other => panic!("unexpected status {other}"),
        }
        assert!(
            created < 2_000,
            "the API's writes never failed on a full disk"
        );
    };
    assert!(refusal.headers().contains_key("retry-after"));
    let body: Value = refusal.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        !body["message"].as_str().unwrap().contains("sqlite"),
        "no internals in the body: {body}"
    );
    // The caller's query is answered from memory all along.
    let near = client
        .get(format!(
            "{}/api/v1/aeds/nearest?lat=28.97&lon=118.87&k=3",
            r.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(near.status().as_u16(), 200);

    // Space returns: the resent message is stored, API writes work, nothing was half-written.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ws.send(door(refused_seq, refused_seq.is_multiple_of(2)))
            .await
            .unwrap();
        let reply = next_json(&mut ws).await.unwrap();
        if reply["type"] == "ack" {
            assert_eq!(reply["seq"], refused_seq);
            acked.push(refused_seq);
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        post_named_aed(&client, &r.base, &admin)
            .await
            .status()
            .as_u16(),
        201
    );
    created += 1;
    let listed: Value = client
        .get(format!("{}/api/v1/aeds?limit=1000", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let named = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "满盘测试")
        .count();
    assert_eq!(
        named, created,
        "exactly the acknowledged creations are stored"
    );
    // The gateway's view survived the failed writes: one more message (door closed) applies.
    let last = refused_seq + 1;
    ws.send(door(last, false)).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "ack");
    acked.push(last);
    common::eventually("door closed again: readiness unknown", || async {
        let aed: Value = client
            .get(format!("{}/api/v1/aeds/{aed_id}", r.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        aed["readiness"]["status"] == "unknown"
    })
    .await;
    assert!(terminate(r).success());

    let db = format!("sqlite://{}", data.join("demo.db").display());
    let store = aednet_store::connect(&db).await.unwrap();
    assert_eq!(
        store.device_event_seqs(aed_id).await.unwrap(),
        acked.iter().map(|&s| s as i64).collect::<Vec<_>>(),
        "every acked message stored once, the refused one stored after its resend"
    );
}

/// A device and a rescuer that send garbage, oversized frames and floods, next to a device and
/// a rescuer that behave: the bad ones are refused and closed, the good ones see no error and
/// every one of their messages is acked.
#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_device_and_rescuer_beside_well_behaved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AEDNET_GATEWAY__MESSAGES_PER_S", "20"),
        ("AEDNET_GATEWAY__BURST", "20"),
        ("AEDNET_LIMITS__LOCATION_PER_S", "5"),
        ("AEDNET_LIMITS__LOCATION_BURST", "10"),
    ];
    let r = start_env(dir.path(), &["demo"], &env);
    let admin = demo_token(dir.path(), "admin");
    let (good_aed, good_dev) = device_for_unknown_aed(&r.base, &admin, 0).await;
    let (_, flood_dev) = device_for_unknown_aed(&r.base, &admin, 1).await;
    let (_, junk_dev) = device_for_unknown_aed(&r.base, &admin, 2).await;
    let (_, big_dev) = device_for_unknown_aed(&r.base, &admin, 3).await;
    let (_, good_resc) = rescuer_token(&r.base, &admin, 1).await;
    let (_, bad_resc) = rescuer_token(&r.base, &admin, 2).await;

    // The well-behaved pair: one message every 250 ms (within every limit), each must be acked.
    let base = r.base.clone();
    let good = tokio::spawn(async move {
        let mut dev = device_socket(&base, &good_dev).await;
        let mut resc = rescuer_socket(&base, &good_resc).await;
        let mut errors = Vec::new();
        for seq in 1..=30u64 {
            dev.send(door(seq, seq % 2 == 1)).await.unwrap();
            let a = next_json(&mut dev).await.expect("device socket open");
            if a["type"] != "ack" || a["seq"] != seq {
                errors.push(a);
            }
            let loc = json!({"type": "location", "lat": 28.97, "lon": 118.87, "ref": seq});
            resc.send(Message::Text(loc.to_string().into()))
                .await
                .unwrap();
            let a = loop {
                let f = next_json(&mut resc).await.expect("rescuer socket open");
                if f["ref"] == seq {
                    break f;
                }
            };
            if a["type"] != "ack" {
                errors.push(a);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        errors
    });

    // A flooding device: refused with rate_limited, then closed as a bad client.
    let mut flood = device_socket(&r.base, &flood_dev).await;
    for seq in 1..=500u64 {
        if flood.send(door(seq, true)).await.is_err() {
            break;
        }
    }
    let mut codes = Vec::new();
    let closed = loop {
        match next_json(&mut flood).await {
            Ok(f) => codes.push(f["code"].as_str().unwrap_or("ack").to_string()),
            Err(close) => break close,
        }
    };
    assert!(codes.contains(&"rate_limited".to_string()), "{codes:?}");
    assert!(
        closed.is_some_and(|(c, _)| c == 1008),
        "flooder closed for policy"
    );

    // A device sending garbage: each answered `malformed`, then closed.
    let mut junk = device_socket(&r.base, &junk_dev).await;
    for raw in [
        "{",
        "[]",
        "null",
        "{\"v\":1}",
        "\u{0}\u{1}",
        "{\"v\":1,\"seq\":1,\"type\":\"nope\",\"ts\":\"x\"}",
    ] {
        if junk.send(Message::Text(raw.into())).await.is_err() {
            break;
        }
    }
    let mut junk_codes = Vec::new();
    let junk_closed = loop {
        match next_json(&mut junk).await {
            Ok(f) => junk_codes.push(f["code"].as_str().unwrap_or_default().to_string()),
            Err(close) => break close,
        }
    };
    assert!(
        junk_codes
            .iter()
            .all(|c| c == "malformed" || c == "unknown_type"),
        "{junk_codes:?}"
    );
    assert!(junk_closed.is_some(), "closed with a code");

    // An oversized frame (1 MiB, the limit is 8 KiB): closed at once.
    let mut big = device_socket(&r.base, &big_dev).await;
    let _ = big.send(Message::Text("x".repeat(1 << 20).into())).await;
    let big_closed = loop {
        match next_json(&mut big).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert!(
        big_closed.as_ref().is_none_or(|(c, _)| *c == 1009),
        "{big_closed:?}"
    );

    // A rescuer flooding positions: rate limited per rescuer (error frames), garbage answered
    // with errors naming the problem, an oversized frame closes the socket.
    let mut bad = rescuer_socket(&r.base, &bad_resc).await;
    for i in 0..100 {
        let loc = json!({"type": "location", "lat": 28.97, "lon": 118.87, "ref": i});
        bad.send(Message::Text(loc.to_string().into()))
            .await
            .unwrap();
    }
    let mut limited = 0;
    let mut acked = 0;
    for _ in 0..100 {
        let f = next_json(&mut bad).await.unwrap();
        match (f["type"].as_str(), f["error"].as_str()) {
            (Some("ack"), _) => acked += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            _ => {}
        }
    }
    assert!(
        acked <= 15 && limited >= 85,
        "acked {acked}, limited {limited}"
    );
    bad.send(Message::Text("not json".into())).await.unwrap();
    let e = next_json(&mut bad).await.unwrap();
    assert_eq!(e["type"], "error", "{e}");
    let _ = bad.send(Message::Text("y".repeat(64 * 1024).into())).await;
    let bad_closed = loop {
        match next_json(&mut bad).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert!(
        bad_closed.as_ref().is_none_or(|(c, _)| *c == 1009),
        "{bad_closed:?}"
    );

    let errors = good.await.unwrap();
    assert!(
        errors.is_empty(),
        "the well-behaved clients saw errors: {errors:?}"
    );
    let client = reqwest::Client::new();
    let aed: Value = client
        .get(format!("{}/api/v1/aeds/{good_aed}", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        aed["readiness"]["status"], "unknown",
        "last message closed the door: {aed}"
    );
    let near = client
        .get(format!(
            "{}/api/v1/aeds/nearest?lat=28.97&lon=118.87",
            r.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(near.status().as_u16(), 200);
    assert!(terminate(r).success());
}

/// kill -9 during a telemetry flood: every message the server acked is in the store after the
/// crash, the stored readiness is the one the newest stored message gives, and after a restart
/// resending everything stores the rest without duplicating anything.
#[tokio::test(flavor = "multi_thread")]
async fn acked_telemetry_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // A flood, not a well-behaved device: lift the per-connection rate limit.
    let env = [
        ("AEDNET_GATEWAY__MESSAGES_PER_S", "1000000"),
        ("AEDNET_GATEWAY__BURST", "1000000"),
    ];
    let r = start_env(dir.path(), &["demo"], &env);
    let tokens = std::fs::read_to_string(dir.path().join("aednet-data/demo-tokens.txt")).unwrap();
    let admin = tokens
        .lines()
        .find_map(|l| l.strip_prefix("admin\t"))
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    // An AED without telemetry so far: a closed door takes it back to `unknown`.
    let unknown: Value = client
        .get(format!("{}/api/v1/aeds?status=unknown&limit=1", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aed_id = unknown["items"][0]["id"].as_i64().unwrap();
    let created: Value = client
        .post(format!("{}/api/v1/tokens", r.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "cabinet-1", "role": "device", "subject_id": aed_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = created["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let connect = |base: String| {
        let device = device.clone();
        async move {
            let mut req = (base.replace("http://", "ws://") + "/ws/device")
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {device}").parse().unwrap());
            tokio_tungstenite::connect_async(req).await.unwrap().0
        }
    };
    // Door open on odd seq, closed on even: every message changes readiness, so every one must
    // be stored before its ack.
    let frame = |seq: u64| {
        serde_json::json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z", "type": "door", "open": seq % 2 == 1}).to_string()
    };
    let total = 2000u64;
    let ws = connect(r.base.clone()).await;
    let (mut tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        for seq in 1..=total {
            if tx.send(Message::Text(frame(seq).into())).await.is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let mut child = r.child;
    while let Some(Ok(m)) = rx.next().await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ack" {
                acked.push(v["seq"].as_i64().unwrap());
            }
            if acked.len() == 150 {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break;
            }
        }
    }
    sender.abort();
    assert_eq!(acked.len(), 150, "the flood was acked before the kill");

    let db = format!(
        "sqlite://{}",
        dir.path().join("aednet-data/demo.db").display()
    );
    let store = aednet_store::connect(&db).await.unwrap();
    let stored = store.device_event_seqs(aed_id).await.unwrap();
    for s in &acked {
        assert!(
            stored.contains(s),
            "acked seq {s} lost; stored {} messages",
            stored.len()
        );
    }
    let newest = *stored.last().unwrap();
    let aed = store.get_aed(aed_id).await.unwrap().unwrap();
    let want = if newest % 2 == 1 {
        "cabinet_open"
    } else {
        "unknown"
    };
    assert_eq!(
        aed.data.readiness.status.as_str(),
        want,
        "readiness matches seq {newest}"
    );
    drop(store);

    // Restart and resend everything: duplicates are acked without effect, the rest is stored.
    let r2 = start_env(dir.path(), &["demo"], &env);
    let mut ws = connect(r2.base.clone()).await;
    for seq in 1..=200u64 {
        ws.send(Message::Text(frame(seq).into())).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["seq"], seq, "{v}");
                    assert_eq!(v["type"], "ack", "{v}");
                    break;
                }
                _ => continue,
            }
        }
    }
    let store = aednet_store::connect(&db).await.unwrap();
    let stored = store.device_event_seqs(aed_id).await.unwrap();
    assert_eq!(
        stored.iter().filter(|s| **s <= 200).count(),
        200,
        "each seq exactly once"
    );
    assert!(terminate(r2).success());
}

/// kill -9 in the middle of an incident: after the restart the incident, its offers and its
/// audit log are there, and its offer timer resumes (the unanswered offer times out).
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_survives_kill_9_and_its_timers_resume() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AEDNET_DISPATCH__OFFER_TIMEOUT_S", "3"),
        ("AEDNET_DISPATCH__MIN_AEDS", "0"),
        ("AEDNET_DISPATCH__MIN_RESCUERS", "1"),
    ];
    let r = start_env(dir.path(), &["demo"], &env);
    let tokens = std::fs::read_to_string(dir.path().join("aednet-data/demo-tokens.txt")).unwrap();
    let token = |role: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{role}\t")))
            .unwrap()
            .to_string()
    };
    let (admin, dispatcher) = (token("admin"), token("dispatcher"));
    let client = reqwest::Client::new();
    let post = |base: &str, path: &str, tok: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(tok)
            .json(&body)
            .send()
    };
    let rescuer: Value = post(
        &r.base,
        "/api/v1/rescuers",
        &admin,
        serde_json::json!({"name": "值班救护员",
        "certificate_no": "ZJQZ-CRASH-1", "level": "first_aider", "cert_issued": "2024-05-01",
        "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rid = rescuer["id"].as_i64().unwrap();
    let tok: Value = post(
        &r.base,
        "/api/v1/tokens",
        &admin,
        serde_json::json!({"name": "phone", "role": "rescuer", "subject_id": rid}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rtok = tok["token"].as_str().unwrap().to_string();
    let st = post(
        &r.base,
        "/api/v1/me/location",
        &rtok,
        serde_json::json!({"lat": 28.9705, "lon": 118.8702}),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(st.as_u16(), 204);
    let inc: Value = post(
        &r.base,
        "/api/v1/incidents",
        &dispatcher,
        serde_json::json!({"lat": 28.9700, "lon": 118.8700}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = inc["id"].as_i64().unwrap();
    let offers = inc["offers"].as_array().unwrap();
    assert!(
        offers
            .iter()
            .any(|o| o["rescuer_id"] == rid && o["state"] == "offered"),
        "{inc}"
    );

    let mut child = r.child;
    child.kill().unwrap(); // SIGKILL, mid-incident
    child.wait().unwrap();

    let r2 = start_env(dir.path(), &["demo"], &env);
    let get = || async {
        client
            .get(format!("{}/api/v1/incidents/{id}", r2.base))
            .bearer_auth(&dispatcher)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let after = get().await;
    assert_eq!(after["offers"], inc["offers"], "offers survive the crash");
    assert!(after["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "offered"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = get().await;
        let o = now["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rescuer_id"] == rid)
            .unwrap()
            .clone();
        if o["state"] == "timed_out" {
            assert!(now["audit_log"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "timed_out"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the offer timer did not resume: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(terminate(r2).success());
}

/// PostgreSQL stops (`-m immediate`) and starts again while devices flood telemetry. Each
/// device behaves as the protocol asks: on `internal` (or a dropped socket) it waits and sends
/// the same message again. Nothing acked is lost, nothing is stored twice, the caller's query
/// is answered throughout, and every AED's readiness is its last message's.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarting_mid_telemetry_flood_loses_nothing() {
    const DEVICES: usize = 3;
    const MESSAGES: u64 = 150;
    let pg = common::private_pg::PrivatePg::start_new();
    let url = pg.url();
    let store = aednet_store::connect(&url).await.unwrap();
    let (admin, new) = aednet_api::auth::new_token("test", aednet_core::Role::Admin, None);
    store.create_token(&new).await.unwrap();
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let r = start_env(
        dir.path(),
        &["serve"],
        &[
            ("AEDNET_DATABASE_URL", url.as_str()),
            ("AEDNET_LOG_LEVEL", "warn"),
            ("AEDNET_GATEWAY__MESSAGES_PER_S", "1000"),
            ("AEDNET_GATEWAY__BURST", "1000"),
            // The caller's query is polled 20 times a second from one address.
            ("AEDNET_PUBLIC__PER_MINUTE", "0"),
        ],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for i in 0..DEVICES {
        let resp = client
            .post(format!("{}/api/v1/aeds", r.base))
            .bearer_auth(&admin)
            .json(&common::aed_body(
                28.97 + 0.001 * i as f64,
                118.87,
                &format!("洪流{i}"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(device_for_unknown_aed(&r.base, &admin, i).await);
    }

    let stop_nearest = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let nearest = {
        let (client, base, stop) = (client.clone(), r.base.clone(), stop_nearest.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client
                    .get(format!("{base}/api/v1/aeds/nearest?lat=28.97&lon=118.87"))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 200 => {}
                    other => failures.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failures
        })
    };
    let mut floods = Vec::new();
    for (aed_id, token) in devices.clone() {
        let base = r.base.clone();
        floods.push(tokio::spawn(async move {
            let (mut refused, mut reconnects) = (0u32, 0u32);
            let mut ws = device_socket(&base, &token).await;
            let deadline = Instant::now() + Duration::from_secs(120);
            for seq in 1..=MESSAGES {
                loop {
                    assert!(Instant::now() < deadline, "device {aed_id} stuck at {seq}");
                    // The last message (even seq) closes the door.
                    if ws.send(door(seq, seq % 2 == 1)).await.is_err() {
                        reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        ws = device_socket(&base, &token).await;
                        continue;
                    }
                    match next_json(&mut ws).await {
                        Ok(v) if v["type"] == "ack" && v["seq"] == seq => break,
                        Ok(v) if v["type"] == "error" && v["code"] == "internal" => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(v) => panic!("device {aed_id}: unexpected {v}"),
                        Err(_) => {
                            reconnects += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            ws = device_socket(&base, &token).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (aed_id, refused, reconnects)
        }));
    }
    // Mid-flood: PostgreSQL goes away for three seconds.
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.stop_immediate();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start();

    let mut hit = 0;
    for f in floods {
        let (aed_id, refused, reconnects) = f.await.unwrap();
        eprintln!(
            "device {aed_id}: {refused} messages refused (internal), {reconnects} reconnects"
        );
        hit += refused + reconnects;
    }
    assert!(
        hit > 0,
        "the outage never reached a device: the test proved nothing"
    );
    stop_nearest.store(true, std::sync::atomic::Ordering::Relaxed);
    let failures = nearest.await.unwrap();
    assert!(
        failures.is_empty(),
        "the caller's query failed: {failures:?}"
    );

    let store = aednet_store::connect(&url).await.unwrap();
    for (aed_id, _) in &devices {
        assert_eq!(
            store.device_event_seqs(*aed_id).await.unwrap(),
            (1..=MESSAGES as i64).collect::<Vec<_>>(),
            "AED {aed_id}: every message stored exactly once"
        );
        let aed: Value = client
            .get(format!("{}/api/v1/aeds/{aed_id}", r.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            aed["readiness"]["status"], "unknown",
            "the last message closed the door: {aed}"
        );
    }
    assert!(terminate(r).success());
}
