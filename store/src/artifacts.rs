//! Artifacts: data built from an import and served from memory — the walking graph, the street
//! basemap, the address index. Each kind is one opaque blob (its builder's versioned format),
//! replaced whole in one transaction by a later import, so a reader sees the old one or the new
//! one, never half of either. Nodes poll [`ArtifactStore::artifact_versions`] (no blobs) and
//! load a kind again when its version moved.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// Kinds in use; a kind is any short name, these are the ones aednet writes.
pub mod kind {
    /// `routing::Graph`, the pedestrian network.
    pub const WALK_GRAPH: &str = "walk_graph";
    /// The street basemap's vector-tile archive.
    pub const BASEMAP: &str = "basemap";
    /// The address and place search records.
    pub const GEOCODE: &str = "geocode";
    /// A city's address register (`aednet import addresses`), searched beside `geocode`.
    pub const ADDRESS_REGISTER: &str = "address_register";
}

/// What is known of a stored artifact without reading its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactInfo {
    pub kind: String,
    /// Grows with every replacement of this kind (1 for the first).
    pub version: i64,
    pub built_at: DateTime<Utc>,
    /// The builder's summary as JSON text (counts, the source file, its format version).
    pub meta: String,
    pub size_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub info: ArtifactInfo,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores `bytes` as the artifact of `kind`, replacing any earlier one in one transaction;
    /// returns the new version.
    async fn put_artifact(&self, kind: &str, meta: &str, bytes: &[u8]) -> Result<i64>;
    async fn get_artifact(&self, kind: &str) -> Result<Option<Artifact>>;
    /// Every stored kind with its version, without the bytes (cheap enough to poll).
    async fn artifact_versions(&self) -> Result<Vec<ArtifactInfo>>;
    /// Removes an artifact (`false` if there was none).
    async fn delete_artifact(&self, kind: &str) -> Result<bool>;
}
