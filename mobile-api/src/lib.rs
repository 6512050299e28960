//! HTTP and WebSocket API for callers (nearest AED) and rescuers (duty, location, offers).
//!
//! Filled by the geoindex and dispatch issues; the foundation only reserves the crate.
