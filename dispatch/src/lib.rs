//! Dispatch engine: the incident state machine, candidate selection and role assignment
//! (CPR-direct and AED-fetch), offer time-outs and escalation waves, stand-down, the audit log,
//! and the seeded outcome simulator that compares dispatch policies.
//!
//! So far, both without I/O: [`policy`], who is alerted in which role, and [`incident`], the
//! incident state machine with offers, answers, time-outs, stand-down and its audit trail.
//! Persisting incidents, timers, the dispatcher API, offers over the rescuer WebSocket and the
//! simulator are the rest of the dispatch issue.

pub mod incident;
pub mod policy;

pub use incident::{
    Answer, AuditEntry, AuditEvent, DispatchError, Effects, Incident, IncidentState, OfferState,
    Outcome,
};
pub use policy::{plan, AedOption, Candidate, Offer, OfferRole, Policy};
