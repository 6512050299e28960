//! Fault injection, the store failing under the real binary, each time with nothing acked
//! lost and the service answering afterwards:
//! - SQLite on a full disk (the data directory on a small tmpfs, filled up by another file):
//!   devices get `internal` ("resend"), API writes 503 with nothing changed, callers are still
//!   answered from memory, and everything works again once space returns;
//! - PostgreSQL (a private server) stopped and started again in the middle of a telemetry
//!   flood: devices get `internal` and resend, and every message ends up stored exactly once.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::Value;

mod common;

use common::wire::*;
use common::{start_aednet as start_env, terminate};

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
            // The longest wait for an answer: a write held until PostgreSQL is back shows here.
            let mut slowest = Duration::ZERO;
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
                    let sent = Instant::now();
                    let reply = next_json(&mut ws).await;
                    slowest = slowest.max(sent.elapsed());
                    match reply {
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
            (aed_id, refused, reconnects, slowest)
        }));
    }
    // Mid-flood: PostgreSQL goes away for three seconds.
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.stop_immediate();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start();

    // Each device either saw the outage (refused, reconnected) or waited through it for its
    // answer (the store held the write until PostgreSQL was back): either way it reached it.
    let mut hit = 0;
    for f in floods {
        let (aed_id, refused, reconnects, slowest) = f.await.unwrap();
        eprintln!(
            "device {aed_id}: {refused} refused (internal), {reconnects} reconnects, slowest answer {slowest:?}"
        );
        if refused + reconnects > 0 || slowest >= Duration::from_millis(1500) {
            hit += 1;
        }
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
