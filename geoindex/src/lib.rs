//! In-memory spatial indexes (no I/O): AEDs, stations and live rescuers, each in an R-tree
//! (rstar), plus an H3 (h3o) cell map of AEDs for coverage and dispatch.
//!
//! Points are stored as unit vectors on the sphere (x, y, z). The straight-line (chord)
//! distance between two unit vectors grows monotonically with the great-circle distance, so
//! Euclidean nearest-neighbour search in 3-D gives exact spherical nearest neighbours — across
//! the antimeridian and near the poles, where nearest-by-degrees is wrong.
//!
//! The caller's query ([`AedIndex::nearest`]) ranks AEDs by the time to fetch one and bring it
//! back ([`WalkModel`]), filtered by readiness, access, opening hours at the query time
//! ([`Schedule`], evaluated in each AED's zone) and distance. [`GeoIndex`] wraps the indexes
//! for concurrent use: short locked updates one by one, bulk rebuilds swapped in.

pub mod aed_index;
pub mod geo;
pub mod network;
pub mod rescuer_index;
pub mod schedule;
pub mod sphere;
pub mod station_index;
pub mod walk;

pub use aed_index::{
    evaluate, evaluate_leg, parse_floor, rank, AedDetail, AedEntry, AedIndex, Filters, HoursPolicy,
    Leg, Legs, LineString, Nearest, ReadinessFilter, WalkKind, CELL_RES,
};
pub use geo::GeoIndex;
pub use network::{NetworkAnswer, NetworkLegs, QueryWalk};
pub use rescuer_index::{NearRescuer, RescuerFix, RescuerIndex};
pub use schedule::{Schedule, ScheduleState, Schedules};
pub use station_index::{StationEntry, StationFilters, StationIndex, StationNearest};
pub use walk::WalkModel;
