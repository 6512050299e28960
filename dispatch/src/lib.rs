//! Dispatch engine: the incident state machine, candidate selection and role assignment
//! (CPR-direct and AED-fetch), offer time-outs and escalation waves, stand-down, the audit log,
//! and the seeded outcome simulator that compares dispatch policies.
//!
//! So far: [`policy`], the pure decision of who is alerted in which role — the part every
//! other piece of the engine calls. The incident state machine, offers over the rescuer
//! WebSocket, the audit log and the simulator are the rest of the dispatch issue.

pub mod policy;

pub use policy::{plan, AedOption, Candidate, Offer, OfferRole, Policy};
