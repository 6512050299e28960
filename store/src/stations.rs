//! Stations (rescue posts, kits) and the AEDs they hold.

use aednet_core::station::{Station, StationData};
use async_trait::async_trait;

use crate::{ListQuery, Page, Result, UpsertOutcome};

#[async_trait]
pub trait StationStore: Send + Sync {
    async fn create_station(&self, data: &StationData) -> Result<Station>;
    async fn get_station(&self, id: i64) -> Result<Option<Station>>;
    async fn replace_station(&self, id: i64, data: &StationData) -> Result<Option<Station>>;
    async fn delete_station(&self, id: i64) -> Result<bool>;
    async fn list_stations(&self, q: &ListQuery) -> Result<Page<Station>>;
    async fn upsert_stations(&self, batch: &[StationData]) -> Result<Vec<UpsertOutcome>>;
}
