//! NatsBus and NatsPeers against a real NATS JetStream server: two "nodes" (two Cluster
//! instances with their own connections) in one process, a unique prefix per test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aednet_cluster::{stream_name, Cluster, ClusterConfig};
use aednet_core::{Event, EventBus, IncidentCall, PeerError, Peers, Signal};
use futures::StreamExt;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);

fn nats_url() -> String {
    std::env::var("AEDNET_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A unique prefix whose stream is deleted when the test ends (also when it fails).
struct TestPrefix(String);

impl TestPrefix {
    fn new() -> Self {
        Self(format!("t{}", uuid::Uuid::new_v4().simple()))
    }
    fn config(&self, nats_url: &str) -> ClusterConfig {
        ClusterConfig {
            nats_url: Some(nats_url.to_string()),
            prefix: self.0.clone(),
            stream_max_age_s: 600,
            ..ClusterConfig::default()
        }
    }
    async fn stream(&self) -> async_nats::jetstream::stream::Stream {
        let client = async_nats::connect(nats_url()).await.unwrap();
        async_nats::jetstream::new(client)
            .get_stream(stream_name(&self.0))
            .await
            .unwrap()
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let name = stream_name(&self.0);
        // Drop cannot await; a private runtime on its own thread deletes the stream.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&name)
                        .await;
                }
            });
        })
        .join();
    }
}

async fn connect(prefix: &TestPrefix) -> Cluster {
    Cluster::connect(&prefix.config(&nats_url()))
        .await
        .expect("NATS must be reachable at AEDNET_TEST_NATS_URL")
}

async fn next_event(rx: &mut broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within the deadline")
        .expect("no lag, no close")
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn aed(id: i64) -> Event {
    Event::AedUpserted { id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_other_node_in_order_and_never_echo() {
    let prefix = TestPrefix::new();
    let a = connect(&prefix).await;
    let b = connect(&prefix).await;
    assert_ne!(a.node_id, b.node_id);
    let mut a_rx = a.bus.subscribe();
    let mut b_rx = b.bus.subscribe();

    let n = 200;
    for id in 1..=n {
        a.bus.publish(aed(id));
        b.bus.publish(Event::StationUpserted { id });
    }
    // Each node's subscribers: its own events at once and the other's from the stream, each
    // exactly once, each node's in its publishing order.
    for (name, rx) in [("A", &mut a_rx), ("B", &mut b_rx)] {
        let (mut aeds, mut stations) = (Vec::new(), Vec::new());
        while aeds.len() < n as usize || stations.len() < n as usize {
            match next_event(rx).await {
                Event::AedUpserted { id } => aeds.push(id),
                Event::StationUpserted { id } => stations.push(id),
                other => panic!("{name} got {other:?}"),
            }
        }
        let want: Vec<i64> = (1..=n).collect();
        assert_eq!(aeds, want, "{name}: A's events");
        assert_eq!(stations, want, "{name}: B's events");
    }
    // Both nodes saw their own copies on the stream and skipped them.
    eventually("own events skipped", || {
        a.bus.stats().skipped_own == n as u64 && b.bus.stats().skipped_own == n as u64
    })
    .await;
    assert!(a.bus.flush(WAIT).await && b.bus.flush(WAIT).await);
    let (sa, sb) = (a.bus.stats(), b.bus.stats());
    assert_eq!(
        (sa.published, sa.received, sa.publish_failed),
        (n as u64, n as u64, 0)
    );
    assert_eq!(
        (sb.published, sb.received, sb.resyncs),
        (n as u64, n as u64, 0)
    );
    assert!(
        a_rx.try_recv().is_err() && b_rx.try_recv().is_err(),
        "no duplicates"
    );
    assert_eq!(
        prefix
            .stream()
            .await
            .get_info()
            .await
            .unwrap()
            .state
            .messages,
        2 * n as u64
    );

    // A bad payload on the stream is skipped, and the next event still arrives.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(format!("{}.events.aed_upserted", prefix.0), "{nope".into())
        .await
        .unwrap()
        .await
        .unwrap();
    a.bus.publish(aed(n + 1));
    assert_eq!(next_event(&mut b_rx).await, aed(n + 1));
    assert_eq!(b.bus.stats().bad_payloads, 1);

    // A rough figure for the report (not an assertion): one node's publish rate, each event
    // acked before the next is sent, and B's delivery of them.
    let burst = 2000;
    let started = Instant::now();
    for id in 1..=burst {
        a.bus.publish(aed(10_000 + id));
    }
    assert!(a.bus.flush(WAIT).await);
    let stored = started.elapsed();
    for id in 1..=burst {
        assert_eq!(next_event(&mut b_rx).await, aed(10_000 + id));
    }
    eprintln!(
        "{burst} events: stored in {stored:?} ({:.0}/s), at B after {:?}",
        burst as f64 / stored.as_secs_f64(),
        started.elapsed()
    );
}

/// A TCP proxy in front of NATS that can cut every connection through it and refuse new ones.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection close
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Proxy {
            url,
            up,
            conns,
            accept,
        }
    }
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn expect_aeds(rx: &mut broadcast::Receiver<Event>, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        assert_eq!(next_event(rx).await, aed(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disrupted_node_catches_up_from_the_stream_or_resyncs() {
    let prefix = TestPrefix::new();
    let upstream = nats_url().trim_start_matches("nats://").to_string();
    let proxy = Proxy::start(upstream).await;
    let a = connect(&prefix).await;
    let b = Cluster::connect(&prefix.config(&proxy.url)).await.unwrap();
    let mut b_rx = b.bus.subscribe();

    a.bus.publish(aed(1));
    expect_aeds(&mut b_rx, 1..=1).await;

    // 1. B's consumer is deleted on the server: it is recreated from where B was.
    let stream = prefix.stream().await;
    let b_consumer: String = b
        .node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    let mine: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&b_consumer))
        .collect();
    assert_eq!(mine.len(), 1, "B's consumer among {names:?}");
    stream.delete_consumer(mine[0]).await.unwrap();
    for id in 2..=20 {
        a.bus.publish(aed(id));
    }
    expect_aeds(&mut b_rx, 2..=20).await;

    // 2. B's connection is cut while A publishes: B gets every event once it is back.
    proxy.cut();
    for id in 21..=40 {
        a.bus.publish(aed(id));
    }
    assert!(a.bus.flush(WAIT).await);
    tokio::time::sleep(Duration::from_millis(200)).await; // B is away for a while
    proxy.restore();
    expect_aeds(&mut b_rx, 21..=40).await;
    assert_eq!(b.bus.stats().resyncs, 0);

    // 3. Events B never saw are purged while it is away: B's subscribers are told to resync
    //    from the store, then follow the stream again.
    proxy.cut();
    for id in 41..=45 {
        a.bus.publish(aed(id));
    }
    assert!(a.bus.flush(WAIT).await);
    stream.purge().await.unwrap();
    a.bus.publish(aed(46));
    assert!(a.bus.flush(WAIT).await);
    proxy.restore();
    assert_eq!(
        next_event(&mut b_rx).await,
        Event::BulkChange {
            source: "resync".into()
        }
    );
    expect_aeds(&mut b_rx, 46..=46).await;
    assert_eq!(b.bus.stats().resyncs, 1);

    // 4. Purged while idle with nothing after it: the periodic check notices.
    proxy.cut();
    a.bus.publish(aed(47));
    assert!(a.bus.flush(WAIT).await);
    stream.purge().await.unwrap();
    proxy.restore();
    assert_eq!(
        next_event(&mut b_rx).await,
        Event::BulkChange {
            source: "resync".into()
        }
    );
    a.bus.publish(aed(48));
    expect_aeds(&mut b_rx, 48..=48).await;
    assert!(b_rx.try_recv().is_err());
    eprintln!("B after the disruptions: {:?}", b.bus.stats());
}

async fn next_signal(rx: &mut broadcast::Receiver<Signal>) -> Signal {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a signal within the deadline")
        .expect("no lag, no close")
}

fn board(frame: &str) -> Signal {
    Signal::Board {
        frame: frame.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_other_nodes_only_and_are_never_stored() {
    let prefix = TestPrefix::new();
    let a = connect(&prefix).await;
    let b = connect(&prefix).await;
    let mut a_rx = a.peers.signals();
    let mut b_rx = b.peers.signals();

    let moved = Signal::RescuerMoved {
        rescuer_id: 9,
        lat: 47.14,
        lon: 9.52,
        at: chrono::Utc::now(),
    };
    a.peers.signal(board("a1"));
    a.peers.signal(moved.clone());
    assert_eq!(next_signal(&mut b_rx).await, board("a1"));
    assert_eq!(next_signal(&mut b_rx).await, moved);
    // By now A's own copies would have reached A; B's answer comes after them.
    b.peers.signal(board("b1"));
    assert_eq!(next_signal(&mut a_rx).await, board("b1"));
    assert!(a_rx.try_recv().is_err(), "A never hears itself");
    assert!(b_rx.try_recv().is_err(), "B never hears itself");

    // Positions travel on core NATS only: no stream holds the signal subject.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    assert!(js
        .stream_by_subject(format!("{}.signal", prefix.0))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_the_owner_and_unanswered_calls_time_out() {
    let prefix = TestPrefix::new();
    let a = connect(&prefix).await;
    let b = connect(&prefix).await;
    let mut calls = b.peers.take_calls().expect("first take");
    assert!(b.peers.take_calls().is_none(), "taken once");
    let owner = b.node_id.clone();
    tokio::spawn(async move {
        while let Some(request) = calls.recv().await {
            if request.call.incident_id == 42 {
                let _ = request
                    .reply
                    .send(json!({ "owner": owner, "got": request.call.body }));
            } // other incidents: dropped, someone else owns them
        }
    });

    let call = IncidentCall {
        incident_id: 42,
        body: json!({ "action": "close" }),
    };
    let answer = a.peers.call(&call, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        answer,
        json!({ "owner": b.node_id, "got": { "action": "close" } })
    );

    // Nobody owns 7: NoAnswer after about the timeout.
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let unowned = IncidentCall {
        incident_id: 7,
        body: json!({}),
    };
    assert_eq!(
        a.peers.call(&unowned, timeout).await,
        Err(PeerError::NoAnswer(7))
    );
    let waited = started.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(50) && waited < timeout * 3,
        "{waited:?}"
    );

    // B's call for 42 does not loop back to B's own engine, and A has not taken its calls.
    assert_eq!(
        b.peers.call(&call, timeout).await,
        Err(PeerError::NoAnswer(42))
    );
}

#[tokio::test]
async fn an_unreachable_nats_fails_loudly() {
    let cfg = ClusterConfig {
        nats_url: Some("nats://127.0.0.1:1".into()),
        ..ClusterConfig::default()
    };
    assert!(Cluster::connect(&cfg).await.is_err());
    assert!(Cluster::connect(&ClusterConfig::default()).await.is_err());
}
