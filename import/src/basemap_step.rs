//! The street basemap's share of an import: which map features it reads (one
//! [`FeatureFilter`]) and its build step, cutting the extract into vector tiles
//! ([`aednet_basemap`]) off the async workers and storing the archive as the `basemap`
//! artifact. A failed build is reported and the basemap in use stays.

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
        aednet_basemap::features::wants_node(t)
    }
    fn way(t: &Tags) -> bool {
        aednet_basemap::features::wants_way(t)
    }
    fn area(t: &Tags) -> bool {
        aednet_basemap::features::wants_area(t)
    }
    FeatureFilter { node, way, area }
}

pub async fn build_and_store(
    store: &dyn Store,
    extract: Arc<Extract>,
    pb: &ProgressBar,
) -> DerivedLine {
    let start = Instant::now();
    pb.set_message("basemap: cutting vector tiles");
    let bar = pb.clone();
    let built = tokio::task::spawn_blocking(move || {
        aednet_basemap::build(&extract, &aednet_basemap::TileOptions::default(), |z| {
            bar.set_message(format!("basemap: zoom {z} done"));
            bar.tick();
        })
    })
    .await;
    let mut line = DerivedLine {
        kind: kind::BASEMAP.to_string(),
        summary: String::new(),
        version: None,
        warnings: Vec::new(),
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            line.summary = "not built; the basemap in use stays".into();
            line.warnings.push(format!("basemap build failed: {e}"));
            return line;
        }
    };
    if built.meta.tiles == 0 {
        line.summary = "no map features in the data; the basemap in use stays".into();
        return line;
    }
    let meta = serde_json::to_string(&built.meta).unwrap_or_else(|_| "{}".into());
    match store.put_artifact(kind::BASEMAP, &meta, &built.bytes).await {
        Ok(v) => {
            line.version = Some(v);
            line.summary = format!(
                "{} in {:.1} s",
                built.summary(),
                start.elapsed().as_secs_f64()
            );
            if built.meta.trimmed > 0 {
                line.warnings.push(format!(
                    "{} tile(s) over the size budget shed their least important layers",
                    built.meta.trimmed
                ));
            }
        }
        Err(e) => {
            line.summary = "not stored; the basemap in use stays".into();
            line.warnings.push(format!("storing the basemap: {e}"));
        }
    }
    line
}
