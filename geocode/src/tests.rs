use super::*;
use crate::synthetic::{chinese, latin, Entry};

fn index_of(entries: &[Entry]) -> Index {
    Index::build(entries.iter().map(Entry::place).collect())
}

fn top<'a>(ix: &'a Index, q: &str, near: Option<LatLon>) -> &'a str {
    let hits = ix.search(q, near, 5);
    assert!(!hits.is_empty(), "nothing for {q:?}");
    &ix.places()[hits[0].place].label
}

/// District + road + number, without province, city or sub-district, and with a space or
/// two, as a dispatcher types what the caller says.
#[test]
fn chinese_register_typed_partially() {
    let entries = chinese(20_000, 7);
    let ix = index_of(&entries);
    let mut checked = 0;
    for e in entries.iter().step_by(997) {
        let [d, road, no] = &e.parts;
        for q in [
            format!("{d}{road}{no}"),
            format!("{d} {road} {no}"),
            format!("{road}{no} {d}"),
        ] {
            assert_eq!(top(&ix, &q, None), e.text, "{q}");
        }
        // Without the 号, and without the district while the map is on it.
        let bare = no.trim_end_matches('号');
        assert_eq!(top(&ix, &format!("{d}{road}{bare}"), None), e.text);
        let near = LatLon {
            lat: e.lat,
            lon: e.lon,
        };
        assert_eq!(top(&ix, &format!("{road}{no}"), Some(near)), e.text);
        checked += 1;
    }
    assert!(checked >= 20);
}

/// The same road name in two districts: the district typed decides, not the order of the
/// register.
#[test]
fn the_district_typed_decides_between_roads_of_one_name() {
    let entries = chinese(20_000, 7);
    let ix = index_of(&entries);
    let a = entries
        .iter()
        .find(|e| e.parts[0] == "开化县" && e.parts[1] == "人民路" && e.parts[2] == "3号")
        .expect("register has it");
    assert_eq!(top(&ix, "开化县人民路3号", None), a.text);
    let b = entries
        .iter()
        .find(|e| e.parts[0] == "柯城区" && e.parts[1] == "人民路" && e.parts[2] == "3号")
        .unwrap();
    assert_eq!(top(&ix, "柯城区人民路3号", None), b.text);
}

fn mangle(s: &str) -> String {
    // Drop diacritics the way a keyboard without them does, and make one typo: swap two
    // letters in the middle.
    let plain: String = s
        .chars()
        .map(|c| match c {
            'ä' => 'a',
            'ö' => 'o',
            'ü' => 'u',
            'Ä' => 'A',
            c => c,
        })
        .collect();
    let mut cs: Vec<char> = plain.chars().collect();
    let m = cs.len() / 2;
    if cs.len() >= 6 && cs[m].is_alphabetic() && cs[m + 1].is_alphabetic() {
        cs.swap(m, m + 1);
    }
    cs.into_iter().collect()
}

#[test]
fn latin_addresses_with_typos_and_without_diacritics() {
    let entries = latin(20_000, 3);
    let ix = index_of(&entries);
    let (mut first, mut n) = (0, 0);
    for e in entries.iter().step_by(211) {
        let [street, no, town] = &e.parts;
        let q = format!("{} {no} {}", mangle(street), town.to_lowercase());
        // A typo can make another street the nearer spelling ("Landeweg" with e and w swapped
        // is "Landweeg", one edit from Landweg, two from Ländeweg): the right one is then
        // among the first three, and first in nearly every case.
        let hits = ix.search(&q, None, 3);
        let labels: Vec<&str> = hits
            .iter()
            .map(|h| ix.places()[h.place].label.as_str())
            .collect();
        assert!(labels.contains(&e.text.as_str()), "{q}: {labels:?}");
        first += usize::from(labels[0] == e.text);
        n += 1;
        // Typed without the town, the map on it.
        let near = LatLon {
            lat: e.lat,
            lon: e.lon,
        };
        let q = format!("{} {no}", mangle(street));
        let hits = ix.search(&q, Some(near), 3);
        assert!(
            hits.iter().any(|h| ix.places()[h.place].label == e.text),
            "{q} near it"
        );
    }
    assert!(first * 100 >= n * 95, "{first} of {n} first");
}

#[test]
fn umlauts_typed_as_ae_and_abbreviated_streets() {
    let ix = Index::build(vec![
        Entry {
            text: "Äulestrasse 5, 9490 Vaduz".into(),
            parts: Default::default(),
            lat: 47.14,
            lon: 9.52,
        }
        .place(),
        Entry {
            text: "Aulweg 5, 9490 Vaduz".into(),
            parts: Default::default(),
            lat: 47.141,
            lon: 9.521,
        }
        .place(),
    ]);
    for q in [
        "Aeulestrasse 5",
        "aulestr. 5",
        "Äulestraße 5 Vaduz",
        "aeulestr",
    ] {
        assert_eq!(top(&ix, q, None), "Äulestrasse 5, 9490 Vaduz", "{q}");
    }
    // Nonsense finds nothing rather than something.
    assert!(ix.search("xqzt wvbn", None, 5).is_empty());
    assert!(ix.search("", None, 5).is_empty());
}

/// Results as you type: each prefix of the street finds it among the first answers once
/// three letters are in.
#[test]
fn prefixes_find_the_street_as_it_is_typed() {
    let entries = latin(5_000, 11);
    let ix = index_of(&entries);
    let e = &entries[1234];
    let want = format!("{} {}", e.parts[0], e.parts[1]);
    let near = LatLon {
        lat: e.lat,
        lon: e.lon,
    };
    let street: Vec<char> = e.parts[0].chars().collect();
    for n in 4..=street.len() {
        let q: String = street[..n].iter().collect();
        let hits = ix.search(&q, Some(near), 10);
        assert!(
            hits.iter()
                .any(|h| ix.places()[h.place].label.starts_with(&e.parts[0])),
            "{q}"
        );
    }
    assert!(top(&ix, &want, Some(near)).starts_with(&want));
}

#[test]
fn nearer_of_two_equal_matches_wins_and_streets_answer_at_their_nearest_point() {
    let street = |lat: f64, town: &str| Place {
        label: format!("Landstrasse, {town}"),
        kind: Kind::Street,
        category: Some("primary".into()),
        lat,
        lon: 9.5,
        texts: vec![],
        line: vec![[lat - 0.01, 9.5], [lat, 9.5], [lat + 0.01, 9.5]],
    };
    let ix = Index::build(vec![street(47.10, "Triesen"), street(47.20, "Schaan")]);
    let near = LatLon {
        lat: 47.215,
        lon: 9.5,
    };
    let hits = ix.search("landstrasse", Some(near), 5);
    assert_eq!(hits.len(), 2);
    assert_eq!(ix.places()[hits[0].place].label, "Landstrasse, Schaan");
    assert!((hits[0].pos.lat - 47.21).abs() < 1e-9, "{:?}", hits[0].pos);
    assert!(hits[0].score > hits[1].score);
    let hits = ix.search(
        "landstrasse",
        Some(LatLon {
            lat: 47.0,
            lon: 9.5,
        }),
        5,
    );
    assert_eq!(ix.places()[hits[0].place].label, "Landstrasse, Triesen");
}

#[test]
fn stored_form_round_trips_and_refuses_garbage() {
    let places: Vec<Place> = chinese(50, 1).iter().map(Entry::place).collect();
    let bytes = encode(&places);
    assert_eq!(decode(&bytes).unwrap(), places);
    assert!(decode(b"not gzip").is_err());
}
