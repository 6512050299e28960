//! The address index's share of an import: addresses, POIs, places and streets from the
//! extract ([`aednet_geocode::from_extract`]) stored as the `geocode` artifact; serving nodes
//! index them in memory. A build that finds nothing stores nothing (the index in use stays).

use std::sync::Arc;
use std::time::Instant;

use aednet_core::osm::Extract;
use aednet_core::Tags;
use aednet_store::{artifacts::kind, Store};
use indicatif::ProgressBar;

use crate::derived::DerivedLine;
use crate::osm_extract::FeatureFilter;

pub fn filter() -> FeatureFilter {
    fn node(t: &Tags) -> bool {
        aednet_geocode::filter_node(t)
    }
    fn way(t: &Tags) -> bool {
        aednet_geocode::filter_way(t)
    }
    fn area(t: &Tags) -> bool {
        aednet_geocode::filter_area(t)
    }
    FeatureFilter { node, way, area }
}

pub async fn build_and_store(
    store: &dyn Store,
    extract: Arc<Extract>,
    pb: &ProgressBar,
) -> DerivedLine {
    let start = Instant::now();
    pb.set_message("address index: collecting addresses, places and streets");
    let built = tokio::task::spawn_blocking(move || {
        let (places, summary) = aednet_geocode::from_extract(&extract);
        // Indexed once here as well: the summary says how many words it holds, and a build
        // that would not index fails here rather than on every serving node.
        let words = aednet_geocode::Index::build(places.clone()).vocabulary();
        let bytes = aednet_geocode::encode(&places);
        (places.len(), summary, words, bytes)
    })
    .await;
    let mut line = DerivedLine {
        kind: kind::GEOCODE.to_string(),
        summary: String::new(),
        version: None,
        warnings: Vec::new(),
    };
    let (n, summary, words, bytes) = match built {
        Ok(b) => b,
        Err(e) => {
            line.summary = "not built; the address index in use stays".into();
            line.warnings
                .push(format!("address index build failed: {e}"));
            return line;
        }
    };
    let described = format!(
        "{} addresses, {} POIs, {} streets, {} places ({} words, {} duplicate addresses merged)",
        summary.addresses, summary.pois, summary.streets, summary.places, words, summary.duplicates
    );
    if n == 0 {
        line.summary =
            "no addresses, places or named streets; the address index in use stays".into();
        return line;
    }
    let meta = serde_json::json!({
        "format": aednet_geocode::FORMAT_VERSION,
        "places": n,
        "addresses": summary.addresses,
        "pois": summary.pois,
        "streets": summary.streets,
        "localities": summary.places,
        "words": words,
    })
    .to_string();
    match store.put_artifact(kind::GEOCODE, &meta, &bytes).await {
        Ok(v) => {
            line.version = Some(v);
            line.summary = format!(
                "{described} in {:.1} s, {} KiB",
                start.elapsed().as_secs_f64(),
                bytes.len() / 1024
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "storing the address index");
            line.summary = "not stored; the address index in use stays".into();
            line.warnings
                .push(format!("storing the address index: {e}"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osm_extract::read_extract;

    /// The Liechtenstein extract: addresses and POIs typed with typos, without diacritics,
    /// abbreviated, in another language — each found first (or among the first three where
    /// the query is honestly ambiguous), and the index stored and read back.
    #[tokio::test]
    async fn liechtenstein_addresses_and_pois_typed_badly_are_found() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/liechtenstein.osm.pbf"
        );
        let bytes = std::fs::read(path).expect("../shared/data/liechtenstein.osm.pbf");
        let (extract, _) = read_extract(&bytes, &[filter()], |_| {}).unwrap();
        let (places, summary) = aednet_geocode::from_extract(&extract);
        assert!(summary.addresses > 5_000, "{summary:?}");
        assert!(summary.pois > 300 && summary.streets > 300, "{summary:?}");
        let ix = aednet_geocode::Index::build(places.clone());
        let vaduz = aednet_core::geo_util::LatLon {
            lat: 47.1410,
            lon: 9.5209,
        };
        // What was typed, and a piece of the label the right answer has. The real labels
        // are checked to exist first, so the list cannot pass on an empty index.
        let cases: &[(&str, &str, &str)] = &[
            // Umlaut typed as "ae", a POI found by its address.
            ("Aeulestrasse 30 Vaduz", "Äulestrasse 30,", "poi"),
            ("aulestrase 56", "Café Amann, Äulestrasse 56,", "poi"),
            ("Stadtle 33 vaduz", "Städtle 33, 9490 Vaduz", "address"),
            (
                "Landstr. 15 Triesen",
                "Landstrasse 15, 9495 Triesen",
                "address",
            ),
            ("Zollstrase 10", "Zollstrasse 10, 9490 Vaduz", "address"),
            (
                "Gafleistrasse 24 Trisenberg",
                "Gafleistrasse 24, 9497 Triesenberg",
                "address",
            ),
            ("Neugrut 25 Balzers", "Neugrüt 25, 9496 Balzers", "address"),
            (
                "Haldenstrase 86",
                "Haldenstrasse 86, 9487 Gamprin-Bendern",
                "address",
            ),
            (
                "furst franz josef strasse 17",
                "Fürst-Franz-Josef-Strasse 17,",
                "address",
            ),
            ("Migros Schan", "Migros, Im Rösle 2, 9494 Schaan", "poi"),
            ("coop vaduz", "Coop, Landstrasse 117, 9490 Vaduz", "poi"),
            ("spital vaduz", "Vaduz Spital", "poi"),
            ("Muhlebachweg", "Mühlebachweg, Schaanwald", "street"),
            ("Trisenberg", "Triesenberg", "place"),
            ("马尔邦", "Malbun", "place"),
        ];
        for (q, want, kind) in cases {
            assert!(
                places.iter().any(|p| p.label.contains(want)),
                "the extract has no {want:?}"
            );
            let hits = ix.search(q, Some(vaduz), 3);
            let labels: Vec<String> = hits
                .iter()
                .map(|h| {
                    let p = &ix.places()[h.place];
                    format!("{} [{}]", p.label, p.kind.as_str())
                })
                .collect();
            assert!(
                labels
                    .iter()
                    .any(|l| l.contains(want) && l.ends_with(&format!("[{kind}]"))),
                "{q:?} -> {labels:?}"
            );
        }
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        let line = build_and_store(store.as_ref(), Arc::new(extract), &ProgressBar::hidden()).await;
        assert_eq!(line.version, Some(1), "{line:?}");
        let stored = store.get_artifact(kind::GEOCODE).await.unwrap().unwrap();
        assert_eq!(aednet_geocode::decode(&stored.bytes).unwrap(), places);
    }

    /// `AEDNET_DUMP_PLACES=/tmp/places.txt`: every label of the Liechtenstein index, for a look.
    #[test]
    fn dump_liechtenstein_places_when_asked() {
        let Ok(out) = std::env::var("AEDNET_DUMP_PLACES") else {
            return;
        };
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/liechtenstein.osm.pbf"
        );
        let bytes = std::fs::read(path).unwrap();
        let (extract, _) = read_extract(&bytes, &[filter()], |_| {}).unwrap();
        let (places, _) = aednet_geocode::from_extract(&extract);
        let text: Vec<String> = places
            .iter()
            .map(|p| format!("{}\t{}\t{:?}", p.kind.as_str(), p.label, p.texts))
            .collect();
        std::fs::write(out, text.join("\n")).unwrap();
    }

    #[tokio::test]
    async fn nothing_searchable_stores_nothing() {
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        let line = build_and_store(
            store.as_ref(),
            Arc::new(Extract::default()),
            &ProgressBar::hidden(),
        )
        .await;
        assert_eq!(line.version, None);
        assert!(store.get_artifact(kind::GEOCODE).await.unwrap().is_none());
    }
}
