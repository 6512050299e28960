//! AED telemetry ingest: the `/ws/device` WebSocket protocol, device authentication, sequence
//! numbers and durable acks, readiness derivation, and the heartbeat watchdog that marks
//! silent devices offline.
//!
//! Filled by the device-gateway issue; the foundation only reserves the crate.
