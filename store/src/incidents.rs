//! Incidents: documents owned by the dispatch engine (opaque JSON here) and their append-only
//! audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Reserves an id for a new incident, stored with `state` and an empty document.
    async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64>;
    /// Replaces the document and appends audit entries `(seq, at, entry JSON)`, in one
    /// transaction. Audit rows are only ever inserted; a seq stored before is a conflict.
    async fn save_incident(
        &self,
        id: i64,
        state: &str,
        doc: &str,
        audit: &[(i64, DateTime<Utc>, String)],
    ) -> Result<()>;
    async fn get_incident(&self, id: i64) -> Result<Option<String>>;
    /// Documents of incidents whose state is not `closed` or `cancelled`.
    async fn open_incidents(&self) -> Result<Vec<String>>;
    async fn incident_audit(&self, id: i64) -> Result<Vec<String>>;
}
