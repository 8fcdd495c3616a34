//! The alert lifecycle as a pure state machine with injected time: raised → delivered →
//! acknowledged; an alert not acknowledged in time escalates to the next contact the plan names;
//! repeats of the same alert are merged (counted on the existing one), not re-sent.
//!
//! The runtime feeds [`AlertInput`]s with the current time into [`AlertBook::on_input`] and
//! carries out the [`AlertAction`]s it returns; it calls [`AlertInput::Tick`] at
//! [`AlertBook::next_deadline`]. Nothing here reads a clock or does I/O.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::care_plan::EscalationContact;
use crate::model::OrgId;
use crate::triggers::{Alert, MergeRule};

/// How alerts behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// How long a contact has to acknowledge before the alert escalates to the next one (unless
    /// the plan sets its own for the response).
    pub acknowledge_within: Duration,
    /// Repeats of an event alert within this time of the first are merged.
    pub merge_window: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy { acknowledge_within: Duration::minutes(30), merge_window: Duration::hours(24) }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    /// Sent to the current contact; no delivery receipt yet.
    Raised,
    /// The transport confirmed delivery to the current contact.
    Delivered,
    /// Someone acknowledged it: escalation stops.
    Acknowledged,
    /// Every contact was tried and nobody acknowledged in time.
    Unanswered,
}

/// One alert and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// The alert.
    pub alert: Alert,
    /// Where it is.
    pub status: AlertStatus,
    /// When it was first raised.
    pub raised_at: OffsetDateTime,
    /// When it was last sent (first send or latest escalation).
    pub sent_at: OffsetDateTime,
    /// Index in `alert.contacts` of the contact it was last sent to (0 when the plan names none).
    pub contact_level: usize,
    /// How many times the trigger fired for it (1 + merged repeats).
    pub occurrences: u32,
    /// The event references of the merged repeats, in arrival order.
    pub merged_events: Vec<String>,
    /// When and by whom it was acknowledged.
    pub acknowledged: Option<(OffsetDateTime, String)>,
}

impl AlertState {
    fn deadline(&self, policy: &AlertPolicy) -> Option<OffsetDateTime> {
        matches!(self.status, AlertStatus::Raised | AlertStatus::Delivered)
            .then(|| self.sent_at + self.alert.acknowledge_within.unwrap_or(policy.acknowledge_within))
    }

    fn contact(&self) -> Option<EscalationContact> {
        self.alert.contacts.get(self.contact_level).cloned()
    }
}

/// What happened, for the book to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertInput {
    /// A trigger fired: raise this alert (or merge it into an existing one).
    Raise(Box<Alert>),
    /// The transport delivered the alert with this key.
    Delivered {
        /// The alert's dedup key.
        dedup_key: String,
    },
    /// Someone acknowledged the alert with this key.
    Acknowledge {
        /// The alert's dedup key.
        dedup_key: String,
        /// Who (`Practitioner/x`, a user id).
        by: String,
    },
    /// Time passed: escalate what is overdue.
    Tick,
}

/// Why an alert is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendReason {
    /// The first time.
    New,
    /// The previous contact did not acknowledge in time.
    Escalation,
}

/// What the runtime should do.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    /// Send the alert to the agency's contact at `contact_level` (`contact` is `None` when the
    /// plan names no contact: send to the agency itself).
    Send {
        /// The alert.
        alert: Box<Alert>,
        /// The contact.
        contact: Option<EscalationContact>,
        /// Position in the escalation order.
        contact_level: usize,
        /// New, or escalated.
        reason: SendReason,
    },
    /// A repeat was merged into an existing alert and not re-sent.
    Merged {
        /// The alert's dedup key.
        dedup_key: String,
        /// Occurrences so far.
        occurrences: u32,
    },
    /// The alert was acknowledged: escalation stops.
    Acknowledged {
        /// The alert's dedup key.
        dedup_key: String,
        /// Who.
        by: String,
        /// How long after it was first raised.
        after: Duration,
    },
    /// Every contact was tried without acknowledgement: tell someone with oversight (the plan's
    /// lead, the agency's duty manager).
    Unanswered {
        /// The alert's dedup key.
        dedup_key: String,
        /// The agency that did not answer.
        agency: OrgId,
    },
}

/// Why an input could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// No alert has this key.
    #[error("no alert has the key '{0}'")]
    Unknown(String),
}

/// Every alert the engine is tracking, by dedup key.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertBook {
    policy: AlertPolicy,
    alerts: BTreeMap<String, AlertState>,
}

impl AlertBook {
    /// An empty book.
    pub fn new(policy: AlertPolicy) -> AlertBook {
        AlertBook { policy, alerts: BTreeMap::new() }
    }

    /// A book holding `states` (alerts kept elsewhere, say in the store, between inputs), keyed
    /// by their alerts' dedup keys.
    pub fn from_states(policy: AlertPolicy, states: impl IntoIterator<Item = AlertState>) -> AlertBook {
        AlertBook { policy, alerts: states.into_iter().map(|s| (s.alert.dedup_key.clone(), s)).collect() }
    }

    /// The alert with this key.
    pub fn get(&self, dedup_key: &str) -> Option<&AlertState> {
        self.alerts.get(dedup_key)
    }

    /// Every alert, by key.
    pub fn alerts(&self) -> impl Iterator<Item = &AlertState> {
        self.alerts.values()
    }

    /// The earliest time an alert becomes overdue: when the runtime should next send a `Tick`.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        self.alerts.values().filter_map(|s| s.deadline(&self.policy)).min()
    }

    /// Forgets finished alerts (acknowledged or unanswered) whose last send is older than
    /// `now - keep`, so the book does not grow without bound. A repeat after that raises anew.
    pub fn prune(&mut self, now: OffsetDateTime, keep: Duration) {
        self.alerts
            .retain(|_, s| matches!(s.status, AlertStatus::Raised | AlertStatus::Delivered) || s.sent_at >= now - keep);
    }

    /// Applies one input at time `now` and says what to do.
    pub fn on_input(&mut self, input: AlertInput, now: OffsetDateTime) -> Result<Vec<AlertAction>, AlertError> {
        match input {
            AlertInput::Raise(alert) => Ok(self.raise(*alert, now)),
            AlertInput::Delivered { dedup_key } => {
                let state = self.alerts.get_mut(&dedup_key).ok_or(AlertError::Unknown(dedup_key))?;
                if state.status == AlertStatus::Raised {
                    state.status = AlertStatus::Delivered;
                }
                Ok(Vec::new())
            }
            AlertInput::Acknowledge { dedup_key, by } => {
                let state = self.alerts.get_mut(&dedup_key).ok_or_else(|| AlertError::Unknown(dedup_key.clone()))?;
                if state.status == AlertStatus::Acknowledged {
                    return Ok(Vec::new());
                }
                state.status = AlertStatus::Acknowledged;
                state.acknowledged = Some((now, by.clone()));
                Ok(vec![AlertAction::Acknowledged { dedup_key, by, after: now - state.raised_at }])
            }
            AlertInput::Tick => Ok(self.escalate_overdue(now)),
        }
    }

    fn raise(&mut self, alert: Alert, now: OffsetDateTime) -> Vec<AlertAction> {
        if let Some(existing) = self.alerts.get_mut(&alert.dedup_key) {
            let merge = match alert.merge {
                MergeRule::SameKey => true,
                MergeRule::Window => now - existing.raised_at <= self.policy.merge_window,
            };
            if merge {
                existing.occurrences += 1;
                if let Some(event) = &alert.event_ref {
                    existing.merged_events.push(event.clone());
                }
                return vec![AlertAction::Merged { dedup_key: alert.dedup_key, occurrences: existing.occurrences }];
            }
        }
        let state = AlertState {
            alert: alert.clone(),
            status: AlertStatus::Raised,
            raised_at: now,
            sent_at: now,
            contact_level: 0,
            occurrences: 1,
            merged_events: Vec::new(),
            acknowledged: None,
        };
        let contact = state.contact();
        self.alerts.insert(alert.dedup_key.clone(), state);
        vec![AlertAction::Send { alert: Box::new(alert), contact, contact_level: 0, reason: SendReason::New }]
    }

    fn escalate_overdue(&mut self, now: OffsetDateTime) -> Vec<AlertAction> {
        let mut actions = Vec::new();
        for (key, state) in &mut self.alerts {
            let Some(deadline) = state.deadline(&self.policy) else { continue };
            if now < deadline {
                continue;
            }
            if state.contact_level + 1 < state.alert.contacts.len() {
                state.contact_level += 1;
                state.sent_at = now;
                state.status = AlertStatus::Raised;
                actions.push(AlertAction::Send {
                    alert: Box::new(state.alert.clone()),
                    contact: state.contact(),
                    contact_level: state.contact_level,
                    reason: SendReason::Escalation,
                });
            } else {
                state.status = AlertStatus::Unanswered;
                actions.push(AlertAction::Unanswered { dedup_key: key.clone(), agency: state.alert.agency.clone() });
            }
        }
        actions
    }
}
