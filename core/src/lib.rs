//! aednet's domain: the things the network is made of (AEDs, stations, rescuers, districts),
//! their validation, opening-hours evaluation in each AED's own time zone, the [`Event`]s that
//! flow from the store to indexes and subscribers, the [`Clock`] used by everything that asks
//! "what time is it", and the access [`Role`]s.
//!
//! This crate does no I/O and knows nothing of HTTP or SQL.

pub mod aed;
pub mod clock;
pub mod cluster;
pub mod district;
pub mod event;
pub mod geo_util;
pub mod hours;
pub mod osm;
pub mod rescuer;
pub mod role;
pub mod secret;
pub mod station;
pub mod telemetry;
pub mod validate;

pub use aed::{Access, Aed, AedInput, Readiness, ReadinessStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{IncidentCall, IncidentRequest, Leases, LocalLeases, PeerError, Peers, Signal};
pub use district::{District, DistrictInput, DistrictLocator};
pub use event::{Event, EventBus};
pub use geo_util::LatLon;
pub use hours::{Hours, HoursState};
pub use rescuer::{CertLevel, Rescuer, RescuerInput};
pub use role::Role;
pub use secret::Secret;
pub use station::{ScenicRating, Station, StationInput, StationKind};
pub use validate::{FieldError, Validated};

/// Tags from the source record that aednet does not model, kept verbatim (OSM keys, CSV columns).
pub type Tags = std::collections::BTreeMap<String, String>;
