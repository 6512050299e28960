//! Device simulator: real WebSocket clients speaking the telemetry protocol to the real server,
//! many at once, with configurable rate and fault injection; reports ack throughput, ack
//! latency, server memory per socket, and how long a fault takes to leave nearest answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::Role;
use anyhow::Context;
use futures::SinkExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::workload;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub devices: usize,
    pub seconds: u64,
    /// Messages per second per device.
    pub rate: f64,
    /// One message in this many is a status change (self-test fail/pass alternating).
    pub fault_every: u64,
}

#[derive(Debug)]
pub struct SimReport {
    pub devices: usize,
    pub connected: usize,
    pub connect_seconds: f64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ack_latency: Histogram<u64>,
    /// Messages not sent because the socket's send buffer was full (server behind).
    pub skipped: u64,
    /// Acks that came more than 64 messages after their message (latency not recorded).
    pub late: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// At the end of the send phase (buffers in use).
    pub rss_loaded_kib: u64,
    pub fault_to_nearest_ms: Option<f64>,
    /// Server CPU time (user + system) during the send phase, in seconds.
    pub server_cpu_s: f64,
    /// The simulator's own CPU time during the send phase.
    pub sim_cpu_s: f64,
    /// Server CPU from the start until every sent message was answered, and the acks by then:
    /// CPU per message that does not depend on whether the window ended with a backlog.
    pub server_cpu_all_s: f64,
    pub acked_all: u64,
}

/// CPU time used so far by a process (user + system), in seconds (Linux, 100 ticks/s).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// Resident memory of a process in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Prepares a SQLite database with `n` AEDs and one device token each; returns the tokens.
pub async fn prepare(url: &str, n: usize) -> anyhow::Result<Vec<(i64, String)>> {
    let store = aednet_store::connect(url).await?;
    let now = chrono::Utc::now();
    let mut aeds = workload::aeds(n, 99);
    for a in &mut aeds {
        a.status = aednet_core::aed::ReadinessStatus::Unknown;
        a.access = aednet_core::aed::Access::Yes;
        a.hours = 0;
    }
    let data: Vec<_> = aeds.iter().map(|a| workload::aed_data(a, now)).collect();
    store.insert_aeds_bulk(&data).await?;
    let ids: Vec<i64> = store
        .load_aed_index()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut tokens = Vec::with_capacity(ids.len());
    for id in ids {
        let (secret, new) =
            aednet_api::auth::new_token(&format!("sim-{id}"), Role::Device, Some(id));
        store.create_token(&new).await?;
        tokens.push((id, secret));
    }
    Ok(tokens)
}

/// Writes one client text frame (FIN, masked as RFC 6455 requires of clients) for message
/// `seq` into `out`: a heartbeat, or every `fault_every`-th a self-test alternating fail/pass.
fn encode(out: &mut Vec<u8>, seq: u64, fault_every: u64, mask: [u8; 4]) {
    use std::io::Write as _;
    let mut payload = [0u8; 160];
    let mut w = &mut payload[..];
    let _ = if fault_every > 0 && seq.is_multiple_of(fault_every) {
        let ok = (seq / fault_every).is_multiple_of(2);
        write!(
            w,
            r#"{{"v":1,"seq":{seq},"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":{ok},"fault_codes":["E1"]}}"#
        )
    } else {
        write!(
            w,
            r#"{{"v":1,"seq":{seq},"ts":"2026-11-24T08:00:00Z","type":"heartbeat","battery_pct":87,"signal_dbm":-71}}"#
        )
    };
    let len = 160 - w.len();
    out.clear();
    out.push(0x81);
    out.push(0x80 | len as u8); // < 126: one length byte
    out.extend_from_slice(&mask);
    out.extend(
        payload[..len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3]),
    );
}

/// A masked pong (answer to a server ping), empty payload.
const PONG: [u8; 6] = [0x8A, 0x80, 0, 0, 0, 0];

/// Send times of a device's recent messages, by seq modulo the ring size, for ack latency.
struct Ring {
    seqs: Vec<AtomicU64>,
    nanos: Vec<AtomicU64>,
    pong_due: AtomicBool,
}

const RING: usize = 64;

impl Ring {
    fn new() -> Self {
        Self {
            seqs: (0..RING).map(|_| AtomicU64::new(u64::MAX)).collect(),
            nanos: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            pong_due: AtomicBool::new(false),
        }
    }
}

struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    /// Not sent: the socket's send buffer was full (the server is behind).
    skipped: AtomicU64,
    /// Acks whose send time had left the ring (more than 64 messages behind).
    late: AtomicU64,
    hist: Vec<parking_lot::Mutex<Histogram<u64>>>,
}

/// Reads one device's server frames (unmasked): counts acks and errors, records latency.
async fn read_acks(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    ring: Arc<Ring>,
    c: Arc<Counters>,
    t0: Instant,
    shard: usize,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    loop {
        let n = match rd.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut pos = 0;
        let now = t0.elapsed().as_nanos() as u64;
        while filled - pos >= 2 {
            let (op, l0) = (buf[pos] & 0x0f, (buf[pos + 1] & 0x7f) as usize);
            let (hdr, len) = match l0 {
                126 if filled - pos >= 4 => {
                    (4, u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize)
                }
                126 => break,
                127 => return, // never sent by the gateway
                l => (2, l),
            };
            if filled - pos < hdr + len {
                break;
            }
            let payload = &buf[pos + hdr..pos + hdr + len];
            match op {
                0x1 if payload.starts_with(br#"{"type":"ack","seq":"#) => {
                    c.acked.fetch_add(1, Ordering::Relaxed);
                    let digits = &payload[20..payload.len() - 1];
                    let seq = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse::<u64>().ok())
                        .unwrap_or(u64::MAX);
                    let i = (seq % RING as u64) as usize;
                    if ring.seqs[i].load(Ordering::Acquire) == seq {
                        let sent = ring.nanos[i].load(Ordering::Relaxed);
                        let _ = c.hist[shard]
                            .lock()
                            .record((now.saturating_sub(sent) / 1000).max(1));
                    } else {
                        c.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0x1 => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    ONCE.call_once(|| {
                        eprintln!(
                            "first error frame from the server: {}",
                            String::from_utf8_lossy(payload)
                        );
                    });
                }
                0x9 => ring.pong_due.store(true, Ordering::Relaxed),
                0x8 => {
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    ONCE.call_once(|| {
                        let code = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                        eprintln!("first socket closed by the server: {code:?} {reason}");
                    });
                    return;
                }
                _ => {}
            }
            pos += hdr + len;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            return; // a frame larger than the buffer: not from this protocol
        }
    }
}

struct Device {
    wr: tokio::net::tcp::OwnedWriteHalf,
    ring: Arc<Ring>,
    seq: u64,
    /// Bytes of a frame the socket did not take whole (written before the next message).
    rest: Vec<u8>,
}

impl Device {
    /// Writes without waiting; `false` if the socket's send buffer is full.
    fn try_send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        if !self.rest.is_empty() {
            match self.wr.try_write(&self.rest) {
                Ok(n) => {
                    self.rest.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if !self.rest.is_empty() {
                return Ok(false);
            }
        }
        match self.wr.try_write(frame) {
            Ok(n) => {
                self.rest.extend_from_slice(&frame[n..]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// One task drives many devices: every millisecond it sends the messages due by then
/// (`rate` per device per second, round-robin), each as one pre-masked frame written straight to
/// the socket — no per-device timers or tasks on the sending side.
async fn drive(
    mut devices: Vec<Device>,
    rate: f64,
    fault_every: u64,
    c: Arc<Counters>,
    t0: Instant,
    stop: Arc<AtomicBool>,
    mut seed: u32,
) {
    let start = Instant::now();
    let n = devices.len();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut done: u64 = 0;
    let mut next = 0usize;
    let mut frame = Vec::with_capacity(200);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate * n as f64) as u64;
        while done < due {
            done += 1;
            let d = &mut devices[next];
            next = (next + 1) % n;
            if d.ring.pong_due.swap(false, Ordering::Relaxed) {
                let _ = d.try_send(&PONG);
            }
            // xorshift32: a fresh mask per frame, as clients must.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let seq = d.seq + 1;
            encode(&mut frame, seq, fault_every, seed.to_le_bytes());
            let i = (seq % RING as u64) as usize;
            d.ring.nanos[i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            d.ring.seqs[i].store(seq, Ordering::Release);
            match d.try_send(&frame) {
                Ok(true) => {
                    d.seq = seq;
                    c.sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {
                    c.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs the simulation against `bases` (http://host:port, one per node: device `i` connects to
/// `bases[i % len]`); `server_pids` for memory and CPU (summed over the nodes).
///
/// Each device is a real WebSocket client: the upgrade handshake with its device token through
/// tungstenite, then frames written and read directly on its TCP socket (masked client frames,
/// pongs to pings), so that the simulator's own cost per message stays well below the server's.
pub async fn simulate(
    bases: &[String],
    server_pids: &[u32],
    tokens: &[(i64, String)],
    o: &SimOptions,
) -> anyhow::Result<SimReport> {
    anyhow::ensure!(!bases.is_empty(), "no server to connect to");
    let ws_urls: Vec<String> = bases
        .iter()
        .map(|b| b.replace("http://", "ws://") + "/ws/device")
        .collect();
    let rss = || server_pids.iter().map(|p| rss_kib(*p)).sum::<u64>();
    let cpu = || server_pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    let rss_before_kib = rss();
    let c = Arc::new(Counters {
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        late: AtomicU64::new(0),
        hist: (0..16)
            .map(|_| {
                parking_lot::Mutex::new(
                    Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds"),
                )
            })
            .collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    // Connect everyone first (256 at a time), then start sending together.
    let mut streams = Vec::with_capacity(tokens.len());
    for (c_i, chunk) in tokens.chunks(256).enumerate() {
        let mut pending = Vec::new();
        for (j, (_, token)) in chunk.iter().enumerate() {
            let ws_url = &ws_urls[(c_i * 256 + j) % ws_urls.len()];
            let mut req = ws_url.as_str().into_client_request()?;
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            pending.push(tokio_tungstenite::connect_async(req));
        }
        for r in futures::future::join_all(pending).await {
            match r {
                Ok((ws, _)) => match ws.into_inner() {
                    tokio_tungstenite::MaybeTlsStream::Plain(tcp) => streams.push(tcp),
                    _ => anyhow::bail!("expected a plain TCP stream"),
                },
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    tracing_fallback(&e.to_string());
                }
            }
        }
    }
    let connect_seconds = t0.elapsed().as_secs_f64();
    let connected = streams.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after_kib = rss();

    let drivers = 4usize;
    let mut groups: Vec<Vec<Device>> = (0..drivers).map(|_| Vec::new()).collect();
    let mut readers = Vec::with_capacity(connected);
    for (i, tcp) in streams.into_iter().enumerate() {
        let _ = tcp.set_nodelay(true);
        let (rd, wr) = tcp.into_split();
        let ring = Arc::new(Ring::new());
        readers.push(tokio::spawn(read_acks(
            rd,
            ring.clone(),
            c.clone(),
            t0,
            i % 16,
        )));
        groups[i % drivers].push(Device {
            wr,
            ring,
            seq: 0,
            rest: Vec::new(),
        });
    }
    let started = Instant::now();
    let cpu0 = cpu();
    let own0 = cpu_seconds(std::process::id());
    let mut tasks = Vec::new();
    for (g, devices) in groups.into_iter().enumerate() {
        if devices.is_empty() {
            continue;
        }
        tasks.push(tokio::spawn(drive(
            devices,
            o.rate,
            o.fault_every,
            c.clone(),
            t0,
            stop.clone(),
            0x9E37_79B9 ^ (g as u32 + 1),
        )));
    }
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let acked_at_end = c.acked.load(Ordering::Relaxed);
    let sent_at_end = c.sent.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu() - cpu0;
    let sim_cpu_s = cpu_seconds(std::process::id()) - own0;
    let rss_loaded_kib = rss();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    // Trailing acks: wait until every sent message is answered (or 60 s), so that the server's
    // CPU can be divided by the messages it really handled, overloaded or not.
    let sent_total = c.sent.load(Ordering::Relaxed);
    let answered = || c.acked.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
    let wait_until = Instant::now() + Duration::from_secs(60);
    while answered() < sent_total && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server_cpu_all_s = cpu() - cpu0;
    let acked_all = c.acked.load(Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    let mut ack_latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
    for h in &c.hist {
        let _ = ack_latency.add(&*h.lock());
    }
    Ok(SimReport {
        devices: tokens.len(),
        connected,
        connect_seconds,
        sent: sent_at_end,
        acked: acked_at_end,
        errors: c.errors.load(Ordering::Relaxed),
        skipped: c.skipped.load(Ordering::Relaxed),
        late: c.late.load(Ordering::Relaxed),
        seconds,
        ack_latency,
        rss_before_kib,
        rss_after_kib,
        rss_loaded_kib,
        fault_to_nearest_ms: None,
        server_cpu_s,
        sim_cpu_s,
        server_cpu_all_s,
        acked_all,
    })
}

fn tracing_fallback(e: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("a device could not connect: {e}"));
}

/// One device reports a self-test fault; returns how long until its AED leaves the nearest
/// answer at its own position.
pub async fn fault_to_nearest(base: &str, aed_id: i64, token: &str) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let aed: serde_json::Value = client
        .get(format!("{base}/api/v1/aeds/{aed_id}"))
        .send()
        .await?
        .json()
        .await?;
    let (lat, lon) = (
        aed["location"]["lat"].as_f64().context("lat")?,
        aed["location"]["lon"].as_f64().context("lon")?,
    );
    let near =
        format!("{base}/api/v1/aeds/nearest?lat={lat}&lon={lon}&k=1&readiness=not_known_bad");
    let listed = |v: &serde_json::Value| {
        v["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["id"] == aed_id))
    };
    let mut req = (base.replace("http://", "ws://") + "/ws/device").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    // The simulation may have left it faulty: a passing self-test first, then wait for the index.
    ws.send(Message::Text(
        r#"{"v":1,"seq":8999999999,"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":true}"#
            .into(),
    ))
    .await?;
    let t = Instant::now();
    loop {
        let v: serde_json::Value = client.get(&near).send().await?.json().await?;
        if listed(&v) {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(10),
            "the probe AED never became ready"
        );
    }
    let t = Instant::now();
    ws.send(Message::Text(
        r#"{"v":1,"seq":9000000000,"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":false,"fault_codes":["E9"]}"#.into(),
    ))
    .await?;
    loop {
        let v: serde_json::Value = client.get(&near).send().await?.json().await?;
        if !listed(&v) {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(10),
            "fault never reached the index"
        );
    }
}
