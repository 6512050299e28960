//! MQTT with logins: aednet signs in to a private Mosquitto (password file, ACL as in
//! docs/device-protocol.md), devices sign in as their AED id and may publish only to their own
//! topic — a device writing to another AED's topic never reaches aednet; and with
//! `mqtt_require_token` (on the shared Mosquitto at 127.0.0.1:1883) a message counts only with
//! the device token of the AED in its topic.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aednet_core::Role;
use common::{send, Db, TestServer};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

fn msg(seq: u64, extra: Value) -> String {
    let mut m = json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z", "type": "self_test", "ok": false, "fault_codes": ["E7"]});
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m.to_string()
}

async fn new_aed(s: &TestServer) -> i64 {
    let (st, a) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &json!({"lat": 28.97, "lon": 118.87, "access": "yes"}),
    ))
    .await;
    assert_eq!(st, 201);
    a["id"].as_i64().unwrap()
}

/// A private Mosquitto, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Mosquitto on `port`: no anonymous logins, `users` (name, password) in a password file, and
/// the ACL of docs/device-protocol.md for `prefix`.
fn start_broker(prefix: &str, users: &[(String, String)], port: u16) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    for (i, (u, p)) in users.iter().enumerate() {
        let mut c = Command::new("mosquitto_passwd");
        if i == 0 {
            c.arg("-c");
        }
        let st = c.arg("-b").arg(&passwd).arg(u).arg(p).status().unwrap();
        assert!(st.success(), "mosquitto_passwd");
    }
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        format!(
            "user aednet\ntopic read {prefix}/devices/+/telemetry\ntopic write {prefix}/devices/+/ack\n\n\
             pattern write {prefix}/devices/%u/telemetry\npattern read {prefix}/devices/%u/ack\n"
        ),
    )
    .unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence false\nuser root\nlog_type error\n",
            passwd.display(),
            acl.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mosquitto is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        port,
        _dir: dir,
    }
}

/// A device's client, subscribed to its ack topic.
struct Device {
    client: AsyncClient,
    events: EventLoop,
    subscribed: bool,
}

impl Device {
    fn new(port: u16, id: &str, login: Option<(&str, &str)>, ack_topic: &str) -> Device {
        let mut o = MqttOptions::new(
            format!("dev-{id}-{}", uuid::Uuid::new_v4().simple()),
            "127.0.0.1",
            port,
        );
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (client, events) = AsyncClient::new(o, 64);
        let c = client.clone();
        let topic = ack_topic.to_string();
        tokio::spawn(async move { c.subscribe(topic, QoS::AtLeastOnce).await });
        Device {
            client,
            events,
            subscribed: false,
        }
    }

    /// Polls until subscribed (the ack topic is live), then publishes each of `frames` to its
    /// topic in order, again every 2 s (as a device resends what was not acked: aednet may not
    /// have subscribed yet), until the replies on the ack topic satisfy `done`.
    async fn exchange(
        &mut self,
        frames: &[(String, String)],
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        let mut next_send = Instant::now();
        while !done(&got) {
            assert!(Instant::now() < deadline, "MQTT replies: got {got:?}");
            if self.subscribed && Instant::now() >= next_send {
                next_send = Instant::now() + Duration::from_secs(2);
                for (topic, payload) in frames {
                    self.client
                        .publish(topic, QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .unwrap();
                }
            }
            match tokio::time::timeout(Duration::from_millis(500), self.events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => self.subscribed = true,
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    got.push(serde_json::from_slice::<Value>(&p.payload).unwrap());
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => panic!("device MQTT client: {e}"),
            }
        }
        got
    }
}

fn acked(seq: u64) -> impl Fn(&[Value]) -> bool {
    move |r: &[Value]| r.iter().any(|v| v == &json!({"type": "ack", "seq": seq}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sign_in_and_may_write_only_their_own_topic() {
    let prefix = format!("aednet-acl-{}", uuid::Uuid::new_v4().simple());
    // The broker comes up after aednet: it keeps retrying.
    let port = free_port();
    let s = TestServer::start_full(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits::default(),
        aednet_device_gateway::GatewayConfig {
            mqtt_url: Some(format!("mqtt://127.0.0.1:{port}")),
            mqtt_prefix: prefix.clone(),
            mqtt_username: Some("aednet".into()),
            mqtt_password: Some(aednet_core::secret::Secret::new("gateway-pw")),
            ..Default::default()
        },
    )
    .await;
    let a = new_aed(&s).await;
    let b = new_aed(&s).await;
    let users = [
        ("aednet".to_string(), "gateway-pw".to_string()),
        (a.to_string(), "pw-a".to_string()),
        (b.to_string(), "pw-b".to_string()),
    ];
    let broker = start_broker(&prefix, &users, port);
    let topic = |id: i64, kind: &str| format!("{prefix}/devices/{id}/{kind}");
    let mut dev_a = Device::new(
        broker.port,
        "a",
        Some((&a.to_string(), "pw-a")),
        &topic(a, "ack"),
    );
    // A's message to B's topic is dropped by the broker; A's own message is acked after it.
    let replies = dev_a
        .exchange(
            &[
                (topic(b, "telemetry"), msg(1, json!({}))),
                (topic(a, "telemetry"), msg(1, json!({}))),
            ],
            acked(1),
        )
        .await;
    assert!(replies.iter().all(|r| r["type"] == "ack"), "{replies:?}");
    assert_eq!(s.store.device_event_seqs(a).await.unwrap(), vec![1]);
    assert!(
        s.store.device_event_seqs(b).await.unwrap().is_empty(),
        "a device cannot write another AED's topic"
    );
    // B, on its own topic, is heard.
    let mut dev_b = Device::new(
        broker.port,
        "b",
        Some((&b.to_string(), "pw-b")),
        &topic(b, "ack"),
    );
    dev_b
        .exchange(&[(topic(b, "telemetry"), msg(7, json!({})))], acked(7))
        .await;
    assert_eq!(s.store.device_event_seqs(b).await.unwrap(), vec![7]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_token_only_the_aeds_own_device_token_counts() {
    let prefix = format!("aednet-tok-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::start_full(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits::default(),
        aednet_device_gateway::GatewayConfig {
            mqtt_url: Some("mqtt://127.0.0.1:1883".into()),
            mqtt_prefix: prefix.clone(),
            mqtt_require_token: true,
            ..Default::default()
        },
    )
    .await;
    let a = new_aed(&s).await;
    let b = new_aed(&s).await;
    let token = |id: i64| aednet_api::auth::new_token("cabinet", Role::Device, Some(id));
    let (ta, na) = token(a);
    let (tb, nb) = token(b);
    s.store.create_token(&na).await.unwrap();
    s.store.create_token(&nb).await.unwrap();
    let topic = format!("{prefix}/devices/{a}/telemetry");
    let mut dev = Device::new(1883, "a", None, &format!("{prefix}/devices/{a}/ack"));
    let replies = dev
        .exchange(
            &[
                (topic.clone(), msg(1, json!({}))),
                (topic.clone(), msg(2, json!({"token": tb}))),
                (topic.clone(), msg(3, json!({"token": "aed_forged"}))),
                (topic.clone(), msg(4, json!({"token": ta}))),
            ],
            acked(4),
        )
        .await;
    // Each round: three refusals, then the ack of the one with the right token.
    let refused = replies
        .iter()
        .filter(|r| r["code"] == "unauthorized")
        .count();
    assert!(refused >= 3, "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|r| r["code"] == "unauthorized" || r == &json!({"type": "ack", "seq": 4})),
        "{replies:?}"
    );
    assert_eq!(s.store.device_event_seqs(a).await.unwrap(), vec![4]);
    assert!(s.store.device_event_seqs(b).await.unwrap().is_empty());
    s.stop().await;
}
