//! Rescuer location updates over HTTP against the real server: closed loop, every request a
//! different rescuer moving a few metres, as phones on duty report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::rescuer::{CertLevel, RescuerData};
use aednet_core::Role;
use chrono::NaiveDate;
use hdrhistogram::Histogram;

/// `n` on-duty rescuers with consent and valid certificates (certificate numbers
/// `{prefix}-0000001`, …), bulk-inserted; their ids in order.
pub async fn insert_rescuers(
    store: &dyn aednet_store::Store,
    n: usize,
    prefix: &str,
) -> anyhow::Result<Vec<i64>> {
    let data: Vec<RescuerData> = (0..n)
        .map(|i| RescuerData {
            name: format!("救护员{i}"),
            phone: None,
            certificate_no: format!("{prefix}-{i:07}"),
            level: CertLevel::FirstAider,
            cert_issued: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
            cert_expires: NaiveDate::from_ymd_opt(2030, 1, 1).expect("date"),
            team: None,
            skills: vec![],
            on_duty: true,
            location_consent: true,
            district_id: None,
        })
        .collect();
    store.insert_rescuers_bulk(&data).await?;
    let all = aednet_store::collect_all(aednet_store::ListQuery::default(), |q| async move {
        store.list_rescuers(&q).await
    })
    .await?;
    // Only those just inserted: the database may hold others (the demo's own rescuers, some
    // off duty or without consent, whose reports are rightly refused).
    let mark = format!("{prefix}-");
    Ok(all
        .iter()
        .filter(|r| r.data.certificate_no.starts_with(&mark))
        .map(|r| r.id)
        .collect())
}

/// `n` on-duty rescuers with consent and valid certificates, and a token each.
pub async fn prepare(url: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let store = aednet_store::connect(url).await?;
    let mut tokens = Vec::with_capacity(n);
    for id in insert_rescuers(store.as_ref(), n, "LOAD").await? {
        let (secret, new) = aednet_api::auth::new_token("load", Role::Rescuer, Some(id));
        store.create_token(&new).await?;
        tokens.push(secret);
    }
    Ok(tokens)
}

pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
}

pub async fn drive(
    base: &str,
    tokens: Arc<Vec<String>>,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()?;
    let url = Arc::new(format!("{base}/api/v1/me/location"));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, tokens, next) =
            (client.clone(), url.clone(), tokens.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let tok = &tokens[i % tokens.len()];
                let step = (i / tokens.len()) as f64 * 0.00002;
                let body = format!(
                    r#"{{"lat":{},"lon":{},"accuracy_m":8}}"#,
                    28.9 + (i % 1000) as f64 * 0.0001 + step,
                    118.8 + (i % 997) as f64 * 0.0001
                );
                let t = Instant::now();
                match client
                    .post(url.as_str())
                    .bearer_auth(tok)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 204 => {}
                    _ => errors += 1,
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            (h, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut errors = 0;
    for t in tasks {
        if let Ok((h, e)) = t.await {
            let _ = hist.add(&h);
            errors += e;
        }
    }
    Ok(Report {
        requests: hist.len(),
        errors,
        seconds: start.elapsed().as_secs_f64(),
        hist,
    })
}
