//! PgLeases against a real PostgreSQL: a fresh database per test, two "nodes" in one process.

use std::time::Duration;

use aednet_cluster::PgLeases;
use aednet_core::{Leases, PeerError};
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

fn admin_url() -> String {
    std::env::var("AEDNET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database; its URL.
async fn fresh_database() -> (String, String) {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL must be reachable at AEDNET_TEST_PG_URL");
    let name = format!("t{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin
        .rsplit_once('/')
        .expect("admin URL ends in /<database>");
    (name.clone(), format!("{base}/{name}"))
}

async fn drop_database(name: &str) {
    let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Polls `f` until it returns true; panics with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_exclusive_and_a_dead_session_hands_them_over() {
    let (db, url) = fresh_database().await;
    let heartbeat = Duration::from_millis(200);
    let a = PgLeases::connect(&url, "node-a", heartbeat).await.unwrap();
    let b = PgLeases::connect(&url, "node-b", heartbeat).await.unwrap();

    // Exclusive while held, re-entrant for the holder, free after release.
    assert_eq!(a.try_acquire(5).await, Ok(true));
    assert_eq!(a.try_acquire(5).await, Ok(true));
    assert_eq!(b.try_acquire(5).await, Ok(false));
    assert_eq!(a.held(), vec![5]);
    a.release(5).await;
    assert!(a.held().is_empty());
    assert_eq!(b.try_acquire(5).await, Ok(true));
    assert_eq!(a.try_acquire(5).await, Ok(false));
    assert_eq!(b.try_acquire(7).await, Ok(true));
    assert_eq!(b.held(), vec![5, 7]);

    // Ids that do not fit the lock key are refused, not truncated onto another incident.
    let big = i64::from(i32::MAX) + 5;
    assert!(matches!(
        a.try_acquire(big).await,
        Err(PeerError::Transport(m)) if m.contains(&big.to_string())
    ));

    // B's session dies while B lives on (PostgreSQL restarted, a network blip), and new
    // sessions are refused for a while: B learns that it lost everything, and its leases are
    // free for others meanwhile — A takes 5.
    assert_eq!(b.try_acquire(8).await, Ok(true));
    let mut b_lost = b.lost();
    let lost_before = *b_lost.borrow_and_update();
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let allow = |on: bool| format!(r#"ALTER DATABASE "{db}" ALLOW_CONNECTIONS {on}"#);
    sqlx::query(&allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind("aednet-leases node-b")
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true], "B has exactly one lease session");
    let started = Instant::now();
    eventually(Duration::from_secs(5), "A takes B's lease", || async {
        a.try_acquire(5).await == Ok(true)
    })
    .await;
    let handover = started.elapsed();
    tokio::time::timeout(
        Duration::from_secs(5),
        b_lost.wait_for(|n| *n > lost_before),
    )
    .await
    .expect("B's lost() changes")
    .unwrap();
    assert!(b.held().is_empty(), "B forgot its leases: {:?}", b.held());
    assert!(
        b.try_acquire(6).await.is_err(),
        "nothing is granted without a session"
    );
    // B's incident 8 closes while it is cut off: that lease is not wanted back.
    b.release(8).await;

    // Sessions are allowed again: B's new session first takes back what it had and nobody
    // took (7), not what A took meanwhile (5), nor what it released (8).
    sqlx::query(&allow(true)).execute(&mut admin).await.unwrap();
    eventually(Duration::from_secs(10), "B takes 7 back", || async {
        b.held() == vec![7]
    })
    .await;
    assert_eq!(b.try_acquire(5).await, Ok(false));
    assert_eq!(a.try_acquire(8).await, Ok(true));
    a.release(8).await;
    assert_eq!(b.try_acquire(6).await, Ok(true));
    assert_eq!(b.try_acquire(7).await, Ok(true));

    // A node that goes away (its connection closes) frees its leases too.
    drop(a);
    eventually(
        Duration::from_secs(5),
        "B takes A's lease after A is gone",
        || async { b.try_acquire(5).await == Ok(true) },
    )
    .await;
    assert_eq!(b.held(), vec![5, 6, 7]);
    eprintln!("lease handover after pg_terminate_backend: {handover:?}");

    drop(b);
    drop_database(&db).await;
}

#[tokio::test]
async fn an_unreachable_database_fails_loudly_without_its_password() {
    let err = PgLeases::connect(
        "postgres://someone:s3cret-pw@127.0.0.1:1/nowhere",
        "node-x",
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    let shown = format!("{err:#}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
}
