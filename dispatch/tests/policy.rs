//! The offer plan against its rules over random rescuers and AEDs, and the greedy fetch
//! assignment against brute force on small instances.

use std::collections::HashSet;

use aednet_core::LatLon;
use aednet_dispatch::{plan, AedOption, Candidate, OfferRole, Policy};
use proptest::prelude::*;

fn near(lat: f64, lon: f64) -> impl Strategy<Value = LatLon> {
    (-0.01..0.01f64, -0.01..0.01f64).prop_map(move |(a, b)| LatLon {
        lat: lat + a,
        lon: lon + b,
    })
}

fn instance() -> impl Strategy<Value = (Vec<Candidate>, Vec<AedOption>, Policy)> {
    (
        prop::collection::vec(near(28.97, 118.87), 0..25),
        prop::collection::vec((near(28.97, 118.87), 0.0..120.0f64), 0..10),
        0usize..4,
        0usize..5,
        1usize..15,
        60.0..900.0f64,
    )
        .prop_map(|(rs, ads, cpr, fetch, cap, budget)| {
            let rescuers = rs
                .into_iter()
                .enumerate()
                .map(|(i, pos)| Candidate {
                    rescuer_id: i as i64,
                    pos,
                    accept: None,
                })
                .collect();
            let aeds = ads
                .into_iter()
                .enumerate()
                .map(|(i, (pos, h))| AedOption {
                    aed_id: 100 + i as i64,
                    pos,
                    handling_s: h,
                })
                .collect();
            // The base rules (one CPR group, then fetchers); the CPR-in-time rule below.
            let p = Policy {
                cpr_direct: cpr,
                max_fetchers: fetch,
                max_alerts: cap,
                fetch_budget_s: budget,
                cpr_confidence: 0.0,
                ..Policy::default()
            };
            (rescuers, aeds, p)
        })
}

proptest! {
    #[test]
    fn offers_follow_the_rules((rescuers, aeds, p) in instance()) {
        let patient = LatLon { lat: 28.97, lon: 118.87 };
        let offers = plan(patient, &rescuers, &aeds, &p);
        prop_assert!(offers.len() <= p.max_alerts.min(rescuers.len()));
        let ids: HashSet<i64> = offers.iter().map(|o| o.rescuer_id).collect();
        prop_assert_eq!(ids.len(), offers.len(), "nobody is offered twice");
        let fetch: Vec<i64> = offers.iter().filter_map(|o| match o.role { OfferRole::FetchAed { aed_id } => Some(aed_id), OfferRole::Cpr => None }).collect();
        for a in &fetch {
            prop_assert!(fetch.iter().filter(|x| *x == a).count() <= p.fetchers_per_aed.max(1), "no AED gets more fetchers than the policy allows");
        }
        prop_assert!(fetch.len() <= p.max_fetchers);
        for o in &offers {
            if let OfferRole::FetchAed { .. } = o.role {
                prop_assert!(o.eta_s <= p.fetch_budget_s);
            }
        }
        // The first cpr_direct offers are the rescuers nearest in time.
        let mut direct: Vec<(f64, i64)> = rescuers.iter().map(|c| (p.travel_s(c.pos, patient), c.rescuer_id)).collect();
        direct.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let k = p.cpr_direct.min(p.max_alerts).min(rescuers.len());
        for (o, (t, id)) in offers.iter().zip(direct.iter().take(k)) {
            prop_assert_eq!(o.role, OfferRole::Cpr);
            prop_assert_eq!(o.rescuer_id, *id);
            prop_assert!((o.eta_s - t).abs() < 1e-9);
        }
        // The first fetch is the fastest possible (rescuer, AED) pair among the others.
        let others: Vec<&Candidate> = rescuers.iter().filter(|c| !direct.iter().take(k).any(|(_, id)| *id == c.rescuer_id)).collect();
        let pr = &p;
        let best = others.iter().flat_map(|c| aeds.iter().map(move |a| pr.travel_s(c.pos, a.pos) + a.handling_s + pr.travel_s(a.pos, patient)))
            .filter(|t| *t <= p.fetch_budget_s)
            .fold(f64::INFINITY, f64::min);
        if let Some(first) = offers.iter().find(|o| matches!(o.role, OfferRole::FetchAed { .. })) {
            prop_assert!((first.eta_s - best).abs() < 1e-9, "{} vs {best}", first.eta_s);
        } else {
            prop_assert!(best.is_infinite() || p.max_fetchers == 0 || offers.len() >= p.max_alerts);
        }
    }
}

#[test]
fn waves_widen_until_enough_rescuers_and_aeds() {
    let p = Policy::default();
    // 3 rescuers within 1 km, 8 within 1.8 km; AEDs: 1 within 1 km, 3 within 1.8 km.
    let r = p.wave(|radius| if radius < 1500.0 { (3, 1) } else { (8, 3) });
    assert_eq!(r, 1800.0);
    assert_eq!(p.wave(|_| (0, 0)), 3000.0, "never enough: the widest wave");
}

#[test]
fn fetch_offers_go_out_until_one_acceptance_is_likely_enough() {
    // One AED beside the patient, twelve rescuers in a line towards it.
    let patient = LatLon {
        lat: 28.97,
        lon: 118.87,
    };
    let aed = AedOption {
        aed_id: 7,
        pos: LatLon {
            lat: 28.9705,
            lon: 118.87,
        },
        handling_s: 0.0,
    };
    let rescuers: Vec<Candidate> = (0..12)
        .map(|i| Candidate {
            rescuer_id: i,
            pos: LatLon {
                lat: 28.971 + i as f64 * 0.0005,
                lon: 118.87,
            },
            accept: None,
        })
        .collect();
    let p = Policy {
        cpr_direct: 1,
        max_fetchers: 10,
        max_alerts: 20,
        fetchers_per_aed: 10,
        fetch_confidence: 0.9,
        expected_accept: 0.3,
        cpr_confidence: 0.0,
        aed_target_s: 0.0,
        ..Policy::default()
    };
    let fetches = |p: &Policy| {
        plan(patient, &rescuers, &[aed], p)
            .iter()
            .filter(|o| o.role == OfferRole::FetchAed { aed_id: 7 })
            .count()
    };
    // 1 − 0.7⁶ = 0.88 < 0.9 ≤ 1 − 0.7⁷ = 0.92: seven fetchers for the one AED.
    assert_eq!(fetches(&p), 7);
    // Without a confidence target, up to the per-AED limit.
    assert_eq!(
        fetches(&Policy {
            fetch_confidence: 0.0,
            fetchers_per_aed: 3,
            ..p.clone()
        }),
        3
    );
    // The old rule: one fetcher per AED.
    assert_eq!(
        fetches(&Policy {
            fetchers_per_aed: 1,
            ..p
        }),
        1
    );
}

fn at_m(north_m: f64) -> LatLon {
    LatLon {
        lat: 28.97 + north_m / 111_000.0,
        lon: 118.87,
    }
}

fn roles(offers: &[aednet_dispatch::Offer]) -> (Vec<i64>, Vec<i64>) {
    let cpr = offers
        .iter()
        .filter(|o| o.role == OfferRole::Cpr)
        .map(|o| o.rescuer_id)
        .collect();
    let fetch = offers
        .iter()
        .filter(|o| o.role != OfferRole::Cpr)
        .map(|o| o.rescuer_id)
        .collect();
    (cpr, fetch)
}

#[test]
fn those_who_can_start_cpr_in_time_run_to_the_patient_until_one_is_likely_to() {
    // Patient at 0; an AED 150 m south; rescuers 0–4 north at 100–300 m, rescuer 5 at 120 m
    // south, beside the AED; rescuers 6 and 7 far north (no CPR in time from there).
    let patient = at_m(0.0);
    let aed = AedOption {
        aed_id: 9,
        pos: at_m(-150.0),
        handling_s: 0.0,
    };
    let mut rescuers: Vec<Candidate> = [100.0, 150.0, 200.0, 250.0, 300.0, -120.0, 600.0, 700.0]
        .iter()
        .enumerate()
        .map(|(i, m)| Candidate {
            rescuer_id: i as i64,
            pos: at_m(*m),
            accept: None,
        })
        .collect();
    let p = Policy {
        cpr_direct: 1,
        max_fetchers: 8,
        max_alerts: 16,
        fetchers_per_aed: 3,
        fetch_confidence: 0.0,
        expected_accept: 0.3,
        cpr_target_s: 240.0,
        reaction_s: 55.0,
        cpr_confidence: 0.5,
        ..Policy::default()
    };
    // 300 m × 1.2 / 2.3 m/s = 157 s ≤ 240 − 55: all five north are in time for CPR.
    // At 30 % each, two CPR offers make one accept 51 % likely: the nearest and the third
    // nearest — the second nearest (5) would bring the AED in time as well (180 m: 94 s), so
    // fetches it; the third (1) would not (450 m: 235 s).
    let (cpr, fetch) = roles(&plan(patient, &rescuers, &[aed], &p));
    assert_eq!(cpr[..2], [0, 1]);
    assert_eq!(fetch[0], 5, "with the AED in time too: a fetcher");
    assert!(fetch.contains(&2) && fetch.contains(&3), "{fetch:?}");
    // Without a CPR target only the nearest runs straight there (the previous rule).
    let (cpr, _) = roles(&plan(
        patient,
        &rescuers,
        &[aed],
        &Policy {
            cpr_confidence: 0.0,
            ..p.clone()
        },
    ));
    assert_eq!(cpr[0], 0);
    assert!(!cpr.contains(&1), "the second nearest fetches: {cpr:?}");
    // Wanting CPR 99 % sure: every one of the five north in time, but nobody who is not.
    let (cpr, _) = roles(&plan(
        patient,
        &rescuers,
        &[aed],
        &Policy {
            cpr_confidence: 0.99,
            max_fetchers: 0,
            max_alerts: 6,
            ..p.clone()
        },
    ));
    assert_eq!(cpr[..5], [0, 1, 2, 3, 4]);
    // Rescuers who nearly always accept: the nearest alone is enough.
    for r in &mut rescuers {
        r.accept = Some(0.6);
    }
    let offers = plan(patient, &rescuers, &[aed], &p);
    assert_eq!(offers[0].rescuer_id, 0);
    assert_ne!(offers[1].role, OfferRole::Cpr, "{offers:?}");
}

#[test]
fn only_fetchers_in_time_count_towards_the_fetch_confidence() {
    // One AED 1 km north, twelve rescuers beyond it: nobody brings it within 4 minutes.
    let patient = at_m(0.0);
    let aed = AedOption {
        aed_id: 7,
        pos: at_m(1000.0),
        handling_s: 0.0,
    };
    let rescuers: Vec<Candidate> = (0..12)
        .map(|i| Candidate {
            rescuer_id: i,
            pos: at_m(1050.0 + 50.0 * i as f64),
            accept: None,
        })
        .collect();
    let p = Policy {
        cpr_direct: 0,
        max_fetchers: 10,
        max_alerts: 20,
        fetchers_per_aed: 10,
        fetch_confidence: 0.9,
        expected_accept: 0.3,
        fetch_budget_s: 3600.0,
        cpr_confidence: 0.0,
        aed_target_s: 0.0,
        ..Policy::default()
    };
    let fetches = |p: &Policy| {
        plan(patient, &rescuers, &[aed], p)
            .iter()
            .filter(|o| o.role != OfferRole::Cpr)
            .count()
    };
    assert_eq!(fetches(&p), 7, "every fetcher counts: 1 − 0.7⁷ ≥ 0.9");
    let late = Policy {
        aed_target_s: 240.0,
        ..p.clone()
    };
    assert_eq!(fetches(&late), 10, "none in time: up to max_fetchers");
    // (1 050 – 1 600 m) × 1.2 / 2.3 m/s ≈ 550–830 s: in time for a 20-minute target.
    let lenient = Policy {
        aed_target_s: 1200.0 + 55.0,
        ..p
    };
    assert!(fetches(&lenient) < 10);
}
