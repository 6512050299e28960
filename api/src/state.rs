//! Shared application state handed to every handler.

use std::sync::Arc;

use aednet_core::{Clock, EventBus};
use aednet_store::DynStore;

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: DynStore,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: DynStore, bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            bus,
            clock,
            metrics: Arc::new(Metrics::new()),
        }
    }
}
