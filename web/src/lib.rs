//! The four consoles (public AED map, dispatcher, maintenance board, planner), as static assets
//! embedded in the binary and served at `/`.
//!
//! Filled by the web issue; the foundation only reserves the crate.
