//! Load generator (closed and open loop, hdrhistogram latencies from intended start time) and
//! side-by-side comparisons of the nearest-AED query against PostgreSQL + PostGIS and Redis.
//!
//! Filled by the geoindex issue; the foundation only reserves the crate.
