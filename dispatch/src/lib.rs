//! Dispatch engine: the incident state machine, candidate selection and role assignment
//! (CPR-direct and AED-fetch), offer time-outs and escalation waves, stand-down, the audit log,
//! and the seeded outcome simulator that compares dispatch policies.
//!
//! Filled by the dispatch issue; the foundation only reserves the crate.
