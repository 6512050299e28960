//! Push subscriptions and delivery records on both backends: a subscription belongs to one
//! rescuer and goes with them, an endpoint the push service says is gone is dropped, and a
//! delivery confirmed by the app stays `delivered` whatever a slower channel writes later, and
//! a late `queued` never replaces a finished send; each rescuer's history links only the
//! incidents that offered them something; delivery records expire with their incident and go
//! with their rescuer.
//! PostgreSQL comes from `AEDNET_TEST_PG_URL` (default 127.0.0.1:5432); never skipped.

use aednet_core::rescuer::{CertLevel, RescuerData, RescuerInput};
use aednet_store::{
    Channel, DeliveryRecord, DeliveryState, DynStore, MessageKey, MessageKind, StoreError,
};
use chrono::{NaiveDate, TimeZone, Utc};

#[macro_use]
mod common;
use common::Fresh;

both!(
    subscriptions_belong_to_a_rescuer_and_go_with_them,
    delivered_is_final,
    history_is_each_rescuers_own,
    deliveries_expire_and_go_with_the_rescuer,
);

fn rescuer(cert: &str) -> RescuerData {
    RescuerInput {
        name: "李娜".into(),
        phone: None,
        certificate_no: cert.into(),
        level: CertLevel::FirstAider,
        cert_issued: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        cert_expires: NaiveDate::from_ymd_opt(2028, 1, 1).unwrap(),
        team: None,
        skills: vec![],
        on_duty: true,
        location_consent: true,
        district_id: None,
    }
    .validate()
    .unwrap()
}

async fn subscriptions_belong_to_a_rescuer_and_go_with_them(s: &DynStore) {
    let a = s.create_rescuer(&rescuer("C-1")).await.unwrap();
    let b = s.create_rescuer(&rescuer("C-2")).await.unwrap();
    let sub = s
        .put_push_subscription(a.id, "https://push.example/1", "key-a", "auth-a")
        .await
        .unwrap();
    assert_eq!((sub.rescuer_id, sub.p256dh.as_str()), (a.id, "key-a"));
    s.put_push_subscription(a.id, "https://push.example/2", "k2", "a2")
        .await
        .unwrap();
    // The same browser subscribing again replaces its keys; signed in as b it moves to b.
    s.put_push_subscription(b.id, "https://push.example/1", "key-b", "auth-b")
        .await
        .unwrap();
    let of_a = s.push_subscriptions(a.id).await.unwrap();
    assert_eq!(of_a.len(), 1);
    assert_eq!(of_a[0].endpoint, "https://push.example/2");
    let of_b = s.push_subscriptions(b.id).await.unwrap();
    assert_eq!((of_b.len(), of_b[0].p256dh.as_str()), (1, "key-b"));
    // Only one's own subscription can be deleted.
    assert!(!s
        .delete_push_subscription(a.id, "https://push.example/1")
        .await
        .unwrap());
    assert!(s
        .delete_push_subscription(b.id, "https://push.example/1")
        .await
        .unwrap());
    // A rescuer that does not exist cannot subscribe: 4xx material, not a database error.
    let err = s
        .put_push_subscription(a.id + b.id + 100, "https://push.example/9", "k", "a")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // Gone at the push service: dropped whoever's it was.
    s.put_push_subscription(b.id, "https://push.example/3", "k3", "a3")
        .await
        .unwrap();
    assert!(s
        .drop_push_endpoint("https://push.example/3")
        .await
        .unwrap());
    assert!(s.push_subscriptions(b.id).await.unwrap().is_empty());
    // Personal data goes with the rescuer.
    assert!(s.delete_rescuer(a.id).await.unwrap());
    assert!(s.push_subscriptions(a.id).await.unwrap().is_empty());
    assert!(!s
        .drop_push_endpoint("https://push.example/2")
        .await
        .unwrap());
}

async fn delivered_is_final(s: &DynStore) {
    let key = MessageKey {
        incident_id: 7,
        rescuer_id: 3,
        message: MessageKind::Offer,
        offer_id: 1,
    };
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let rec = |channel, state, reason: Option<&str>| DeliveryRecord {
        key,
        channel,
        state,
        reason: reason.map(str::to_string),
        attempts: 1,
        updated_at: at,
    };
    s.record_delivery(&rec(Channel::WebPush, DeliveryState::Queued, None))
        .await
        .unwrap();
    s.record_delivery(&rec(Channel::Ws, DeliveryState::Sent, None))
        .await
        .unwrap();
    // A late "queued" does not undo a finished send.
    s.record_delivery(&rec(Channel::Ws, DeliveryState::Queued, None))
        .await
        .unwrap();
    s.record_delivery(&rec(Channel::WebPush, DeliveryState::Delivered, None))
        .await
        .unwrap();
    // A slow sender's "sent" or "failed" after the app confirmed does not undo it.
    s.record_delivery(&rec(
        Channel::WebPush,
        DeliveryState::Failed,
        Some("timeout"),
    ))
    .await
    .unwrap();
    let mut stand_down = rec(Channel::Webhook, DeliveryState::Failed, Some("HTTP 500"));
    stand_down.key.message = MessageKind::StandDown;
    stand_down.key.offer_id = 0;
    s.record_delivery(&stand_down).await.unwrap();
    let all = s.deliveries(7).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let get = |m, c| {
        all.iter()
            .find(|d| d.key.message == m && d.channel == c)
            .unwrap()
    };
    assert_eq!(
        get(MessageKind::Offer, Channel::WebPush).state,
        DeliveryState::Delivered
    );
    assert_eq!(
        get(MessageKind::Offer, Channel::Ws).state,
        DeliveryState::Sent
    );
    let sd = get(MessageKind::StandDown, Channel::Webhook);
    assert_eq!(
        (sd.state, sd.reason.as_deref()),
        (DeliveryState::Failed, Some("HTTP 500"))
    );
    assert_eq!(sd.updated_at, at);
    assert!(s.deliveries(8).await.unwrap().is_empty());

    // A batch is the same records in order, in one transaction: a message's "queued" and
    // its "sent" together end "sent"; a late "queued" and one after "delivered" change nothing.
    let mut batch: Vec<DeliveryRecord> = [
        (Channel::WebPush, DeliveryState::Queued),
        (Channel::WebPush, DeliveryState::Sent),
        (Channel::WebPush, DeliveryState::Queued),
        (Channel::Ws, DeliveryState::Sent),
        (Channel::Ws, DeliveryState::Delivered),
        (Channel::Ws, DeliveryState::Failed),
    ]
    .into_iter()
    .map(|(c, st)| rec(c, st, None))
    .collect();
    for r in &mut batch {
        r.key.incident_id = 9;
    }
    s.record_deliveries(&batch).await.unwrap();
    let nine = s.deliveries(9).await.unwrap();
    let states: Vec<(Channel, DeliveryState)> = nine.iter().map(|d| (d.channel, d.state)).collect();
    assert_eq!(nine.len(), 2, "{nine:?}");
    assert!(
        states.contains(&(Channel::WebPush, DeliveryState::Sent)),
        "{states:?}"
    );
    assert!(
        states.contains(&(Channel::Ws, DeliveryState::Delivered)),
        "{states:?}"
    );
    s.record_deliveries(&[]).await.unwrap();
}

/// An audit entry as the engine writes them (only `rescuer_id` matters to the store).
fn entry(seq: i64, kind: &str, rescuer_id: i64) -> (i64, chrono::DateTime<Utc>, String) {
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    (
        seq,
        at,
        format!(
            r#"{{"at":"2026-11-24T08:00:00Z","kind":"{kind}","offer":{seq},"rescuer_id":{rescuer_id}}}"#
        ),
    )
}

async fn history_is_each_rescuers_own(s: &DynStore) {
    let a = s.create_rescuer(&rescuer("H-1")).await.unwrap().id;
    let b = s.create_rescuer(&rescuer("H-2")).await.unwrap().id;
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let mut ids = Vec::new();
    for n in 0..5i64 {
        let id = s.create_incident("created", at).await.unwrap();
        // a in every incident, b in the odd ones; a's answer in a later save links nothing new.
        let mut audit = vec![
            (
                1,
                at,
                r#"{"at":"2026-11-24T08:00:00Z","kind":"created","lat":1.0,"lon":2.0}"#.to_string(),
            ),
            entry(2, "offered", a),
        ];
        if n % 2 == 1 {
            audit.push(entry(3, "offered", b));
        }
        s.save_incident(id, "alerting", &format!(r#"{{"n":{n}}}"#), &audit)
            .await
            .unwrap();
        let next = audit.len() as i64 + 1;
        s.save_incident(
            id,
            "closed",
            &format!(r#"{{"n":{n},"closed":true}}"#),
            &[entry(next, "declined", a)],
        )
        .await
        .unwrap();
        ids.push(id);
    }
    // Newest first, the last document stored, paged by id.
    let first = s.rescuer_history(a, None, 3).await.unwrap();
    assert_eq!(
        first,
        vec![
            r#"{"n":4,"closed":true}"#,
            r#"{"n":3,"closed":true}"#,
            r#"{"n":2,"closed":true}"#
        ]
    );
    let rest = s.rescuer_history(a, Some(ids[2]), 3).await.unwrap();
    assert_eq!(
        rest,
        vec![r#"{"n":1,"closed":true}"#, r#"{"n":0,"closed":true}"#]
    );
    let of_b = s.rescuer_history(b, None, 100).await.unwrap();
    assert_eq!(
        of_b,
        vec![r#"{"n":3,"closed":true}"#, r#"{"n":1,"closed":true}"#]
    );
    // Nobody else's: a rescuer never offered has no history.
    let c = s.create_rescuer(&rescuer("H-3")).await.unwrap().id;
    assert!(s.rescuer_history(c, None, 100).await.unwrap().is_empty());
    // The links go with the rescuer.
    assert!(s.delete_rescuer(b).await.unwrap());
    assert!(s.rescuer_history(b, None, 100).await.unwrap().is_empty());
    assert_eq!(s.rescuer_history(a, None, 100).await.unwrap().len(), 5);
    // A save racing the deletion links a rescuer who is gone: the sweep drops it.
    s.save_incident(ids[0], "closed", r#"{"n":0}"#, &[entry(9, "offered", b)])
        .await
        .unwrap();
    assert_eq!(s.rescuer_history(b, None, 100).await.unwrap().len(), 1);
    s.erase_rescuer_positions(None).await.unwrap();
    assert!(s.rescuer_history(b, None, 100).await.unwrap().is_empty());
    assert_eq!(s.rescuer_history(a, None, 100).await.unwrap().len(), 5);
}

async fn deliveries_expire_and_go_with_the_rescuer(s: &DynStore) {
    let a = s.create_rescuer(&rescuer("D-1")).await.unwrap().id;
    let b = s.create_rescuer(&rescuer("D-2")).await.unwrap().id;
    let at = Utc::now();
    let closed = s.create_incident("created", at).await.unwrap();
    s.save_incident(closed, "closed", "{}", &[]).await.unwrap();
    let open = s.create_incident("created", at).await.unwrap();
    s.save_incident(open, "alerting", "{}", &[]).await.unwrap();
    for incident_id in [closed, open] {
        for rescuer_id in [a, b] {
            s.record_delivery(&DeliveryRecord {
                key: MessageKey {
                    incident_id,
                    rescuer_id,
                    message: MessageKind::Offer,
                    offer_id: 1,
                },
                channel: Channel::WebPush,
                state: DeliveryState::Sent,
                reason: None,
                attempts: 1,
                updated_at: at,
            })
            .await
            .unwrap();
        }
    }
    // Within the retention period: nothing goes.
    assert_eq!(
        s.erase_deliveries(at - chrono::Duration::days(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.deliveries(closed).await.unwrap().len(), 2);
    // With the rescuer: their records, every incident.
    assert!(s.delete_rescuer(b).await.unwrap());
    assert_eq!(s.deliveries(closed).await.unwrap().len(), 1);
    assert_eq!(s.deliveries(open).await.unwrap().len(), 1);
    // Past the period: the closed incident's records; the open one keeps its own.
    let cutoff = at + chrono::Duration::days(1);
    assert_eq!(s.erase_deliveries(cutoff).await.unwrap(), 1);
    assert!(s.deliveries(closed).await.unwrap().is_empty());
    assert_eq!(s.deliveries(open).await.unwrap().len(), 1);
    // A record written for a rescuer deleted meanwhile (a push finishing late) is swept.
    s.record_delivery(&DeliveryRecord {
        key: MessageKey {
            incident_id: open,
            rescuer_id: b,
            message: MessageKind::Cancel,
            offer_id: 0,
        },
        channel: Channel::Webhook,
        state: DeliveryState::Failed,
        reason: Some("HTTP 500".into()),
        attempts: 4,
        updated_at: at,
    })
    .await
    .unwrap();
    assert_eq!(
        s.erase_deliveries(at - chrono::Duration::days(1))
            .await
            .unwrap(),
        1
    );
    let left = s.deliveries(open).await.unwrap();
    assert_eq!((left.len(), left[0].key.rescuer_id), (1, a));
}
