//! Dispatch engine: the incident state machine, candidate selection and role assignment
//! (CPR-direct and AED-fetch), offer time-outs and escalation waves, stand-down, the audit log,
//! and the seeded outcome simulator that compares dispatch policies.
//!
//! [`policy`] (who is alerted in which role) and [`incident`] (the state machine with its audit
//! trail) do no I/O; [`engine`] persists incidents after every change, runs offer timers and
//! waves, pushes offers and stand-downs to rescuers, and resumes open incidents after a
//! restart; [`http`] is the dispatcher and rescuer API with the rescuer's WebSocket. Not yet:
//! the outcome simulator and the dispatcher's live WebSocket.

pub mod engine;
pub mod http;
pub mod incident;
pub mod policy;

pub use engine::Engine;
pub use http::router;

pub use incident::{
    Answer, AuditEntry, AuditEvent, DispatchError, Effects, Incident, IncidentState, OfferState,
    Outcome,
};
pub use policy::{plan, AedOption, Candidate, Offer, OfferRole, Policy};
