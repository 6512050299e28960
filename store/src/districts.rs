//! Districts (boundaries, population, targets) and the assignment of AEDs and stations to
//! the district they lie in.

use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::LatLon;
use async_trait::async_trait;

use crate::{ListQuery, Page, Result, UpsertOutcome};

#[async_trait]
pub trait DistrictStore: Send + Sync {
    async fn create_district(&self, data: &DistrictData) -> Result<District>;
    async fn get_district(&self, id: i64) -> Result<Option<District>>;
    async fn replace_district(&self, id: i64, data: &DistrictData) -> Result<Option<District>>;
    async fn delete_district(&self, id: i64) -> Result<bool>;
    async fn list_districts(&self, q: &ListQuery) -> Result<Page<District>>;
    /// Matched on (source, external_ref) like [`crate::AedStore::upsert_aeds`].
    async fn upsert_districts(&self, batch: &[DistrictData]) -> Result<Vec<UpsertOutcome>>;
    /// Sets `district_id` of every AED and station from its location (point in polygon) for
    /// those whose district is unset; returns how many changed.
    async fn assign_districts(
        &self,
        locate: &(dyn Fn(LatLon) -> Option<i64> + Sync),
    ) -> Result<u64>;
}
