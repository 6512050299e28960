//! Data derived from the map features of an import — the walking graph, the street basemap,
//! the address index — built from one [`Extract`] (an OSM extract, or the synthetic demo city)
//! and stored as artifacts ([`aednet_store::ArtifactStore`]), each replaced whole so serving
//! nodes swap the new one in when it is complete.
//!
//! Each builder contributes a [`FeatureFilter`] (what it reads from the extract) and a step in
//! [`build_and_store`]; the extract is read once for all of them.

use std::sync::Arc;

use aednet_core::osm::Extract;
use aednet_store::Store;
use indicatif::ProgressBar;
use serde::Serialize;
use utoipa::ToSchema;

use crate::osm_extract::FeatureFilter;
use crate::ImportError;

/// One builder's outcome, for the import report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DerivedLine {
    /// The artifact kind (`walk_graph`, `basemap`, `geocode`).
    pub kind: String,
    /// One line for people: what was built ("12 034 nodes, 15 880 edges, …").
    pub summary: String,
    /// The stored artifact's version, `None` when nothing was stored.
    pub version: Option<i64>,
    pub warnings: Vec<String>,
}

/// What every builder wants from an extract.
pub fn feature_filters() -> Vec<FeatureFilter> {
    vec![
        crate::walk_graph::filter(),
        crate::basemap_step::filter(),
        crate::geocode_step::filter(),
    ]
}

/// Builds every derived artifact from `extract` (off the async workers: the builders are CPU
/// work) and stores each. Returns a line per builder; a builder that fails is reported and the
/// others still run, and the artifact it would have replaced stays in use.
#[allow(
    clippy::vec_init_then_push,
    reason = "one push per builder, added independently"
)]
pub async fn build_and_store(
    store: &dyn Store,
    extract: Arc<Extract>,
    pb: &ProgressBar,
) -> Result<Vec<DerivedLine>, ImportError> {
    let mut lines = Vec::new();
    lines.push(crate::walk_graph::build_and_store(store, extract.clone(), pb).await);
    lines.push(crate::basemap_step::build_and_store(store, extract.clone(), pb).await);
    lines.push(crate::geocode_step::build_and_store(store, extract.clone(), pb).await);
    Ok(lines)
}
