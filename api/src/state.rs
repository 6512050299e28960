//! Shared application state handed to every handler.

use std::sync::Arc;

use aednet_core::{Clock, EventBus};
use aednet_geoindex::{GeoIndex, WalkModel};
use aednet_store::DynStore;

use crate::artifacts::ArtifactSlot;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: DynStore,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// AEDs, stations and live rescuers in memory; kept current by [`crate::geo_sync`].
    pub geo: Arc<GeoIndex>,
    pub walk: WalkModel,
    /// How the live coverage map counts (`[coverage]`); see [`crate::coverage`].
    pub coverage: crate::coverage::CoverageConfig,
    /// The OpenAPI document served at `/api/openapi.json`; the binary merges in the routers
    /// of other crates.
    pub openapi: Arc<serde_json::Value>,
    pub tokens: Arc<crate::auth::TokenCache>,
    /// Open WebSockets by token, closed when their token is revoked ([`crate::sessions`]).
    pub sessions: Arc<crate::sessions::Sessions>,
    /// The other nodes of a cluster (`[cluster]`); `None` on a single node.
    pub peers: Option<Arc<dyn aednet_core::Peers>>,
    /// `[limits]`: open sockets per kind, location reports per rescuer.
    pub limits: Arc<crate::limits::Limits>,
    /// Dedicated low-priority threads for long CPU work ([`crate::background`]).
    pub background: Arc<crate::background::Background>,
    /// The walking network (`walk_graph` artifact), empty until one is loaded: without it
    /// walks keep the straight-line model. [`crate::artifacts::follow_into`] keeps it current.
    pub walk_graph: Arc<ArtifactSlot<Arc<aednet_routing::Graph>>>,
    /// Address and place search (`geocode` and `address_register` artifacts), empty until
    /// loaded; `serve` starts following them ([`crate::geocode::Geocoder::start`]).
    pub geocode: Arc<crate::geocode::Geocoder>,
    /// `[cad]`: the CAD link's secret, replay window and outbound URL.
    pub cad: Arc<crate::cad_config::CadConfig>,
}

impl AppState {
    pub fn new(store: DynStore, bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            bus,
            clock,
            metrics: Arc::new(Metrics::new()),
            geo: Arc::new(GeoIndex::default()),
            walk: WalkModel::default(),
            coverage: crate::coverage::CoverageConfig::default(),
            openapi: Arc::new(crate::openapi::document(None)),
            tokens: Arc::new(crate::auth::TokenCache::default()),
            sessions: Arc::new(crate::sessions::Sessions::default()),
            peers: None,
            limits: Arc::new(crate::limits::Limits::default()),
            background: Arc::new(crate::background::Background::default()),
            walk_graph: Arc::new(ArtifactSlot::new(aednet_store::artifacts::kind::WALK_GRAPH)),
            geocode: Arc::new(crate::geocode::Geocoder::default()),
            cad: Arc::new(crate::cad_config::CadConfig::default()),
        }
    }
}

/// Decodes a stored `walk_graph` artifact (for [`crate::artifacts::follow_into`]).
pub fn decode_walk_graph(bytes: &[u8]) -> Result<Arc<aednet_routing::Graph>, String> {
    aednet_routing::Graph::decode(bytes)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}
