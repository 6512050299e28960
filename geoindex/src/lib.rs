//! In-memory spatial indexes (no I/O): an R-tree (rstar) over AEDs carrying what the
//! nearest-AED filters need (readiness, access, indoor, compiled opening hours in the AED's own
//! zone), queried for the k nearest that pass the filters.
//!
//! Points are stored as unit vectors on the sphere (x, y, z). The straight-line (chord)
//! distance between two unit vectors grows monotonically with the great-circle distance, so
//! Euclidean nearest-neighbour search in 3-D gives exact spherical nearest neighbours — across
//! the antimeridian and near the poles, where nearest-by-degrees is wrong.
//!
//! The foundation provides the AED index; the geoindex issue adds stations, H3 cells, live
//! rescuers with a TTL, and concurrent incremental updates from store events.

pub mod aed_index;
pub mod sphere;

pub use aed_index::{AedEntry, AedIndex, Filters, Nearest, ReadinessFilter};
