//! The maintenance list's query (`Store::attention_list`) over 10^5 AEDs, on SQLite and
//! PostgreSQL: ~4 % in a bad state, ~2 % with pads or battery expiring within 30 days — a
//! city-sized registry where most cabinets are fine.
//!
//! `cargo bench -p aednet-store --bench attention` (PostgreSQL from `AEDNET_TEST_PG_URL`, default
//! 127.0.0.1:5432; a fresh database is created and dropped).

use std::time::Duration;

use aednet_core::aed::{AedData, AedInput, ReadinessStatus};
use aednet_store::AttentionQuery;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};

const N: usize = 100_000;

fn synthetic(n: usize) -> Vec<AedData> {
    let now = Utc::now();
    let template = AedInput {
        lat: 29.0,
        lon: 119.0,
        name: Some("AED".into()),
        time_zone: Some(chrono_tz::Asia::Shanghai),
        ..Default::default()
    }
    .validate(now)
    .unwrap();
    let today = now.date_naive();
    (0..n)
        .map(|i| {
            let mut d = template.clone();
            let f = i as f64;
            d.location.lat = 28.5 + (f * 0.618_033_988_75).fract();
            d.location.lon = 118.5 + (f * 0.414_213_562_37).fract();
            d.district_id = None;
            d.readiness.status = match i % 100 {
                0 => ReadinessStatus::Fault,
                1 => ReadinessStatus::Offline,
                2 => ReadinessStatus::Degraded,
                3 => ReadinessStatus::InUse,
                4..=30 => ReadinessStatus::Ready,
                _ => ReadinessStatus::Unknown,
            };
            d.readiness.since = now - chrono::Duration::minutes((i % 977) as i64);
            // Spread over four years: ~2 % within 30 days.
            d.pads_expiry = Some(today + chrono::Duration::days((i * 7919 % 1461) as i64));
            d.battery_expiry = (i % 2 == 0)
                .then(|| today + chrono::Duration::days((i * 104_729 % 1461) as i64 + 31));
            d
        })
        .collect()
}

fn query() -> AttentionQuery {
    AttentionQuery {
        statuses: vec![
            ReadinessStatus::Fault,
            ReadinessStatus::Offline,
            ReadinessStatus::InUse,
            ReadinessStatus::CabinetOpen,
            ReadinessStatus::Degraded,
        ],
        horizon: Utc::now().date_naive() + chrono::Duration::days(30),
        district_id: None,
        limit: 1001,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let admin = std::env::var("AEDNET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("aednet_bench_{}", std::process::id());
    let pg = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    });
    let data = synthetic(N);
    let mut g = c.benchmark_group("attention_list");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    for (label, url) in [("sqlite", &sqlite), ("postgres", &pg)] {
        let store = rt.block_on(aednet_store::connect(url)).unwrap();
        rt.block_on(store.insert_aeds_bulk(&data)).unwrap();
        if label == "postgres" {
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("ANALYZE aeds")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
        }
        let n = rt.block_on(store.attention_list(&query())).unwrap().len();
        println!("{label}: {n} of {N} AEDs need attention (limit 1001)");
        g.bench_function(format!("10^5 AEDs {label}"), |b| {
            b.iter(|| rt.block_on(store.attention_list(&query())).unwrap());
        });
    }
    g.finish();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
