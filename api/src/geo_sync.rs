//! Keeps the in-memory [`GeoIndex`] in step with the store: a bulk load at start-up, then one
//! update per store event; a full reload (built beside the live index, then swapped in) after an
//! import or when this subscriber fell behind the bus.

use std::sync::Arc;

use aednet_core::aed::Aed;
use aednet_core::event::Event;
use aednet_core::station::Station;
use aednet_geoindex::{
    parse_floor, AedDetail, AedEntry, AedIndex, GeoIndex, Schedules, StationEntry, StationIndex,
};
use aednet_store::{AedIndexRow, ListQuery, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::state::AppState;

pub fn entry_from_row(row: AedIndexRow, schedules: &mut Schedules) -> AedEntry {
    AedEntry {
        id: row.id,
        pos: row.location,
        access: row.access,
        status: row.status,
        indoor: row.indoor,
        floor: parse_floor(row.level.as_deref()),
        cabinet_locked: row.cabinet_locked,
        schedule: schedules.get(row.opening_hours.as_deref(), row.time_zone, row.location),
        detail: Arc::new(AedDetail {
            name: row.name,
            address: row.address,
            operator: row.operator,
            level: row.level,
            location_description: row.location_description,
            district_id: row.district_id,
            ..Default::default()
        }),
    }
}

pub fn entry_from_aed(aed: &Aed, schedules: &mut Schedules) -> AedEntry {
    let d = &aed.data;
    AedEntry {
        id: aed.id,
        pos: d.location,
        access: d.access,
        status: d.readiness.status,
        indoor: d.indoor,
        floor: parse_floor(d.level.as_deref()),
        cabinet_locked: d.cabinet_locked,
        schedule: schedules.get(d.opening_hours.as_deref(), d.time_zone, d.location),
        detail: Arc::new(AedDetail {
            name: d.name.clone(),
            address: d.address.clone(),
            operator: d.operator.clone(),
            level: d.level.clone(),
            location_description: d.location_description.clone(),
            district_id: d.district_id,
            ..Default::default()
        }),
    }
}

pub fn entry_from_station(mut s: Station, schedules: &mut Schedules) -> StationEntry {
    s.data.redact_personal();
    let d = &s.data;
    StationEntry {
        id: s.id,
        pos: d.location,
        kind: d.kind,
        schedule: schedules.get(d.staffed_hours.as_deref(), d.time_zone, d.location),
        station: Arc::new(s),
    }
}

/// Reads every AED's index row and builds a fresh index (not yet visible).
pub async fn build_aed_index(store: &dyn Store, geo: &GeoIndex) -> aednet_store::Result<AedIndex> {
    let rows = store.load_aed_index().await?;
    let entries = geo.with_schedules(|s| {
        rows.into_iter()
            .map(|r| entry_from_row(r, s))
            .collect::<Vec<_>>()
    });
    // Packing 10^6 points takes most of a second: off the async workers.
    Ok(
        tokio::task::spawn_blocking(move || AedIndex::build(entries))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
    )
}

pub async fn build_station_index(
    store: &dyn Store,
    geo: &GeoIndex,
) -> aednet_store::Result<StationIndex> {
    let all = aednet_store::collect_all(ListQuery::default(), |q| async move {
        store.list_stations(&q).await
    })
    .await?;
    let entries = geo.with_schedules(|s| {
        all.into_iter()
            .map(|st| entry_from_station(st, s))
            .collect::<Vec<_>>()
    });
    Ok(StationIndex::build(entries))
}

/// Rebuilds both indexes from the store and swaps them in.
pub async fn reload(state: &AppState) -> aednet_store::Result<()> {
    let started = std::time::Instant::now();
    let aeds = build_aed_index(state.store.as_ref(), &state.geo).await?;
    let stations = build_station_index(state.store.as_ref(), &state.geo).await?;
    let (na, ns) = (aeds.len(), stations.len());
    state.geo.replace_aeds(aeds);
    state.geo.replace_stations(stations);
    state
        .metrics
        .aeds
        .set(i64::try_from(na).unwrap_or(i64::MAX));
    tracing::info!(
        aeds = na,
        stations = ns,
        ms = started.elapsed().as_millis() as u64,
        "geoindex loaded"
    );
    Ok(())
}

/// Applies one event. Store reads happen before the index lock is taken.
pub async fn apply(state: &AppState, event: &Event) -> aednet_store::Result<()> {
    let geo = &state.geo;
    match *event {
        Event::AedUpserted { id } => match state.store.get_aed(id).await? {
            Some(aed) => geo.upsert_aed(geo.with_schedules(|s| entry_from_aed(&aed, s))),
            None => {
                geo.remove_aed(id);
            }
        },
        Event::AedDeleted { id } => {
            geo.remove_aed(id);
        }
        Event::AedReadinessChanged { id, status } if !geo.set_aed_status(id, status) => {
            // Not indexed yet (an event overtook its creation): index the whole record.
            if let Some(aed) = state.store.get_aed(id).await? {
                geo.upsert_aed(geo.with_schedules(|s| entry_from_aed(&aed, s)));
            }
        }
        Event::StationUpserted { id } => match state.store.get_station(id).await? {
            Some(st) => geo.upsert_station(geo.with_schedules(|s| entry_from_station(st, s))),
            None => {
                geo.remove_station(id);
            }
        },
        Event::StationDeleted { id } => {
            geo.remove_station(id);
        }
        Event::BulkChange { .. } => reload(state).await?,
        // A rescuer who left (deleted, off duty, consent withdrawn) is forgotten at once.
        Event::RescuerDeleted { id } => {
            geo.rescuer_gone(id);
        }
        Event::RescuerUpserted { id } => {
            let keep = state
                .store
                .get_rescuer(id)
                .await?
                .is_some_and(|r| r.data.on_duty && r.data.location_consent);
            if !keep {
                geo.rescuer_gone(id);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Forgets rescuer positions older than the index's TTL, every 30 s.
pub fn spawn_rescuer_expiry(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let gone = state.geo.expire_rescuers(state.clock.now());
            if !gone.is_empty() {
                tracing::debug!(n = gone.len(), "rescuer positions expired");
            }
        }
    })
}

/// How often a node of a cluster re-checks recent readiness changes against its index.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// History rows re-read behind the newest one seen: a transaction that took its id earlier
/// but committed later is still caught.
const RECONCILE_LOOKBACK: i64 = 1000;

/// On a node of a cluster: every [`RECONCILE_EVERY`] re-checks the readiness changes recorded
/// since the last check against the index, repairing (on this node only) any whose event never
/// arrived — its node died between the commit and the publish, or the bus was down. (Rescuer
/// positions from other nodes are applied by the rescuer location gate in mobile-api.)
pub fn spawn_readiness_repair(state: &AppState) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut last = match s.store.readiness_history_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "readiness reconcile: cannot read the history head");
                0
            }
        };
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match reconcile_readiness(&s, last).await {
                Ok(head) => last = last.max(head),
                Err(e) => tracing::warn!(error = %e, "readiness reconcile failed; retrying"),
            }
        }
    });
}

/// Re-checks readiness changes after history row `after - RECONCILE_LOOKBACK`; returns the
/// newest row id seen. Differences go to this node's subscribers as events.
pub async fn reconcile_readiness(state: &AppState, after: i64) -> aednet_store::Result<i64> {
    let mut head = after;
    let mut from = (after - RECONCILE_LOOKBACK).max(0);
    loop {
        let rows = state.store.readiness_changes_after(from, 10_000).await?;
        let Some(&(h, _, _)) = rows.last() else {
            return Ok(head);
        };
        let mut fixed = 0usize;
        for (_, id, status) in &rows {
            let seen = state.geo.aeds().get(*id).map(|e| e.status);
            if seen.is_some_and(|s| s != *status) {
                state.bus.publish_local(Event::AedReadinessChanged {
                    id: *id,
                    status: *status,
                });
                fixed += 1;
            } else if seen.is_none() {
                // Not indexed: an AedUpserted this node never heard of.
                state.bus.publish_local(Event::AedUpserted { id: *id });
                fixed += 1;
            }
        }
        if fixed > 0 {
            tracing::info!(
                fixed,
                "readiness changes missed on the bus repaired from the store"
            );
        }
        head = head.max(h);
        from = h;
        if rows.len() < 10_000 {
            return Ok(head);
        }
    }
}

/// Loads the indexes, then follows the bus. Subscribes before loading so nothing published
/// during the load is missed (replaying it is harmless: every update is idempotent).
pub async fn start(state: &AppState) -> aednet_store::Result<JoinHandle<()>> {
    let mut rx = state.bus.subscribe();
    reload(state).await?;
    spawn_rescuer_expiry(state);
    crate::sessions::spawn_watcher(state);
    if state.peers.is_some() {
        spawn_readiness_repair(state);
    }
    let state = state.clone();
    Ok(tokio::spawn(async move {
        loop {
            let result = match rx.recv().await {
                Ok(event) => apply(&state, &event).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "geoindex fell behind the event bus; reloading");
                    reload(&state).await
                }
                Err(RecvError::Closed) => break,
            };
            if let Err(e) = result {
                // The next event or reload repairs it; a store hiccup must not stop the loop.
                tracing::error!(error = %e, "geoindex update failed");
            }
        }
    }))
}
