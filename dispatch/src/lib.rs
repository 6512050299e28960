//! Dispatch engine: the incident state machine, candidate selection and role assignment
//! (CPR-direct and AED-fetch), offer time-outs and escalation waves, stand-down, the audit log,
//! and the live rescuer and dispatcher channels.
//!
//! [`policy`] (who is alerted in which role) and [`incident`] (the state machine with its audit
//! trail) do no I/O; [`engine`] persists incidents after every change, keeps offer deadlines on
//! the state's clock (driven live by its own task, or by the outcome simulator in
//! `aednet simulate dispatch` on a virtual clock), pushes offers, live distance/ETA and
//! stand-downs, and resumes open incidents after a restart; [`http`] is the dispatcher and
//! rescuer API with `/ws/rescuer` (docs/rescuer-protocol.md) and `/ws/dispatch`; [`push_http`]
//! the rescuer's push subscriptions and delivery confirmations; [`history`] the rescuer's own
//! call-outs (`GET /api/v1/me/incidents`).

pub mod cad;
pub mod engine;
pub mod history;
pub mod http;
pub mod incident;
pub mod policy;
pub mod push_http;
pub mod travel;

pub use engine::{Engine, PRIOR_OFFERS};
pub use http::router;

pub use incident::{
    Answer, AuditEntry, AuditEvent, DispatchError, Effects, Incident, IncidentState, OfferState,
    Outcome,
};
pub use policy::{plan, plan_with, AedOption, Candidate, Offer, OfferRole, Policy};
