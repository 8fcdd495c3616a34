//! Care-plan trigger alerts at run time. When an Encounter is stored, it is classified into
//! trigger events, the person's active CarePlans are evaluated, and each agreed response raises
//! an alert for its agency through the engine's [`AlertBook`] rules (merge repeats, escalate when
//! unacknowledged, give up when nobody answers).
//!
//! Every alert is kept in the store as a `Communication` (id `alert-` + a hash of its dedup key)
//! held by the alerted agency's partner and addressed to the agency and its current contact, with the plan's activity attached and the
//! alert's state in the extension [`ALERT_STATE_EXTENSION`]. Each change is written with the
//! version it was computed from (`If-Match`), so several server processes sharing one database
//! raise, merge, escalate and acknowledge each alert exactly once, and the state survives
//! restarts.

use base64::Engine as _;
use carecircle_care::care_plan::MonthRange;
use carecircle_care::{
    alerts_for, codes, parse_care_plan, triggers_for_event, Alert, AlertAction, AlertBook, AlertInput, AlertState,
    AlertStatus, ClassifiedEvent, Code, EncounterFacts, EscalationContact, MergeRule, OrgDirectory, OrgId,
    TriggerCondition,
};
use carecircle_fhir::search::Handling;
use carecircle_record::{Caller, ChangeEvent, ChangeInteraction, Principal, RecordError, RequestMeta};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::Notifier;

/// The extension holding an alert's state (a JSON object as `valueString`) on its Communication.
pub const ALERT_STATE_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/alert-state";

/// The `Communication.category` code (in `communication-category`) of alerts.
pub const ALERT_CATEGORY_CODE: &str = "care-plan-alert";

/// An alert as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    /// The Communication's id.
    pub id: String,
    /// The dedup key.
    pub dedup_key: String,
    /// Where it is.
    pub status: AlertStatus,
    /// The agency alerted.
    pub agency: OrgId,
    /// The contact it was last sent to (index in the plan's escalation order).
    pub contact_level: usize,
    /// How many times it fired (1 + merged repeats).
    pub occurrences: u32,
}

/// The Communication id of the alert with this dedup key: `alert-` and the key's 64-bit FNV-1a
/// hash, so every process names one alert alike.
pub fn alert_id(dedup_key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dedup_key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("alert-{hash:016x}")
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn status_code(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Raised => "raised",
        AlertStatus::Delivered => "delivered",
        AlertStatus::Acknowledged => "acknowledged",
        AlertStatus::Unanswered => "unanswered",
    }
}

fn encode_condition(condition: &TriggerCondition) -> Value {
    match condition {
        TriggerCondition::RecurringPeriod(range) => json!({"period": [range.start, range.end]}),
        TriggerCondition::Event(code) => json!({"event": [code.system, code.code]}),
        TriggerCondition::Situation(code) => json!({"situation": [code.system, code.code]}),
    }
}

fn decode_condition(value: &Value) -> Option<TriggerCondition> {
    let pair = |key: &str| {
        let items = value.get(key)?.as_array()?;
        Some(Code::new(items.first()?.as_str()?, items.get(1)?.as_str()?.to_string()))
    };
    if let Some(range) = value.get("period").and_then(Value::as_array) {
        let month = |i: usize| range.get(i).and_then(Value::as_u64).and_then(|m| u8::try_from(m).ok());
        return Some(TriggerCondition::RecurringPeriod(MonthRange { start: month(0)?, end: month(1)? }));
    }
    pair("event").map(TriggerCondition::Event).or_else(|| pair("situation").map(TriggerCondition::Situation))
}

/// The state as stored in the extension.
fn encode_state(state: &AlertState) -> Value {
    let alert = &state.alert;
    json!({
        "dedup_key": alert.dedup_key,
        "person": alert.person,
        "plan": alert.plan,
        "trigger": encode_condition(&alert.trigger),
        "activity_key": alert.activity_key,
        "agency": alert.agency.as_str(),
        "response_text": alert.response_text,
        "plan_excerpt": alert.plan_excerpt,
        "event_ref": alert.event_ref,
        "merge": match alert.merge { MergeRule::Window => "window", MergeRule::SameKey => "same-key" },
        "contacts": alert.contacts.iter().map(|c| json!({"reference": c.reference, "display": c.display, "telecom": c.telecom})).collect::<Vec<_>>(),
        "acknowledge_within_s": alert.acknowledge_within.map(|d| d.whole_seconds()),
        "status": status_code(state.status),
        "raised_at": millis(state.raised_at),
        "sent_at": millis(state.sent_at),
        "contact_level": state.contact_level,
        "occurrences": state.occurrences,
        "merged_events": state.merged_events,
        "acknowledged": state.acknowledged.as_ref().map(|(at, by)| json!({"at": millis(*at), "by": by})),
    })
}

fn decode_state(value: &Value) -> Option<AlertState> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let contacts = value
        .get("contacts")?
        .as_array()?
        .iter()
        .map(|c| EscalationContact {
            reference: c.get("reference").and_then(Value::as_str).map(str::to_string),
            display: c.get("display").and_then(Value::as_str).map(str::to_string),
            telecom: c.get("telecom").and_then(Value::as_str).map(str::to_string),
        })
        .collect();
    let alert = Alert {
        person: text("person")?,
        plan: text("plan"),
        trigger: decode_condition(value.get("trigger")?)?,
        activity_key: text("activity_key")?,
        agency: OrgId::new(text("agency")?),
        response_text: text("response_text").unwrap_or_default(),
        plan_excerpt: value.get("plan_excerpt").cloned().unwrap_or(Value::Null),
        event_ref: text("event_ref"),
        dedup_key: text("dedup_key")?,
        merge: if text("merge").as_deref() == Some("same-key") { MergeRule::SameKey } else { MergeRule::Window },
        contacts,
        acknowledge_within: value.get("acknowledge_within_s").and_then(Value::as_i64).map(Duration::seconds),
    };
    let status = match text("status")?.as_str() {
        "raised" => AlertStatus::Raised,
        "delivered" => AlertStatus::Delivered,
        "acknowledged" => AlertStatus::Acknowledged,
        "unanswered" => AlertStatus::Unanswered,
        _ => return None,
    };
    let number = |key: &str| value.get(key).and_then(Value::as_i64);
    Some(AlertState {
        alert,
        status,
        raised_at: from_millis(number("raised_at")?),
        sent_at: from_millis(number("sent_at")?),
        contact_level: usize::try_from(number("contact_level")?).ok()?,
        occurrences: u32::try_from(number("occurrences")?).ok()?,
        merged_events: value
            .get("merged_events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        acknowledged: value
            .get("acknowledged")
            .filter(|a| !a.is_null())
            .and_then(|a| Some((from_millis(a.get("at")?.as_i64()?), a.get("by")?.as_str()?.to_string()))),
    })
}

/// The alert's state read from its stored Communication.
fn state_of(communication: &Value) -> Option<AlertState> {
    let extensions = communication.get("extension")?.as_array()?;
    let text = extensions
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(ALERT_STATE_EXTENSION))?
        .get("valueString")?
        .as_str()?;
    decode_state(&serde_json::from_str(text).ok()?)
}

/// The Communication that records `state`.
fn communication(id: &str, state: &AlertState, sender: &str) -> Value {
    let alert = &state.alert;
    let status = match state.status {
        AlertStatus::Raised | AlertStatus::Delivered => "in-progress",
        AlertStatus::Acknowledged => "completed",
        AlertStatus::Unanswered => "stopped",
    };
    let mut recipients = vec![json!({"reference": alert.agency.reference()})];
    if let Some(contact) = alert.contacts.get(state.contact_level) {
        match (&contact.reference, &contact.display) {
            (Some(reference), Some(display)) => recipients.push(json!({"reference": reference, "display": display})),
            (Some(reference), None) => recipients.push(json!({"reference": reference})),
            (None, Some(display)) => recipients.push(json!({"display": display})),
            (None, None) => {}
        }
    }
    let mut about: Vec<Value> = Vec::new();
    if let Some(plan) = &alert.plan {
        about.push(json!({"reference": plan}));
    }
    if let Some(event) = &alert.event_ref {
        about.push(json!({"reference": event}));
    }
    let excerpt = base64::engine::general_purpose::STANDARD.encode(alert.plan_excerpt.to_string());
    let mut body = json!({
        "resourceType": "Communication",
        "id": id,
        "extension": [{"url": ALERT_STATE_EXTENSION, "valueString": encode_state(state).to_string()}],
        "status": status,
        "category": [{"coding": [{"system": codes::COMMUNICATION_CATEGORY_SYSTEM, "code": ALERT_CATEGORY_CODE,
                                  "display": "Care plan alert"}]}],
        "priority": "urgent",
        "subject": {"reference": alert.person},
        "sent": carecircle_fhir::date::format_instant(millis(state.sent_at)),
        "recipient": recipients,
        "sender": {"reference": sender},
        "payload": [
            {"contentString": alert.response_text},
            {"contentAttachment": {"contentType": "application/fhir+json", "title": "The care plan activity this alert is about", "data": excerpt}}
        ],
    });
    if !about.is_empty() {
        body["about"] = Value::Array(about);
    }
    body
}

impl Notifier {
    /// Classifies a stored Encounter and raises the alerts its person's care plans ask for.
    pub(crate) async fn raise_alerts(&self, event: &ChangeEvent) -> Result<(), RecordError> {
        if event.interaction == ChangeInteraction::Delete {
            return Ok(());
        }
        let record = &self.inner.record;
        let Some(encounter) =
            record.store().read_version("Encounter", &event.id, event.version).await?.and_then(|s| s.json())
        else {
            return Ok(());
        };
        let custodian = event.custodian.as_deref().and_then(OrgId::from_reference);
        let facts = EncounterFacts::from_encounter(&encounter, custodian.as_ref());
        let Some(subject) = facts.subject.clone() else { return Ok(()) };
        let directory = self.directory().await?;
        let codes = self.inner.config.classifier.classify(&facts, &directory);
        if codes.is_empty() {
            return Ok(());
        }
        let classified = ClassifiedEvent { reference: facts.reference.clone(), codes };
        let patients = self.linked_patients(&subject).await?;
        let params = vec![
            ("subject".to_string(), patients.join(",")),
            ("status".to_string(), "active".to_string()),
            ("_count".to_string(), "100".to_string()),
        ];
        let plans = record.search(Some("CarePlan"), &params, Handling::Strict).await?;
        for stored in plans.page.entries {
            let Some(plan) = stored.json() else { continue };
            let Ok(rules) = parse_care_plan(&plan) else { continue };
            let fired = triggers_for_event(&rules, &classified);
            let person = rules.subject.clone().unwrap_or_else(|| subject.clone());
            for alert in alerts_for(&person, &rules, &fired) {
                self.apply_to_alert(&alert.dedup_key.clone(), AlertInput::Raise(Box::new(alert))).await?;
            }
        }
        Ok(())
    }

    /// The Patient references of the same person: `subject` and every other item of the
    /// person index's Linkage that holds it.
    async fn linked_patients(&self, subject: &str) -> Result<Vec<String>, RecordError> {
        let params = vec![("item".to_string(), subject.to_string())];
        let linkages = self.inner.record.search(Some("Linkage"), &params, Handling::Strict).await?;
        let mut out = vec![subject.to_string()];
        for linkage in linkages.page.entries.iter().filter_map(|l| l.json()) {
            for item in linkage.get("item").and_then(Value::as_array).into_iter().flatten() {
                if let Some(reference) = item.pointer("/resource/reference").and_then(Value::as_str) {
                    if reference.starts_with("Patient/") && !out.iter().any(|p| p == reference) {
                        out.push(reference.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The partner directory (every stored Organization), cached for a minute at most.
    async fn directory(&self) -> Result<std::sync::Arc<OrgDirectory>, RecordError> {
        if let Some((loaded, cached)) = self.inner.directory.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            if loaded.elapsed() < std::time::Duration::from_secs(60) {
                return Ok(cached);
            }
        }
        let params = vec![("_count".to_string(), "1000".to_string())];
        let found = self.inner.record.search(Some("Organization"), &params, Handling::Strict).await?;
        let bodies: Vec<Value> = found.page.entries.iter().filter_map(|s| s.json()).collect();
        let directory = std::sync::Arc::new(OrgDirectory::from_organizations(bodies.iter()));
        *self.inner.directory.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), directory.clone()));
        Ok(directory)
    }

    /// Applies one input to the stored alert with `dedup_key` and writes the result with
    /// `If-Match`, retrying from a fresh read when another process got there first. Returns the
    /// actions taken (none when the input changed nothing).
    async fn apply_to_alert(&self, dedup_key: &str, input: AlertInput) -> Result<Vec<AlertAction>, RecordError> {
        let record = &self.inner.record;
        let id = alert_id(dedup_key);
        for _ in 0..5 {
            let stored = record.store().read("Communication", &id).await?;
            let (states, expected) = match &stored {
                Some(s) if !s.deleted => (s.json().as_ref().and_then(state_of).into_iter().collect(), s.version),
                _ => (Vec::new(), 0),
            };
            let before = states.first().cloned();
            let mut book = AlertBook::from_states(self.inner.config.alerts, states);
            let actions = match book.on_input(input.clone(), OffsetDateTime::now_utc()) {
                Ok(actions) => actions,
                Err(error) => return Err(RecordError::not_found(error.to_string())),
            };
            let Some(after) = book.get(dedup_key).cloned() else { return Ok(actions) };
            if before.as_ref() == Some(&after) {
                return Ok(actions);
            }
            let body = communication(&id, &after, &self.inner.config.alert_custodian);
            let caller = Caller { custodian: self.alert_holder(&after.alert.agency).await? };
            match record.update(&caller, "Communication", &id, body, Some(expected)).await {
                Ok(_) => {
                    for action in &actions {
                        match action {
                            AlertAction::Send { contact_level, reason, .. } => {
                                tracing::info!(alert = %id, contact_level, ?reason, "alert sent")
                            }
                            AlertAction::Unanswered { .. } => tracing::warn!(alert = %id, "alert unanswered"),
                            _ => {}
                        }
                    }
                    return Ok(actions);
                }
                Err(RecordError::PreconditionFailed(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(Vec::new())
    }

    /// Who holds an agency's alert: the partner the agency belongs to (a team's parent), so the
    /// alerted agency's staff read and acknowledge it as their own record and nobody else's
    /// access widens; the partnership when the agency is not a registered organisation.
    async fn alert_holder(&self, agency: &OrgId) -> Result<String, RecordError> {
        let directory = self.directory().await?;
        Ok(match directory.get(agency) {
            Some(_) => directory.partner_of(agency).reference(),
            None => self.inner.config.alert_custodian.clone(),
        })
    }

    /// Escalates every stored alert past its acknowledgement deadline (one level per tick).
    pub(crate) async fn escalate_overdue(&self) -> Result<(), RecordError> {
        let params = vec![
            ("category".to_string(), format!("{}|{ALERT_CATEGORY_CODE}", codes::COMMUNICATION_CATEGORY_SYSTEM)),
            ("status".to_string(), "in-progress".to_string()),
            ("_count".to_string(), "1000".to_string()),
        ];
        let open = self.inner.record.search(Some("Communication"), &params, Handling::Strict).await?;
        let now = OffsetDateTime::now_utc();
        for stored in open.page.entries {
            let Some(state) = stored.json().as_ref().and_then(state_of) else { continue };
            let book = AlertBook::from_states(self.inner.config.alerts, [state.clone()]);
            if book.next_deadline().is_some_and(|deadline| deadline <= now) {
                self.apply_to_alert(&state.alert.dedup_key, AlertInput::Tick).await?;
            }
        }
        Ok(())
    }

    /// Acknowledges the alert `Communication/{id}` for `principal`, who must be able to read it
    /// (decided and audited through their session) and act for the alerted agency (or be the
    /// administrator).
    pub async fn acknowledge(
        &self,
        principal: &Principal,
        id: &str,
        meta: RequestMeta,
    ) -> Result<AlertView, RecordError> {
        let session = self.inner.record.session(principal, meta)?;
        let stored = session.read("Communication", id).await?;
        let Some(state) = stored.json().as_ref().and_then(state_of) else {
            return Err(RecordError::not_found(format!("Communication/{id} is not an alert")));
        };
        if !principal.is_admin() {
            let directory = self.directory().await?;
            let acting = principal.organization.as_deref().and_then(OrgId::from_reference);
            if !acting.is_some_and(|org| directory.same_agency(&org, &state.alert.agency)) {
                return Err(RecordError::Forbidden(carecircle_fhir::Issue::error(
                    carecircle_fhir::IssueType::Forbidden,
                    "only the alerted agency can acknowledge this alert",
                )));
            }
        }
        let key = state.alert.dedup_key.clone();
        self.apply_to_alert(&key, AlertInput::Acknowledge { dedup_key: key.clone(), by: principal.subject.clone() })
            .await?;
        self.alert(id).await?.ok_or_else(|| RecordError::not_found(format!("Communication/{id} is not an alert")))
    }

    /// The stored alert `Communication/{id}`, read without a session (server bookkeeping).
    pub async fn alert(&self, id: &str) -> Result<Option<AlertView>, RecordError> {
        let Some(stored) = self.inner.record.store().read("Communication", id).await? else { return Ok(None) };
        Ok(stored.json().as_ref().and_then(state_of).map(|state| AlertView {
            id: id.to_string(),
            dedup_key: state.alert.dedup_key.clone(),
            status: state.status,
            agency: state.alert.agency.clone(),
            contact_level: state.contact_level,
            occurrences: state.occurrences,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        assert_eq!(alert_id("a|b"), alert_id("a|b"));
        assert_ne!(alert_id("a|b"), alert_id("a|c"));
        assert!(alert_id("x").starts_with("alert-"));
    }

    #[test]
    fn trigger_conditions_round_trip() {
        for condition in [
            TriggerCondition::RecurringPeriod(MonthRange { start: 12, end: 1 }),
            TriggerCondition::Event(Code::new(codes::TRIGGER_EVENT_SYSTEM, "ed-attendance")),
            TriggerCondition::Situation(Code::new(codes::TRIGGER_SITUATION_SYSTEM, "care-coordinator-on-leave")),
        ] {
            assert_eq!(decode_condition(&encode_condition(&condition)), Some(condition));
        }
    }
}
