//! The incident state machine as a value: offers and their answers, incident states, stand-down
//! and an append-only audit trail, with the rules the API enforces (someone else's offer → 403,
//! a closed incident → 409, the same answer twice → no change). No I/O: the engine persists the
//! whole value (it serializes) and schedules [`Incident::next_deadline`], so a restart resumes
//! from the store.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{Offer, OfferRole};
use aednet_core::LatLon;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Created,
    Alerting,
    EnRoute,
    OnScene,
    Closed,
    Cancelled,
}

impl IncidentState {
    pub fn is_open(self) -> bool {
        !matches!(self, IncidentState::Closed | IncidentState::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    Offered,
    Accepted,
    Arrived,
    Declined,
    TimedOut,
    StoodDown,
}

impl OfferState {
    /// The rescuer is still asked or on the way: not free for another incident.
    pub fn holds(self) -> bool {
        matches!(
            self,
            OfferState::Offered | OfferState::Accepted | OfferState::Arrived
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    pub id: u32,
    pub rescuer_id: i64,
    /// `None` for CPR, the AED to fetch otherwise.
    pub fetch_aed: Option<i64>,
    pub eta_s: f64,
    pub state: OfferState,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub aed_applied: bool,
    pub shock_delivered: bool,
    pub handed_to_ems: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    Created {
        lat: f64,
        lon: f64,
    },
    Offered {
        offer: u32,
        rescuer_id: i64,
        fetch_aed: Option<i64>,
        eta_s: f64,
    },
    /// With the rescuer's position at that moment: the only place a position is kept
    /// beyond the in-memory index (the incident's own record, for review).
    Accepted {
        offer: u32,
        rescuer_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<LatLon>,
    },
    Declined {
        offer: u32,
        rescuer_id: i64,
    },
    TimedOut {
        offer: u32,
        rescuer_id: i64,
    },
    /// With the rescuer's position at that moment: the only place a position is kept
    /// beyond the in-memory index (the incident's own record, for review).
    Arrived {
        offer: u32,
        rescuer_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<LatLon>,
    },
    StoodDown {
        offer: u32,
        rescuer_id: i64,
    },
    /// The cabinet code was shown to the accepted fetcher of this AED.
    CodeRevealed {
        offer: u32,
        rescuer_id: i64,
        aed_id: i64,
    },
    State {
        from: IncidentState,
        to: IncidentState,
    },
    Closed {
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: AuditEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Accept,
    Decline,
    Arrived,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("no such offer")]
    UnknownOffer,
    #[error("this offer belongs to another rescuer")]
    NotYourOffer,
    #[error("the incident is closed")]
    IncidentClosed,
    #[error("{0}")]
    Conflict(String),
}

/// What an answer changed, for the engine to act on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    /// The same answer was given before: nothing changed.
    pub unchanged: bool,
    /// Show this AED's cabinet code to the rescuer who just accepted to fetch it.
    pub reveal_code: Option<i64>,
    /// Tell these rescuers they are no longer needed.
    pub stood_down: Vec<i64>,
    /// Fewer helpers than wanted are left: offer the next candidates.
    pub need_more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    pub state: IncidentState,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    /// Accepted helpers wanted; once reached, pending offers are stood down.
    pub wanted: usize,
    pub offers: Vec<OfferRecord>,
    /// Never empty in memory (an incident starts with `created`); left out of the stored
    /// document, whose trail is rows of its own (see [`crate::engine::read_stored`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditEntry>,
    /// Where the call came from when not typed in the console: a CAD hand-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<Intake>,
}

/// A call handed over by the dispatch centre's CAD system ([`crate::cad`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intake {
    /// The CAD's own call id (the key of idempotency).
    pub call_id: String,
    /// The CAD's nature/determinant code (e.g. an MPDS code `09E01`).
    pub nature: String,
    /// When the call was received, as the CAD says.
    pub received_at: DateTime<Utc>,
    /// Where the position came from: `cad` (sent as coordinates), `aml` (the caller's handset,
    /// Advanced Mobile Location) or `geocoded` (from the address text).
    pub position_source: String,
    /// Radius of the position's uncertainty, metres (AML `rd`, or the CAD's), drawn on the board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
    /// The address label the position was geocoded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geocoded_label: Option<String>,
}

impl Incident {
    pub fn new(id: i64, at: LatLon, wanted: usize, now: DateTime<Utc>) -> Self {
        let mut i = Self {
            id,
            lat: at.lat,
            lon: at.lon,
            address: None,
            notes: None,
            state: IncidentState::Created,
            created_at: now,
            closed_at: None,
            outcome: None,
            wanted: wanted.max(1),
            offers: Vec::new(),
            audit: Vec::new(),
            intake: None,
        };
        i.log(
            now,
            AuditEvent::Created {
                lat: at.lat,
                lon: at.lon,
            },
        );
        i
    }

    fn log(&mut self, at: DateTime<Utc>, event: AuditEvent) {
        self.audit.push(AuditEntry { at, event });
    }

    fn set_state(&mut self, to: IncidentState, now: DateTime<Utc>) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            self.log(now, AuditEvent::State { from, to });
        }
    }

    /// Rescuers offered anything in this incident (never offered twice).
    pub fn offered_rescuers(&self) -> Vec<i64> {
        self.offers.iter().map(|o| o.rescuer_id).collect()
    }

    /// AEDs someone is fetching or has been asked to fetch.
    pub fn claimed_aeds(&self) -> Vec<i64> {
        self.offers
            .iter()
            .filter(|o| {
                matches!(
                    o.state,
                    OfferState::Offered | OfferState::Accepted | OfferState::Arrived
                )
            })
            .filter_map(|o| o.fetch_aed)
            .collect()
    }

    pub fn accepted(&self) -> usize {
        self.offers
            .iter()
            .filter(|o| matches!(o.state, OfferState::Accepted | OfferState::Arrived))
            .count()
    }

    fn pending(&self) -> usize {
        self.offers
            .iter()
            .filter(|o| o.state == OfferState::Offered)
            .count()
    }

    /// Sends offers from a plan; rescuers already offered in this incident are skipped.
    pub fn offer(
        &mut self,
        plan: &[Offer],
        timeout: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<u32>, DispatchError> {
        if !self.state.is_open() {
            return Err(DispatchError::IncidentClosed);
        }
        let mut sent = Vec::new();
        for o in plan {
            if self.offers.iter().any(|x| x.rescuer_id == o.rescuer_id) {
                continue;
            }
            let id = u32::try_from(self.offers.len() + 1).unwrap_or(u32::MAX);
            let fetch_aed = match o.role {
                OfferRole::Cpr => None,
                OfferRole::FetchAed { aed_id } => Some(aed_id),
            };
            self.offers.push(OfferRecord {
                id,
                rescuer_id: o.rescuer_id,
                fetch_aed,
                eta_s: o.eta_s,
                state: OfferState::Offered,
                offered_at: now,
                expires_at: now + timeout,
            });
            self.log(
                now,
                AuditEvent::Offered {
                    offer: id,
                    rescuer_id: o.rescuer_id,
                    fetch_aed,
                    eta_s: o.eta_s,
                },
            );
            sent.push(id);
        }
        if self.state == IncidentState::Created && !sent.is_empty() {
            self.set_state(IncidentState::Alerting, now);
        }
        Ok(sent)
    }

    /// A rescuer's answer to an offer; `at` is where they are (recorded for accept and arrival).
    pub fn answer(
        &mut self,
        offer: u32,
        rescuer_id: i64,
        answer: Answer,
        at: Option<LatLon>,
        now: DateTime<Utc>,
    ) -> Result<Effects, DispatchError> {
        let idx = self
            .offers
            .iter()
            .position(|o| o.id == offer)
            .ok_or(DispatchError::UnknownOffer)?;
        if self.offers[idx].rescuer_id != rescuer_id {
            return Err(DispatchError::NotYourOffer);
        }
        let state = self.offers[idx].state;
        let same = matches!(
            (answer, state),
            (Answer::Accept, OfferState::Accepted)
                | (Answer::Decline, OfferState::Declined)
                | (Answer::Arrived, OfferState::Arrived)
        );
        if same {
            return Ok(Effects {
                unchanged: true,
                ..Effects::default()
            });
        }
        if !self.state.is_open() {
            return Err(DispatchError::IncidentClosed);
        }
        let mut fx = Effects::default();
        match (answer, state) {
            (Answer::Accept, OfferState::Offered) => {
                self.offers[idx].state = OfferState::Accepted;
                self.log(
                    now,
                    AuditEvent::Accepted {
                        offer,
                        rescuer_id,
                        position: at,
                    },
                );
                // The engine shows the code if the cabinet has one, and records that it did.
                fx.reveal_code = self.offers[idx].fetch_aed;
                if matches!(self.state, IncidentState::Created | IncidentState::Alerting) {
                    self.set_state(IncidentState::EnRoute, now);
                }
                if self.accepted() >= self.wanted {
                    fx.stood_down = self.stand_down_pending(now);
                }
            }
            (Answer::Decline, OfferState::Offered | OfferState::Accepted) => {
                self.offers[idx].state = OfferState::Declined;
                self.log(now, AuditEvent::Declined { offer, rescuer_id });
                fx.need_more = self.accepted() + self.pending() < self.wanted;
            }
            (Answer::Arrived, OfferState::Accepted) => {
                self.offers[idx].state = OfferState::Arrived;
                self.log(
                    now,
                    AuditEvent::Arrived {
                        offer,
                        rescuer_id,
                        position: at,
                    },
                );
                self.set_state(IncidentState::OnScene, now);
            }
            (a, s) => {
                return Err(DispatchError::Conflict(
                    format!("cannot {a:?} an offer that is {s:?}").to_lowercase(),
                ));
            }
        }
        Ok(fx)
    }

    /// Records that the cabinet code of an accepted fetch was shown to its rescuer.
    pub fn code_revealed(&mut self, offer: u32, now: DateTime<Utc>) {
        if let Some(o) = self.offers.iter().find(|o| o.id == offer) {
            if let Some(aed_id) = o.fetch_aed {
                let rescuer_id = o.rescuer_id;
                self.log(
                    now,
                    AuditEvent::CodeRevealed {
                        offer,
                        rescuer_id,
                        aed_id,
                    },
                );
            }
        }
    }

    fn stand_down_pending(&mut self, now: DateTime<Utc>) -> Vec<i64> {
        let mut out = Vec::new();
        for i in 0..self.offers.len() {
            if self.offers[i].state == OfferState::Offered {
                self.offers[i].state = OfferState::StoodDown;
                let (offer, rescuer_id) = (self.offers[i].id, self.offers[i].rescuer_id);
                self.log(now, AuditEvent::StoodDown { offer, rescuer_id });
                out.push(rescuer_id);
            }
        }
        out
    }

    /// Offers unanswered by `now` time out; says whether more helpers are needed.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Effects {
        let mut fx = Effects::default();
        if !self.state.is_open() {
            return fx;
        }
        for i in 0..self.offers.len() {
            if self.offers[i].state == OfferState::Offered && self.offers[i].expires_at <= now {
                self.offers[i].state = OfferState::TimedOut;
                let (offer, rescuer_id) = (self.offers[i].id, self.offers[i].rescuer_id);
                self.log(now, AuditEvent::TimedOut { offer, rescuer_id });
                fx.need_more = true;
            }
        }
        fx.need_more &= self.accepted() + self.pending() < self.wanted;
        fx
    }

    /// When the engine should call [`Incident::expire`] next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        if !self.state.is_open() {
            return None;
        }
        self.offers
            .iter()
            .filter(|o| o.state == OfferState::Offered)
            .map(|o| o.expires_at)
            .min()
    }

    /// Closes with an outcome; everyone still offered or on the way is stood down.
    pub fn close(
        &mut self,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DispatchError> {
        self.finish(IncidentState::Closed, Some(outcome), now)
    }

    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<Vec<i64>, DispatchError> {
        self.finish(IncidentState::Cancelled, None, now)
    }

    fn finish(
        &mut self,
        to: IncidentState,
        outcome: Option<Outcome>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, DispatchError> {
        if !self.state.is_open() {
            return Err(DispatchError::IncidentClosed);
        }
        let mut out = self.stand_down_pending(now);
        for i in 0..self.offers.len() {
            if self.offers[i].state == OfferState::Accepted {
                self.offers[i].state = OfferState::StoodDown;
                let (offer, rescuer_id) = (self.offers[i].id, self.offers[i].rescuer_id);
                self.log(now, AuditEvent::StoodDown { offer, rescuer_id });
                out.push(rescuer_id);
            }
        }
        if let Some(o) = outcome {
            self.outcome = Some(o);
            self.log(now, AuditEvent::Closed { outcome: o });
        }
        self.closed_at = Some(now);
        self.set_state(to, now);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn plan() -> Vec<Offer> {
        vec![
            Offer {
                rescuer_id: 1,
                role: OfferRole::Cpr,
                eta_s: 60.0,
            },
            Offer {
                rescuer_id: 2,
                role: OfferRole::FetchAed { aed_id: 50 },
                eta_s: 150.0,
            },
            Offer {
                rescuer_id: 3,
                role: OfferRole::Cpr,
                eta_s: 200.0,
            },
            Offer {
                rescuer_id: 4,
                role: OfferRole::FetchAed { aed_id: 51 },
                eta_s: 240.0,
            },
        ]
    }

    #[test]
    fn a_whole_incident_with_its_audit_trail() {
        let mut i = Incident::new(
            7,
            LatLon {
                lat: 28.97,
                lon: 118.87,
            },
            2,
            t(0),
        );
        let sent = i.offer(&plan(), Duration::seconds(45), t(1)).unwrap();
        assert_eq!(sent, vec![1, 2, 3, 4]);
        assert_eq!(i.state, IncidentState::Alerting);
        assert_eq!(i.claimed_aeds(), vec![50, 51]);
        assert_eq!(i.next_deadline(), Some(t(46)));
        // Offering the same rescuers again sends nothing.
        assert!(i
            .offer(&plan(), Duration::seconds(45), t(2))
            .unwrap()
            .is_empty());

        // Rescuer 3 declines: still 3 pending for 2 wanted, no need for more.
        let fx = i.answer(3, 3, Answer::Decline, None, t(5)).unwrap();
        assert!(!fx.need_more);
        // Someone else's offer, an unknown one.
        assert_eq!(
            i.answer(1, 9, Answer::Accept, None, t(6)),
            Err(DispatchError::NotYourOffer)
        );
        assert_eq!(
            i.answer(99, 1, Answer::Accept, None, t(6)),
            Err(DispatchError::UnknownOffer)
        );
        // The fetcher accepts: the code is revealed, once, and audited.
        let fx = i.answer(2, 2, Answer::Accept, None, t(10)).unwrap();
        assert_eq!(fx.reveal_code, Some(50));
        i.code_revealed(2, t(10));
        assert_eq!(i.state, IncidentState::EnRoute);
        let again = i.answer(2, 2, Answer::Accept, None, t(11)).unwrap();
        assert!(
            again.unchanged && again.reveal_code.is_none(),
            "the same answer twice changes nothing"
        );
        // Rescuer 1 accepts: two accepted → the rest are stood down.
        let here = LatLon {
            lat: 28.9712,
            lon: 118.8705,
        };
        let fx = i.answer(1, 1, Answer::Accept, Some(here), t(12)).unwrap();
        assert_eq!(fx.stood_down, vec![4]);
        assert!(
            matches!(i.audit.iter().rev().find(|e| matches!(e.event, AuditEvent::Accepted { .. })),
                Some(AuditEntry { event: AuditEvent::Accepted { rescuer_id: 1, position: Some(p), .. }, .. }) if *p == here),
            "the position at accept is in the audit record"
        );
        assert_eq!(i.next_deadline(), None, "nothing pending");
        assert!(matches!(
            i.answer(4, 4, Answer::Accept, None, t(13)),
            Err(DispatchError::Conflict(_))
        ));
        i.answer(1, 1, Answer::Arrived, None, t(90)).unwrap();
        assert_eq!(i.state, IncidentState::OnScene);
        // Closing stands down whoever is still on the way and is final.
        let out = i
            .close(
                Outcome {
                    aed_applied: true,
                    shock_delivered: true,
                    handed_to_ems: true,
                },
                t(600),
            )
            .unwrap();
        assert_eq!(out, vec![2]);
        assert_eq!(
            i.answer(1, 1, Answer::Decline, None, t(601)),
            Err(DispatchError::IncidentClosed)
        );
        assert_eq!(i.cancel(t(602)), Err(DispatchError::IncidentClosed));
        assert_eq!(
            i.answer(1, 1, Answer::Arrived, None, t(603))
                .map(|f| f.unchanged),
            Ok(true)
        );

        let kinds: Vec<String> = i
            .audit
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "created",
                "offered",
                "offered",
                "offered",
                "offered",
                "state",
                "declined",
                "accepted",
                "state",
                "code_revealed",
                "accepted",
                "stood_down",
                "arrived",
                "state",
                "stood_down",
                "closed",
                "state",
            ]
        );
        assert!(
            i.audit.windows(2).all(|w| w[0].at <= w[1].at),
            "append-only, in time order"
        );
        // The whole value round-trips through JSON: what the engine stores and resumes from.
        let back: Incident = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn time_outs_ask_for_more_and_resume_after_a_restart() {
        let mut i = Incident::new(
            8,
            LatLon {
                lat: 28.97,
                lon: 118.87,
            },
            2,
            t(0),
        );
        i.offer(&plan()[..2], Duration::seconds(45), t(0)).unwrap();
        // Stored and loaded mid-incident: the deadline is still there.
        let mut i: Incident = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        assert_eq!(i.next_deadline(), Some(t(45)));
        assert!(!i.expire(t(44)).need_more);
        let fx = i.expire(t(45));
        assert!(fx.need_more);
        assert!(i.offers.iter().all(|o| o.state == OfferState::TimedOut));
        // The next wave: new rescuers only; the timed-out AED is free again.
        assert!(i.claimed_aeds().is_empty());
        let sent = i.offer(&plan(), Duration::seconds(45), t(46)).unwrap();
        assert_eq!(sent, vec![3, 4]);
        assert_eq!(
            i.offers
                .iter()
                .filter(|o| o.state == OfferState::Offered)
                .count(),
            2
        );
        let out = i.cancel(t(50)).unwrap();
        assert_eq!(out, vec![3, 4]);
        assert_eq!(i.state, IncidentState::Cancelled);
        assert_eq!(i.next_deadline(), None);
    }
}
