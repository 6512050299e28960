//! In-memory spatial indexes (no I/O): an R-tree (rstar) over AEDs and stations carrying what
//! the nearest-AED filters need (readiness, access, kind, compiled opening hours, time zone),
//! an H3 (h3o) cell index for ring queries, and a TTL index of live rescuer positions.
//!
//! Filled by the geoindex issue; the foundation only reserves the crate.
