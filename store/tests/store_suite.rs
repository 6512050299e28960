//! One suite, two backends: every test runs against a fresh SQLite file and a fresh PostgreSQL
//! database. PostgreSQL comes from `AEDNET_TEST_PG_URL` (default 127.0.0.1:5432); if it is not
//! reachable the PostgreSQL half fails — it never skips.

use aednet_core::aed::{Access, AedData, AedInput, Readiness, ReadinessStatus};
use aednet_core::district::{DistrictData, DistrictInput, DistrictLocator};
use aednet_core::geo_util::BBox;
use aednet_core::rescuer::{CertLevel, RescuerData, RescuerInput};
use aednet_core::station::{StationInput, StationKind};
use aednet_core::{Role, Secret, Tags};
use aednet_store::{
    AttentionQuery, ConsumableDates, DeviceEventRecord, DeviceState, DynStore, ListQuery, NewToken,
    ReadinessOverride, Recorded, StoreError, UpsertOutcome, WorkOrderUpdate,
};
use chrono::{NaiveDate, TimeZone, Utc};

#[macro_use]
mod common;
use common::Fresh;

both!(
    aed_round_trip,
    conflicts_name_the_field_and_write_nothing,
    upsert_is_idempotent_and_keeps_readiness,
    pagination_and_bbox_match_brute_force,
    stations_rescuers_districts_round_trip,
    district_delete_and_assignment,
    tokens,
    index_load_matches_rows,
    device_events_are_idempotent_and_carry_readiness,
    overrides_and_attention_list,
    work_orders,
    incidents_keep_an_append_only_audit,
    readiness_changes_after_give_current_status,
    artifacts_are_replaced_whole,
    recorded_positions_are_erased_after_retention_and_with_the_rescuer,
);

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

fn aed(lat: f64, lon: f64, ext: Option<&str>) -> AedData {
    let mut tags = Tags::new();
    tags.insert("emergency".into(), "defibrillator".into());
    tags.insert("note:zh".into(), "门诊楼一层".into());
    AedInput {
        source: Some("test".into()),
        external_ref: ext.map(str::to_string),
        lat,
        lon,
        name: Some("柯城区人民医院".into()),
        access: Some(Access::Yes),
        opening_hours: Some("24/7".into()),
        indoor: Some(true),
        level: Some("1".into()),
        location_description: Some("门诊大厅服务台旁".into()),
        pads_expiry: NaiveDate::from_ymd_opt(2027, 3, 1),
        tags,
        ..Default::default()
    }
    .validate(now())
    .unwrap()
}

fn district(name: &str, ext: &str, x0: f64, y0: f64) -> DistrictData {
    DistrictInput {
        source: Some("test".into()),
        external_ref: Some(ext.into()),
        name: name.into(),
        code: None,
        admin_level: Some(6),
        population: Some(440_000),
        boundary: Some(geojson::Geometry::new(geojson::Value::Polygon(vec![vec![
            vec![x0, y0],
            vec![x0 + 1.0, y0],
            vec![x0 + 1.0, y0 + 1.0],
            vec![x0, y0 + 1.0],
            vec![x0, y0],
        ]]))),
        target_aeds_per_10k: Some(1.5),
        target_rescuers: Some(440),
        tags: Tags::new(),
    }
    .validate()
    .unwrap()
}

fn rescuer(cert: &str) -> RescuerData {
    RescuerInput {
        name: "张伟".into(),
        phone: Some("13800001111".into()),
        certificate_no: cert.into(),
        level: CertLevel::Instructor,
        cert_issued: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        cert_expires: NaiveDate::from_ymd_opt(2028, 1, 1).unwrap(),
        team: Some("蓝天救援队".into()),
        skills: vec!["CPR".into(), "AED".into()],
        on_duty: true,
        location_consent: true,
        district_id: None,
    }
    .validate()
    .unwrap()
}

async fn aed_round_trip(s: &DynStore) {
    let mut d = aed(28.97, 118.87, Some("a1"));
    d.cabinet_code = Some(Secret::new("0570"));
    d.cabinet_locked = true;
    let a = s.create_aed(&d).await.unwrap();
    let got = s.get_aed(a.id).await.unwrap().unwrap();
    assert_eq!(got.data, d);
    assert_eq!(got.data.cabinet_code.as_ref().unwrap().expose(), "0570");
    assert_eq!(got.data.time_zone, chrono_tz::Asia::Shanghai);

    let mut changed = d.clone();
    changed.name = Some("新名字".into());
    changed.access = Access::Customers;
    let r = s.replace_aed(a.id, &changed).await.unwrap().unwrap();
    assert_eq!(r.data, changed);
    assert!(r.updated_at >= a.updated_at);
    assert!(s
        .replace_aed(a.id + 1000, &changed)
        .await
        .unwrap()
        .is_none());

    let ready = Readiness {
        status: ReadinessStatus::Fault,
        reason: Some("自检失败 E12".into()),
        since: now(),
    };
    let r = s
        .set_aed_readiness(a.id, &ready, "api")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.data.readiness, ready);
    assert_eq!(s.count_aeds().await.unwrap(), 1);
    assert!(s.delete_aed(a.id).await.unwrap());
    assert!(!s.delete_aed(a.id).await.unwrap());
    assert!(s.get_aed(a.id).await.unwrap().is_none());
}

async fn conflicts_name_the_field_and_write_nothing(s: &DynStore) {
    s.create_aed(&aed(28.9, 118.8, Some("dup"))).await.unwrap();
    let e = s
        .create_aed(&aed(28.9, 118.8, Some("dup")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict { field: Some(f), .. } if f == "external_ref"),
        "{e:?}"
    );

    let mut orphan = aed(28.9, 118.8, Some("orphan"));
    orphan.district_id = Some(4242);
    let e = s.create_aed(&orphan).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict { field: Some(f), .. } if f == "district_id"),
        "{e:?}"
    );
    assert_eq!(s.count_aeds().await.unwrap(), 1);

    let a = s.create_aed(&aed(28.91, 118.81, None)).await.unwrap();
    let st = StationInput {
        source: None,
        external_ref: None,
        kind: StationKind::BoaiStation,
        name: "博爱驿站".into(),
        scenic_rating: None,
        lat: 28.9,
        lon: 118.8,
        address: None,
        staffed_hours: None,
        time_zone: None,
        contact_name: None,
        contact_phone: None,
        equipment: vec![],
        aed_ids: vec![a.id, 999_999],
        district_id: None,
        tags: Tags::new(),
    }
    .validate(now())
    .unwrap();
    let e = s.create_station(&st).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict { field: Some(f), .. } if f == "aed_ids"),
        "{e:?}"
    );
    let page = s
        .list_stations(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        page.items.is_empty(),
        "the station row was rolled back with its links"
    );

    s.create_rescuer(&rescuer("C-1")).await.unwrap();
    let e = s.create_rescuer(&rescuer("C-1")).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict { field: Some(f), .. } if f == "certificate_no"),
        "{e:?}"
    );
}

async fn upsert_is_idempotent_and_keeps_readiness(s: &DynStore) {
    let batch: Vec<AedData> = (0..50)
        .map(|i| aed(28.0 + f64::from(i) * 0.001, 118.0, Some(&format!("n{i}"))))
        .collect();
    let first = s.upsert_aeds(&batch).await.unwrap();
    assert!(first
        .iter()
        .all(|o| matches!(o, UpsertOutcome::Inserted(_))));
    let second = s.upsert_aeds(&batch).await.unwrap();
    assert!(
        second
            .iter()
            .all(|o| matches!(o, UpsertOutcome::Unchanged(_))),
        "{second:?}"
    );

    // Telemetry marks one faulty; a re-import with a changed name updates but keeps the fault.
    let UpsertOutcome::Inserted(id0) = first[0] else {
        unreachable!()
    };
    let fault = Readiness {
        status: ReadinessStatus::Fault,
        reason: None,
        since: now(),
    };
    s.set_aed_readiness(id0, &fault, "api").await.unwrap();
    let mut again = batch.clone();
    again[0].name = Some("改名".into());
    let third = s.upsert_aeds(&again).await.unwrap();
    assert_eq!(third[0], UpsertOutcome::Updated(id0));
    assert!(third[1..]
        .iter()
        .all(|o| matches!(o, UpsertOutcome::Unchanged(_))));
    let a0 = s.get_aed(id0).await.unwrap().unwrap();
    assert_eq!(a0.data.readiness.status, ReadinessStatus::Fault);
    assert_eq!(a0.data.name.as_deref(), Some("改名"));
    // A key repeated within one batch: inserted once, then unchanged.
    let dup = vec![aed(1.0, 1.0, Some("twice")), aed(1.0, 1.0, Some("twice"))];
    let out = s.upsert_aeds(&dup).await.unwrap();
    assert!(
        matches!(out[0], UpsertOutcome::Inserted(_))
            && matches!(out[1], UpsertOutcome::Unchanged(_)),
        "{out:?}"
    );
    assert_eq!(s.count_aeds().await.unwrap(), 51);
}

async fn pagination_and_bbox_match_brute_force(s: &DynStore) {
    // A deterministic scatter (no RNG dependency): 300 points over a 1° square.
    let pts: Vec<(f64, f64)> = (0..300)
        .map(|i| {
            (
                28.0 + f64::from((i * 37) % 100) / 100.0,
                118.0 + f64::from((i * 53) % 100) / 100.0,
            )
        })
        .collect();
    let batch: Vec<AedData> = pts.iter().map(|&(la, lo)| aed(la, lo, None)).collect();
    assert_eq!(s.insert_aeds_bulk(&batch).await.unwrap(), 300);
    let mut all = Vec::new();
    let mut q = ListQuery {
        limit: 70,
        ..Default::default()
    };
    loop {
        let page = s.list_aeds(&q).await.unwrap();
        all.extend(page.items.iter().map(|a| (a.id, a.data.location)));
        match page.next_after {
            Some(c) => q.after_id = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let bbox = BBox::parse("bbox", "118.2,28.3,118.55,28.71").unwrap();
    let expected: Vec<i64> = all
        .iter()
        .filter(|(_, p)| bbox.contains(p))
        .map(|(id, _)| *id)
        .collect();
    let got: Vec<i64> = s
        .list_aeds(&ListQuery {
            bbox: Some(bbox),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    let faults = s
        .list_aeds(&ListQuery {
            status: Some(ReadinessStatus::Fault),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(faults.items.is_empty());
}

async fn stations_rescuers_districts_round_trip(s: &DynStore) {
    let a1 = s.create_aed(&aed(28.5, 118.5, None)).await.unwrap();
    let a2 = s.create_aed(&aed(28.6, 118.6, None)).await.unwrap();
    let st = StationInput {
        source: Some("test".into()),
        external_ref: Some("st1".into()),
        kind: StationKind::ScenicAidStation,
        name: "江郎山景区救护站".into(),
        scenic_rating: Some(aednet_core::ScenicRating::A5),
        lat: 28.53,
        lon: 118.57,
        address: Some("江山市石门镇".into()),
        staffed_hours: Some("Mo-Su 08:00-17:30".into()),
        time_zone: None,
        contact_name: Some("李站长".into()),
        contact_phone: Some("0570-1234567".into()),
        equipment: vec!["AED".into(), "担架".into()],
        aed_ids: vec![a2.id, a1.id],
        district_id: None,
        tags: Tags::new(),
    }
    .validate(now())
    .unwrap();
    let created = s.create_station(&st).await.unwrap();
    let got = s.get_station(created.id).await.unwrap().unwrap();
    assert_eq!(got.data, st);
    assert_eq!(got.data.aed_ids, vec![a1.id, a2.id]);
    let mut moved = st.clone();
    moved.aed_ids = vec![a1.id];
    let r = s
        .replace_station(created.id, &moved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.data.aed_ids, vec![a1.id]);
    // Deleting an AED drops its links, not the station.
    s.delete_aed(a1.id).await.unwrap();
    assert!(s
        .get_station(created.id)
        .await
        .unwrap()
        .unwrap()
        .data
        .aed_ids
        .is_empty());
    let kinds = s
        .list_stations(&ListQuery {
            kind: Some(StationKind::BusKit),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(kinds.items.is_empty());
    // The stored station now has no links (a1 is gone): the same content is unchanged, a new
    // name is an update, and a link to the deleted AED is a conflict that writes nothing.
    let mut unlinked = moved.clone();
    unlinked.aed_ids.clear();
    assert_eq!(
        s.upsert_stations(std::slice::from_ref(&unlinked))
            .await
            .unwrap()[0],
        UpsertOutcome::Unchanged(created.id)
    );
    let mut renamed = unlinked.clone();
    renamed.name = "江郎山救护站".into();
    renamed.aed_ids = vec![a2.id];
    assert_eq!(
        s.upsert_stations(std::slice::from_ref(&renamed))
            .await
            .unwrap()[0],
        UpsertOutcome::Updated(created.id)
    );
    assert!(matches!(
        s.upsert_stations(std::slice::from_ref(&moved)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        s.get_station(created.id).await.unwrap().unwrap().data,
        renamed
    );

    let r = s
        .create_rescuer(&rescuer("ZJQZ-2024-000001"))
        .await
        .unwrap();
    assert_eq!(
        s.get_rescuer(r.id).await.unwrap().unwrap().data,
        rescuer("ZJQZ-2024-000001")
    );
    let mut off = rescuer("ZJQZ-2024-000001");
    off.on_duty = false;
    assert!(
        !s.replace_rescuer(r.id, &off)
            .await
            .unwrap()
            .unwrap()
            .data
            .on_duty
    );
    let bulk: Vec<RescuerData> = (0..120).map(|i| rescuer(&format!("B-{i}"))).collect();
    assert_eq!(s.insert_rescuers_bulk(&bulk).await.unwrap(), 120);
    let page = s
        .list_rescuers(&ListQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 121);
    assert!(s.delete_rescuer(r.id).await.unwrap());

    let d = s
        .create_district(&district("柯城区", "kc", 118.0, 28.0))
        .await
        .unwrap();
    assert_eq!(d.target_aeds, Some(66));
    assert_eq!(
        s.get_district(d.id).await.unwrap().unwrap().data,
        district("柯城区", "kc", 118.0, 28.0)
    );
    let out = s
        .upsert_districts(&[
            district("柯城区", "kc", 118.0, 28.0),
            district("衢江区", "qj", 119.0, 28.0),
        ])
        .await
        .unwrap();
    assert_eq!(out[0], UpsertOutcome::Unchanged(d.id));
    assert!(matches!(out[1], UpsertOutcome::Inserted(_)));
    let mut bigger = district("柯城区", "kc", 118.0, 28.0);
    bigger.population = Some(450_000);
    assert_eq!(
        s.upsert_districts(&[bigger]).await.unwrap()[0],
        UpsertOutcome::Updated(d.id)
    );
}

async fn district_delete_and_assignment(s: &DynStore) {
    let west = s
        .create_district(&district("west", "w", 118.0, 28.0))
        .await
        .unwrap();
    let east = s
        .create_district(&district("east", "e", 119.0, 28.0))
        .await
        .unwrap();
    let mut created = Vec::new();
    for (la, lo) in [(28.5, 118.5), (28.5, 119.5), (10.0, 10.0)] {
        created.push(s.create_aed(&aed(la, lo, None)).await.unwrap().id);
    }
    let page = s
        .list_districts(&ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let data: Vec<(i64, DistrictData)> = page.items.into_iter().map(|d| (d.id, d.data)).collect();
    let loc = DistrictLocator::new(data.iter().map(|(id, d)| (*id, d)));
    assert_eq!(s.assign_districts(&|p| loc.locate(p)).await.unwrap(), 2);
    assert_eq!(
        s.get_aed(created[0])
            .await
            .unwrap()
            .unwrap()
            .data
            .district_id,
        Some(west.id)
    );
    assert_eq!(
        s.get_aed(created[1])
            .await
            .unwrap()
            .unwrap()
            .data
            .district_id,
        Some(east.id)
    );
    assert_eq!(
        s.get_aed(created[2])
            .await
            .unwrap()
            .unwrap()
            .data
            .district_id,
        None
    );
    let in_west = s
        .list_aeds(&ListQuery {
            district_id: Some(west.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_west.items.len(), 1);
    assert!(s.delete_district(west.id).await.unwrap());
    assert_eq!(
        s.get_aed(created[0])
            .await
            .unwrap()
            .unwrap()
            .data
            .district_id,
        None,
        "ON DELETE SET NULL"
    );
}

async fn tokens(s: &DynStore) {
    let t = s
        .create_token(&NewToken {
            name: "ops".into(),
            role: Role::Dispatcher,
            subject_id: None,
            token_hash: "ab".repeat(32),
        })
        .await
        .unwrap();
    assert_eq!(
        s.find_token(&"ab".repeat(32)).await.unwrap().unwrap().role,
        Role::Dispatcher
    );
    assert!(s.find_token(&"cd".repeat(32)).await.unwrap().is_none());
    let e = s
        .create_token(&NewToken {
            name: "x".into(),
            role: Role::Admin,
            subject_id: None,
            token_hash: "ab".repeat(32),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }));
    let changed = s
        .set_token_role(t.id, Role::Maintenance)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((changed.id, changed.role), (t.id, Role::Maintenance));
    assert_eq!(
        s.find_token(&"ab".repeat(32)).await.unwrap().unwrap().role,
        Role::Maintenance
    );
    assert!(s
        .set_token_role(t.id + 1000, Role::Admin)
        .await
        .unwrap()
        .is_none());
    assert!(s.revoke_token(t.id).await.unwrap());
    assert!(
        s.set_token_role(t.id, Role::Admin).await.unwrap().is_none(),
        "revoked stays revoked"
    );
    assert!(!s.revoke_token(t.id).await.unwrap());
    assert!(s.find_token(&"ab".repeat(32)).await.unwrap().is_none());
    assert!(s.list_tokens().await.unwrap()[0].revoked_at.is_some());
}

async fn index_load_matches_rows(s: &DynStore) {
    let mut batch: Vec<AedData> = (0..200)
        .map(|i| aed(28.0 + f64::from(i) * 0.01, 118.0, None))
        .collect();
    batch[3].access = Access::Private;
    batch[4].readiness.status = ReadinessStatus::Offline;
    batch[5].time_zone = chrono_tz::Europe::Vaduz;
    batch[6].opening_hours = None;
    s.insert_aeds_bulk(&batch).await.unwrap();
    let rows = s.load_aed_index().await.unwrap();
    assert_eq!(rows.len(), 200);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    for (r, d) in rows.iter().zip(&batch) {
        assert_eq!(r.location, d.location);
        assert_eq!(r.access, d.access);
        assert_eq!(r.status, d.readiness.status);
        assert_eq!(r.time_zone, d.time_zone);
        assert_eq!(r.opening_hours.as_deref(), d.opening_hours.as_deref());
        assert_eq!(r.indoor, d.indoor);
    }
}

fn pads(y: i32, m: u32, d: u32) -> ConsumableDates {
    ConsumableDates {
        pads_expiry: NaiveDate::from_ymd_opt(y, m, d),
        battery_expiry: None,
    }
}

fn no_dates() -> ConsumableDates {
    ConsumableDates::default()
}

/// Overrides set and cleared with their readiness in one transaction; the attention list's
/// single query against a brute-force filter over every AED.
async fn overrides_and_attention_list(s: &DynStore) {
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let statuses = [
        ReadinessStatus::Ready,
        ReadinessStatus::Fault,
        ReadinessStatus::Offline,
        ReadinessStatus::Unknown,
        ReadinessStatus::Degraded,
    ];
    let mut batch = Vec::new();
    for i in 0..300u32 {
        let mut d = aed(28.9 + f64::from(i) * 1e-4, 118.8, None);
        d.readiness.status = statuses[(i % 5) as usize];
        d.readiness.since = t - chrono::Duration::minutes(i64::from((i * 37) % 101));
        d.pads_expiry = (i % 3 == 0).then(|| {
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
                + chrono::Duration::days(i64::from(i % 90))
        });
        d.battery_expiry = (i % 7 == 0).then(|| {
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
                + chrono::Duration::days(i64::from(i % 60))
        });
        batch.push(d);
    }
    s.insert_aeds_bulk(&batch).await.unwrap();
    let all = s
        .list_aeds(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 300);
    // An override on one AED: readiness, override and history together.
    let target = all[0].id;
    let over = ReadinessOverride {
        aed_id: target,
        status: ReadinessStatus::Fault,
        reason: Some("pads missing".into()),
        since: t,
        until: Some(t + chrono::Duration::days(3)),
        set_by: "李师傅".into(),
    };
    let fault = Readiness {
        status: ReadinessStatus::Fault,
        reason: Some("pads missing".into()),
        since: t,
    };
    assert!(s
        .set_readiness_override(target, Some(&over), &fault, "guardian")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.get_readiness_override(target).await.unwrap(),
        Some(over.clone())
    );
    assert_eq!(s.readiness_overrides().await.unwrap(), vec![over.clone()]);
    assert_eq!(
        s.readiness_history(target, 1).await.unwrap()[0].source,
        "guardian"
    );
    assert!(s
        .set_readiness_override(target + 10_000, Some(&over), &fault, "guardian")
        .await
        .unwrap()
        .is_none());
    let all = s
        .list_aeds(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .items;
    for (want, days) in [
        (vec![ReadinessStatus::Fault, ReadinessStatus::Offline], 30),
        (vec![ReadinessStatus::Degraded], 0),
        (vec![], 45),
        (ReadinessStatus::ALL.to_vec(), 10),
    ] {
        let horizon = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap() + chrono::Duration::days(days);
        let got = s
            .attention_list(&AttentionQuery {
                statuses: want.clone(),
                horizon,
                district_id: None,
                limit: 1000,
            })
            .await
            .unwrap();
        let mut brute: Vec<_> = all
            .iter()
            .filter(|a| {
                want.contains(&a.data.readiness.status)
                    || a.data.pads_expiry.is_some_and(|e| e <= horizon)
                    || a.data.battery_expiry.is_some_and(|e| e <= horizon)
            })
            .map(|a| (a.data.readiness.since, a.id))
            .collect();
        brute.sort();
        let ids: Vec<_> = got
            .iter()
            .map(|i| (i.aed.data.readiness.since, i.aed.id))
            .collect();
        assert_eq!(ids, brute, "{want:?} within {days} days");
        for i in &got {
            assert_eq!(i.over.is_some(), i.aed.id == target);
        }
    }
    let limited = s
        .attention_list(&AttentionQuery {
            statuses: ReadinessStatus::ALL.to_vec(),
            horizon: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            district_id: Some(999),
            limit: 5,
        })
        .await
        .unwrap();
    assert!(limited.is_empty(), "no AED is in district 999");
    // Cleared: back to telemetry's word, the history says who.
    let ready = Readiness {
        status: ReadinessStatus::Ready,
        reason: None,
        since: t,
    };
    s.set_readiness_override(target, None, &ready, "api")
        .await
        .unwrap();
    assert_eq!(s.get_readiness_override(target).await.unwrap(), None);
    assert_eq!(
        s.get_aed(target)
            .await
            .unwrap()
            .unwrap()
            .data
            .readiness
            .status,
        ReadinessStatus::Ready
    );
}

async fn device_events_are_idempotent_and_carry_readiness(s: &DynStore) {
    let a = s.create_aed(&aed(28.97, 118.87, None)).await.unwrap();
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let ev = |seq: i64| DeviceEventRecord {
        aed_id: a.id,
        boot: String::new(),
        seq,
        kind: "self_test".into(),
        body: format!(r#"{{"seq":{seq},"type":"self_test","ok":false}}"#),
        device_ts: t,
        received_at: t,
    };
    let fault = Readiness {
        status: ReadinessStatus::Fault,
        reason: Some("self-test E12".into()),
        since: t,
    };
    assert_eq!(
        s.record_device_event(&ev(7), Some(&fault), &pads(2027, 1, 5), None)
            .await
            .unwrap(),
        Recorded::New { rev: 1 }
    );
    assert_eq!(
        s.get_aed(a.id)
            .await
            .unwrap()
            .unwrap()
            .data
            .readiness
            .status,
        ReadinessStatus::Fault
    );
    // A resend of the same sequence number changes nothing, even with other readiness.
    let ready = Readiness {
        status: ReadinessStatus::Ready,
        reason: None,
        since: t,
    };
    assert_eq!(
        s.record_device_event(&ev(7), Some(&ready), &pads(2030, 1, 1), None)
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(
        s.get_aed(a.id)
            .await
            .unwrap()
            .unwrap()
            .data
            .readiness
            .status,
        ReadinessStatus::Fault
    );
    assert_eq!(
        s.record_device_event(&ev(3), None, &no_dates(), None)
            .await
            .unwrap(),
        Recorded::New { rev: 1 }
    );
    assert_eq!(s.device_event_seqs(a.id).await.unwrap(), vec![3, 7]);
    // The reported pads date reached the AED; the duplicate's did not; battery untouched.
    let d = s.get_aed(a.id).await.unwrap().unwrap().data;
    assert_eq!(
        (d.pads_expiry, d.battery_expiry),
        (NaiveDate::from_ymd_opt(2027, 1, 5), None)
    );
    s.set_aed_readiness(a.id, &ready, "api").await.unwrap();
    let h = s.readiness_history(a.id, 10).await.unwrap();
    assert_eq!(
        h.iter()
            .map(|c| (c.status, c.source.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (ReadinessStatus::Ready, "api"),
            (ReadinessStatus::Fault, "device")
        ]
    );
    assert_eq!(h[1].reason.as_deref(), Some("self-test E12"));
    // Unknown AED: a conflict naming the field, nothing stored.
    let mut orphan = ev(1);
    orphan.aed_id = a.id + 1000;
    assert!(matches!(
        s.record_device_event(&orphan, None, &no_dates(), None)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // Coalesced state: later values win, missing ones keep the last known.
    let st = |seen: i64, battery: Option<i32>| DeviceState {
        aed_id: a.id,
        last_seen_at: t + chrono::Duration::seconds(seen),
        last_seq: seen,
        battery_pct: battery,
        temperature_c: Some(21.5),
        signal_dbm: None,
        firmware: Some("2.1.0".into()),
    };
    s.save_device_states(&[st(10, Some(88))]).await.unwrap();
    s.save_device_states(&[st(20, None)]).await.unwrap();
    let got = s.device_states().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].last_seq, got[0].battery_pct, got[0].last_seen_at),
        (20, Some(88), t + chrono::Duration::seconds(20))
    );
}

async fn work_orders(s: &DynStore) {
    let a = s.create_aed(&aed(28.97, 118.87, None)).await.unwrap();
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let w = s
        .create_work_order(a.id, "更换电极片", "maint-1", t)
        .await
        .unwrap();
    assert_eq!((w.status.as_str(), w.notes.len()), ("open", 0));
    let w = s
        .update_work_order(
            w.id,
            &WorkOrderUpdate::Assign {
                assignee: "李师傅".into(),
            },
            t,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (w.status.as_str(), w.assignee.as_deref()),
        ("assigned", Some("李师傅"))
    );
    let w = s
        .add_work_order_note(w.id, "maint-1", "电极片已订购", t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.notes[0].note, "电极片已订购");
    assert_eq!(
        s.list_work_orders(Some(a.id), false).await.unwrap().len(),
        1
    );
    let w = s
        .update_work_order(
            w.id,
            &WorkOrderUpdate::Close {
                resolution: "已更换".into(),
            },
            t,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((w.status.as_str(), w.closed_at), ("closed", Some(t)));
    // Closed orders stay closed and leave the open list.
    assert!(s
        .update_work_order(
            w.id,
            &WorkOrderUpdate::Assign {
                assignee: "x".into()
            },
            t
        )
        .await
        .unwrap()
        .is_none());
    assert!(s.list_work_orders(None, false).await.unwrap().is_empty());
    assert_eq!(s.list_work_orders(None, true).await.unwrap().len(), 1);
    assert!(s
        .add_work_order_note(w.id + 99, "x", "y", t)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.create_work_order(a.id + 99, "x", "y", t).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn bad_urls_say_what_is_wrong() {
    let err = |e: Result<DynStore, StoreError>| e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(aednet_store::connect("").await).contains("empty"));
    assert!(err(aednet_store::connect("mysql://x/y").await).contains("'mysql:'"));
}

async fn incidents_keep_an_append_only_audit(s: &DynStore) {
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let id = s.create_incident("created", t).await.unwrap();
    s.save_incident(
        id,
        "alerting",
        r#"{"v":1}"#,
        &[(1, t, "a".into()), (2, t, "b".into())],
    )
    .await
    .unwrap();
    s.save_incident(id, "closed", r#"{"v":2}"#, &[(3, t, "c".into())])
        .await
        .unwrap();
    assert_eq!(
        s.get_incident(id).await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    assert_eq!(s.incident_audit(id).await.unwrap(), vec!["a", "b", "c"]);
    // Rewriting history is refused and changes nothing.
    assert!(matches!(
        s.save_incident(id, "open", "{}", &[(2, t, "forged".into())])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        s.get_incident(id).await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    let other = s.create_incident("created", t).await.unwrap();
    s.save_incident(other, "alerting", "{\"open\":true}", &[])
        .await
        .unwrap();
    assert_eq!(s.open_incidents().await.unwrap(), vec!["{\"open\":true}"]);
    assert!(s.save_incident(id + 100, "x", "{}", &[]).await.is_err());
}

/// The cluster's repair feed: history rows after a given id, each with the AED's status now.
async fn readiness_changes_after_give_current_status(s: &DynStore) {
    assert_eq!(s.readiness_history_head().await.unwrap(), 0);
    let a = s.create_aed(&aed(28.97, 118.87, None)).await.unwrap();
    let b = s.create_aed(&aed(28.98, 118.88, None)).await.unwrap();
    let head0 = s.readiness_history_head().await.unwrap();
    let set = |status| Readiness {
        status,
        reason: None,
        since: now(),
    };
    s.set_aed_readiness(a.id, &set(ReadinessStatus::Fault), "device")
        .await
        .unwrap();
    s.set_aed_readiness(b.id, &set(ReadinessStatus::InUse), "api")
        .await
        .unwrap();
    s.set_aed_readiness(a.id, &set(ReadinessStatus::Ready), "device")
        .await
        .unwrap();
    let rows = s.readiness_changes_after(head0, 100).await.unwrap();
    // Three history rows in order; each carries the AED's status now, not the row's.
    assert_eq!(
        rows.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        vec![
            (a.id, ReadinessStatus::Ready),
            (b.id, ReadinessStatus::InUse),
            (a.id, ReadinessStatus::Ready)
        ]
    );
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    let head = s.readiness_history_head().await.unwrap();
    assert_eq!(head, rows[2].0);
    assert!(s
        .readiness_changes_after(head, 100)
        .await
        .unwrap()
        .is_empty());
    // Paging: a limit, then on from the last id seen.
    let first = s.readiness_changes_after(head0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = s.readiness_changes_after(first[1].0, 2).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.0).collect::<Vec<_>>(), vec![head]);
}

async fn artifacts_are_replaced_whole(s: &DynStore) {
    assert!(s.get_artifact("walk_graph").await.unwrap().is_none());
    assert!(s.artifact_versions().await.unwrap().is_empty());
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        s.put_artifact("walk_graph", r#"{"n":1}"#, &big)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.put_artifact("basemap", "{}", b"tiles").await.unwrap(), 1);
    let a = s.get_artifact("walk_graph").await.unwrap().unwrap();
    assert_eq!(a.bytes, big);
    assert_eq!((a.info.version, a.info.size_bytes), (1, 300_000));
    assert_eq!(a.info.meta, r#"{"n":1}"#);
    // A replacement bumps the version and replaces the bytes; other kinds are untouched.
    assert_eq!(s.put_artifact("walk_graph", "{}", b"v2").await.unwrap(), 2);
    let v = s.artifact_versions().await.unwrap();
    assert_eq!(
        v.iter()
            .map(|i| (i.kind.as_str(), i.version, i.size_bytes))
            .collect::<Vec<_>>(),
        vec![("basemap", 1, 5), ("walk_graph", 2, 2)]
    );
    assert_eq!(
        s.get_artifact("walk_graph").await.unwrap().unwrap().bytes,
        b"v2"
    );
    assert!(s.delete_artifact("basemap").await.unwrap());
    assert!(!s.delete_artifact("basemap").await.unwrap());
    assert!(s.get_artifact("basemap").await.unwrap().is_none());
}

/// Retention: positions recorded at accept/arrival leave closed incidents older than the cutoff
/// (document and audit log, once), open ones keep theirs until their rescuer is deleted;
/// everything else in the record stays.
async fn recorded_positions_are_erased_after_retention_and_with_the_rescuer(s: &DynStore) {
    let r1 = s.create_rescuer(&rescuer("RET-1")).await.unwrap().id;
    let r2 = s.create_rescuer(&rescuer("RET-2")).await.unwrap().id;
    let t = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
    let entry = |kind: &str, offer: u32, r: i64, pos: bool| {
        let mut e = serde_json::json!({"at": t, "kind": kind, "offer": offer, "rescuer_id": r});
        if pos {
            e["position"] = serde_json::json!({"lat": 28.9712, "lon": 118.8705});
        }
        e
    };
    // One incident with its audit entries, stored the way the engine stores them.
    let incident = |state: &'static str, entries: Vec<serde_json::Value>| async move {
        let id = s.create_incident("created", t).await.unwrap();
        let doc = serde_json::json!({"id": id, "lat": 28.97, "lon": 118.87, "state": state,
            "notes": "met at \"position\": gate 3", "audit": entries});
        let audit: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i as i64 + 1, t, e.to_string()))
            .collect();
        s.save_incident(id, state, &doc.to_string(), &audit)
            .await
            .unwrap();
        id
    };
    let closed = incident(
        "closed",
        vec![
            entry("accepted", 1, r1, true),
            entry("arrived", 1, r1, true),
            entry("declined", 2, r2, false),
        ],
    )
    .await;
    let cancelled = incident("cancelled", vec![entry("accepted", 1, r2, true)]).await;
    let open = incident(
        "en_route",
        vec![
            entry("accepted", 1, r1, true),
            entry("accepted", 2, r2, true),
        ],
    )
    .await;
    let positions = |id: i64| async move {
        let doc = s.get_incident(id).await.unwrap().unwrap();
        let audit = s.incident_audit(id).await.unwrap();
        let in_doc = doc.matches("\"position\":").count();
        let in_log = audit.iter().filter(|e| e.contains("\"position\":")).count();
        assert_eq!(
            in_doc, in_log,
            "document and audit log agree for incident {id}"
        );
        assert!(
            doc.contains("met at"),
            "the rest of the record stays: {doc}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&doc).unwrap()["audit"]
                .as_array()
                .unwrap()
                .len(),
            audit.len()
        );
        in_log
    };

    // Within the retention period (saved just now): nothing goes.
    let cutoff = Utc::now() - chrono::Duration::days(30);
    assert_eq!(s.erase_incident_positions(cutoff).await.unwrap(), 0);
    assert_eq!(positions(closed).await, 2);
    // Past it: the closed and cancelled incidents lose theirs, the open one keeps them.
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(s.erase_incident_positions(later).await.unwrap(), 3);
    assert_eq!(positions(closed).await, 0);
    assert_eq!(positions(cancelled).await, 0);
    assert_eq!(positions(open).await, 2);
    let log = s.incident_audit(closed).await.unwrap();
    assert!(
        log[0].contains("\"rescuer_id\":") && log[0].contains("\"accepted\""),
        "{log:?}"
    );
    // Done once: a second run finds nothing.
    assert_eq!(s.erase_incident_positions(later).await.unwrap(), 0);

    // Rescuer 1 is deleted: the hourly sweep of rescuers who no longer exist takes theirs.
    assert_eq!(s.erase_rescuer_positions(None).await.unwrap(), 0);
    assert!(s.delete_rescuer(r1).await.unwrap());
    assert_eq!(s.erase_rescuer_positions(None).await.unwrap(), 1);
    assert_eq!(positions(open).await, 1);
    // One rescuer's, by id (on deletion).
    assert_eq!(s.erase_rescuer_positions(Some(r2)).await.unwrap(), 1);
    assert_eq!(positions(open).await, 0);
    assert_eq!(s.erase_rescuer_positions(Some(r2)).await.unwrap(), 0);
}
