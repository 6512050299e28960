//! The real OpenStreetMap extract of Liechtenstein (../shared/data), imported into a fresh
//! SQLite store: every defibrillator arrives, messy values are reported, the municipalities
//! arrive with the populations of their place nodes, and a second import changes nothing.

use std::path::PathBuf;

use aednet_import::{import_osm, ImportOptions};
use aednet_store::ListQuery;
use indicatif::ProgressBar;

fn pbf() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/liechtenstein.osm.pbf");
    assert!(
        p.exists(),
        "{} is missing: the shared data must sit beside the repository",
        p.display()
    );
    p
}

#[tokio::test]
async fn liechtenstein_imports_completely_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let store = aednet_store::connect(&format!("sqlite://{}", dir.path().join("li.db").display()))
        .await
        .unwrap();
    let opts = ImportOptions::default();
    let report = import_osm(store.as_ref(), &pbf(), &opts, &ProgressBar::hidden())
        .await
        .unwrap();
    println!("{report}");

    assert_eq!(
        report.aeds.inserted, 148,
        "every defibrillator in the file arrives"
    );
    assert_eq!(report.aeds.rejected, 0);
    assert_eq!(store.count_aeds().await.unwrap(), 148);
    let malformed: Vec<&str> = report
        .malformed_opening_hours
        .iter()
        .map(|m| m.value.as_str())
        .collect();
    assert!(malformed.contains(&"Mo - Fr 7:00 - 17:00"), "{malformed:?}");
    assert!(
        report
            .unknown_access
            .iter()
            .any(|u| u.value == "nur_für_berechtige"),
        "{:?}",
        report.unknown_access
    );
    assert_eq!(report.missing_access.len(), 2);

    let districts = store
        .list_districts(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    let pop = |name: &str| {
        districts
            .iter()
            .find(|d| d.data.name == name)
            .and_then(|d| d.data.population)
    };
    for (name, p) in [
        ("Vaduz", 5229),
        ("Schaan", 6002),
        ("Triesen", 5050),
        ("Balzers", 4608),
        ("Eschen", 4407),
        ("Mauren", 4138),
        ("Triesenberg", 2634),
        ("Ruggell", 2065),
        ("Gamprin", 1654),
        ("Schellenberg", 1037),
        ("Planken", 445),
    ] {
        assert_eq!(pop(name), Some(p), "{name}");
    }
    // AEDs were assigned to the municipality they stand in.
    let vaduz = districts.iter().find(|d| d.data.name == "Vaduz").unwrap();
    let in_vaduz = store
        .list_aeds(&ListQuery {
            district_id: Some(vaduz.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!in_vaduz.items.is_empty());
    assert!(in_vaduz
        .items
        .iter()
        .all(|a| a.data.time_zone == chrono_tz::Europe::Vaduz));

    let again = import_osm(store.as_ref(), &pbf(), &opts, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(
        (
            again.aeds.inserted,
            again.aeds.updated,
            again.aeds.unchanged
        ),
        (0, 0, 148)
    );
    assert_eq!((again.districts.inserted, again.districts.updated), (0, 0));
    assert_eq!(again.districts.unchanged, report.districts.inserted);
    assert_eq!(store.count_aeds().await.unwrap(), 148);
}

#[tokio::test]
async fn strict_mode_writes_nothing_when_a_row_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let store = aednet_store::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let csv = "name,lat,lon\nok,47.1,9.5\nbad,95.0,9.5\n";
    let strict = ImportOptions {
        strict: true,
        ..Default::default()
    };
    let err = aednet_import::import_csv(
        store.as_ref(),
        csv.as_bytes(),
        "list",
        &strict,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap_err();
    assert!(err.is_client_error());
    assert!(err.to_string().contains("row 3"), "{err}");
    assert_eq!(store.count_aeds().await.unwrap(), 0);
    let lenient = ImportOptions::default();
    let r = aednet_import::import_csv(
        store.as_ref(),
        csv.as_bytes(),
        "list",
        &lenient,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!((r.aeds.inserted, r.aeds.rejected), (1, 1));
    assert_eq!(r.rejections[0].field.as_deref(), Some("lat"));
    assert_eq!(r.source, "csv:list");
}
