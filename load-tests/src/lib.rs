//! Load generator and peer comparisons for the caller's nearest-AED query.
//!
//! [`workload`] makes one synthetic network of AEDs (seeded, identical for every target) and
//! the query points; [`targets`] loads it into aednet (SQLite file, served by the real server
//! in a child process), PostgreSQL + PostGIS and Redis, and answers the same query on each;
//! [`drive`] runs closed-loop (max throughput) and open-loop (fixed rate, latency from the
//! intended start time, so queueing is not hidden) load and records HDR histograms;
//! [`cluster`] runs the nearest and telemetry loads against one or several nodes over
//! PostgreSQL + NATS JetStream; [`isolation`] measures the caller's query beside coverage
//! clients, an import, location reports and telemetry; [`tiles`] the street basemap's
//! build and tile serving; [`push`] an incident's first wave of Web Push requests against a
//! slow push service.

pub mod cluster;
pub mod devices;
pub mod dispatch;
pub mod drive;
pub mod isolation;
pub mod locations;
pub mod push;
pub mod targets;
pub mod tiles;
pub mod workload;
