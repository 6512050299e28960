//! Rescuers (personal data: never public).

use aednet_core::rescuer::{Rescuer, RescuerData};
use async_trait::async_trait;

use crate::{ListQuery, Page, Result};

#[async_trait]
pub trait RescuerStore: Send + Sync {
    async fn create_rescuer(&self, data: &RescuerData) -> Result<Rescuer>;
    async fn get_rescuer(&self, id: i64) -> Result<Option<Rescuer>>;
    async fn replace_rescuer(&self, id: i64, data: &RescuerData) -> Result<Option<Rescuer>>;
    async fn delete_rescuer(&self, id: i64) -> Result<bool>;
    async fn list_rescuers(&self, q: &ListQuery) -> Result<Page<Rescuer>>;
    async fn insert_rescuers_bulk(&self, batch: &[RescuerData]) -> Result<u64>;
}
