//! The walking graph built from an import's extract ([`aednet_routing::build`]) and stored as
//! the `walk_graph` artifact, replaced whole: serving nodes keep the previous graph until the
//! new one is stored, and a build that finds nothing walkable stores nothing (the network in
//! use, if any, stays) and says so.

use std::sync::Arc;

use aednet_core::osm::Extract;
use aednet_core::Tags;
use aednet_store::artifacts::kind;
use aednet_store::Store;
use indicatif::ProgressBar;

use crate::derived::DerivedLine;
use crate::osm_extract::FeatureFilter;

fn no_areas(_: &Tags) -> bool {
    false
}

/// Walkable ways and the barrier nodes on them.
pub fn filter() -> FeatureFilter {
    FeatureFilter {
        node: aednet_routing::is_graph_node,
        way: aednet_routing::is_walkable_way,
        area: no_areas,
    }
}

/// "12 034 nodes" — thin spaces would be nicer, plain spaces read everywhere.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Builds the graph on a blocking thread and stores it; never fails the import: a problem is
/// a warning on the line, and the graph in use stays.
pub async fn build_and_store(
    store: &dyn Store,
    extract: Arc<Extract>,
    pb: &ProgressBar,
) -> DerivedLine {
    pb.set_message("building the walking graph");
    let origin = extract.origin;
    let built = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let (graph, report) = aednet_routing::build(&extract);
        let bytes = graph.encode();
        (graph, report, bytes, started.elapsed())
    })
    .await;
    pb.tick();
    let (graph, report, bytes, took) = match built {
        Ok(x) => x,
        Err(e) => {
            return DerivedLine {
                kind: kind::WALK_GRAPH.into(),
                summary: "not built".into(),
                version: None,
                warnings: vec![format!(
                    "the walking graph builder failed: {e}; the network in use (if any) stays"
                )],
            }
        }
    };
    let mut warnings = report.warnings(&graph);
    let summary = format!(
        "{} nodes, {} edges, {} components, {:.1} km of walkable way ({} ways, built in {} ms, {} KiB)",
        grouped(graph.node_count() as u64),
        grouped(graph.edge_count() as u64),
        grouped(graph.component_count() as u64),
        graph.length_m() / 1000.0,
        grouped(report.ways_used),
        took.as_millis(),
        grouped(bytes.len() as u64 / 1024),
    );
    if graph.edge_count() == 0 {
        warnings.push("nothing stored: the walking network in use (if any) stays".into());
        return DerivedLine {
            kind: kind::WALK_GRAPH.into(),
            summary,
            version: None,
            warnings,
        };
    }
    let meta = serde_json::json!({
        "format": aednet_routing::FORMAT_VERSION,
        "origin": origin.as_str(),
        "nodes": graph.node_count(),
        "edges": graph.edge_count(),
        "components": graph.component_count(),
        "largest_component": graph.component_sizes().first(),
        "length_km": graph.length_m() / 1000.0,
    })
    .to_string();
    drop(graph);
    let version = match store.put_artifact(kind::WALK_GRAPH, &meta, &bytes).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "storing the walking graph");
            warnings.push(format!(
                "not stored ({e}): the walking network in use (if any) stays"
            ));
            None
        }
    };
    DerivedLine {
        kind: kind::WALK_GRAPH.into(),
        summary,
        version,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_core::geo_util::LatLon;
    use aednet_core::osm::{Node, Way};

    fn way(id: i64, tags: &[(&str, &str)], nodes: &[(i64, f64, f64)]) -> Way {
        Way {
            id,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nodes: nodes.iter().map(|n| n.0).collect(),
            coords: nodes
                .iter()
                .map(|n| LatLon { lat: n.1, lon: n.2 })
                .collect(),
        }
    }

    #[test]
    fn grouping() {
        assert_eq!(grouped(12034), "12 034");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }

    /// Bad input: no ways, self-loops, zero-length edges, an absurd level, a blocked gate,
    /// missing nodes — a report with warnings, never a panic, nothing half-stored.
    #[tokio::test]
    async fn bad_input_is_reported_and_an_empty_graph_is_not_stored() {
        let store = aednet_store::connect("sqlite::memory:").await.unwrap();
        let pb = ProgressBar::hidden();
        let line = build_and_store(store.as_ref(), Arc::new(Extract::default()), &pb).await;
        assert_eq!(line.version, None);
        assert!(
            line.warnings.iter().any(|w| w.contains("no walkable ways")),
            "{line:?}"
        );
        assert!(store
            .get_artifact(kind::WALK_GRAPH)
            .await
            .unwrap()
            .is_none());

        let e = Extract {
            ways: vec![
                way(
                    1,
                    &[("highway", "footway"), ("level", "9999")],
                    &[
                        (1, 47.0, 9.5),
                        (1, 47.0, 9.5),
                        (2, 47.001, 9.5),
                        (3, 47.001, 9.5),
                        (4, 47.002, 9.5),
                    ],
                ),
                way(
                    2,
                    &[("highway", "motorway")],
                    &[(4, 47.002, 9.5), (5, 47.01, 9.5)],
                ),
                way(
                    3,
                    &[("highway", "path")],
                    &[(4, 47.002, 9.5), (6, 47.003, 9.5), (7, 47.004, 9.5)],
                ),
            ],
            nodes: vec![Node {
                id: 6,
                pos: LatLon {
                    lat: 47.003,
                    lon: 9.5,
                },
                tags: [("barrier", "gate"), ("access", "no")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            ways_with_missing_nodes: 2,
            ..Default::default()
        };
        let line = build_and_store(store.as_ref(), Arc::new(e), &pb).await;
        assert_eq!(line.version, Some(1), "{line:?}");
        let all = line.warnings.join("\n");
        for want in [
            "self-loop",
            "zero-length",
            "level",
            "missing from the extract",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        let stored = store.get_artifact(kind::WALK_GRAPH).await.unwrap().unwrap();
        let g = aednet_routing::Graph::decode(&stored.bytes).unwrap();
        // 1-2-3-4 on the footway; the motorway is not walkable; the gate (6) cuts 4-6-7.
        assert_eq!((g.node_count(), g.edge_count()), (4, 3), "{}", line.summary);
        assert!(stored.info.meta.contains("\"nodes\":4"));
    }
}
