//! The alert lifecycle: sending, merging repeats, escalation down the contact list, and
//! acknowledgement, all with injected time.

use carecircle_care::{
    Alert, AlertAction, AlertBook, AlertError, AlertInput, AlertPolicy, AlertStatus, EscalationContact, MergeRule,
    SendReason, TriggerCondition,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::support::{at, org};

fn contact(name: &str) -> EscalationContact {
    EscalationContact {
        reference: Some(format!("PractitionerRole/{name}")),
        display: Some(name.to_string()),
        telecom: None,
    }
}

fn alert(key: &str, merge: MergeRule, contacts: Vec<EscalationContact>, event: Option<&str>) -> Box<Alert> {
    Box::new(Alert {
        person: "Patient/p".into(),
        plan: Some("CarePlan/c".into()),
        trigger: TriggerCondition::Event(carecircle_care::Code::new("s", "ed-attendance")),
        activity_key: "ed".into(),
        agency: org("org-vale-mh-crisis-team"),
        response_text: "Contact Joe within 24 hours.".into(),
        plan_excerpt: json!({}),
        event_ref: event.map(str::to_string),
        dedup_key: key.into(),
        merge,
        contacts,
        acknowledge_within: None,
    })
}

fn policy() -> AlertPolicy {
    AlertPolicy { acknowledge_within: Duration::minutes(30), merge_window: Duration::hours(24) }
}

fn t0() -> OffsetDateTime {
    at(2026, 8, 20, 1, 0)
}

fn sends(actions: &[AlertAction]) -> Vec<(usize, SendReason, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            AlertAction::Send { contact_level, reason, contact, .. } => {
                Some((*contact_level, *reason, contact.as_ref().and_then(|c| c.display.clone())))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_alert_is_sent_to_the_first_contact() {
    let mut book = AlertBook::new(policy());
    let actions = book
        .on_input(
            AlertInput::Raise(alert("k", MergeRule::Window, vec![contact("a"), contact("b")], Some("Encounter/1"))),
            t0(),
        )
        .unwrap();
    assert_eq!(sends(&actions), vec![(0, SendReason::New, Some("a".into()))]);
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Raised);
    assert_eq!(book.next_deadline(), Some(t0() + Duration::minutes(30)));
}

#[test]
fn repeats_within_the_window_are_counted_not_resent() {
    let mut book = AlertBook::new(policy());
    book.on_input(AlertInput::Raise(alert("k", MergeRule::Window, vec![], Some("Encounter/1"))), t0()).unwrap();
    let repeat = book
        .on_input(
            AlertInput::Raise(alert("k", MergeRule::Window, vec![], Some("Encounter/2"))),
            t0() + Duration::hours(3),
        )
        .unwrap();
    assert_eq!(repeat, vec![AlertAction::Merged { dedup_key: "k".into(), occurrences: 2 }]);
    let edge = book
        .on_input(
            AlertInput::Raise(alert("k", MergeRule::Window, vec![], Some("Encounter/3"))),
            t0() + Duration::hours(24),
        )
        .unwrap();
    assert_eq!(edge, vec![AlertAction::Merged { dedup_key: "k".into(), occurrences: 3 }]);
    let state = book.get("k").unwrap();
    assert_eq!(state.merged_events, vec!["Encounter/2".to_string(), "Encounter/3".to_string()]);
    // After the window a repeat is a new alert.
    let later = book
        .on_input(
            AlertInput::Raise(alert("k", MergeRule::Window, vec![], Some("Encounter/4"))),
            t0() + Duration::hours(25),
        )
        .unwrap();
    assert_eq!(sends(&later), vec![(0, SendReason::New, None)]);
    assert_eq!(book.get("k").unwrap().occurrences, 1);
    // Different keys never merge.
    let other = book
        .on_input(AlertInput::Raise(alert("k2", MergeRule::Window, vec![], None)), t0() + Duration::hours(25))
        .unwrap();
    assert_eq!(sends(&other).len(), 1);
}

#[test]
fn same_key_alerts_merge_whatever_the_time() {
    let mut book = AlertBook::new(policy());
    book.on_input(AlertInput::Raise(alert("august", MergeRule::SameKey, vec![], None)), at(2026, 8, 1, 0, 0)).unwrap();
    let again = book
        .on_input(AlertInput::Raise(alert("august", MergeRule::SameKey, vec![], None)), at(2026, 8, 30, 0, 0))
        .unwrap();
    assert_eq!(again, vec![AlertAction::Merged { dedup_key: "august".into(), occurrences: 2 }]);
}

#[test]
fn an_unacknowledged_alert_escalates_down_the_contacts_then_is_unanswered() {
    let mut book = AlertBook::new(policy());
    book.on_input(
        AlertInput::Raise(alert("k", MergeRule::Window, vec![contact("a"), contact("b"), contact("c")], None)),
        t0(),
    )
    .unwrap();
    book.on_input(AlertInput::Delivered { dedup_key: "k".into() }, t0() + Duration::minutes(1)).unwrap();
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Delivered);
    assert!(book.on_input(AlertInput::Tick, t0() + Duration::minutes(29)).unwrap().is_empty(), "not yet due");
    let first = book.on_input(AlertInput::Tick, t0() + Duration::minutes(30)).unwrap();
    assert_eq!(sends(&first), vec![(1, SendReason::Escalation, Some("b".into()))]);
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Raised);
    assert_eq!(book.next_deadline(), Some(t0() + Duration::minutes(60)));
    let second = book.on_input(AlertInput::Tick, t0() + Duration::minutes(61)).unwrap();
    assert_eq!(sends(&second), vec![(2, SendReason::Escalation, Some("c".into()))]);
    let last = book.on_input(AlertInput::Tick, t0() + Duration::minutes(91)).unwrap();
    assert_eq!(last, vec![AlertAction::Unanswered { dedup_key: "k".into(), agency: org("org-vale-mh-crisis-team") }]);
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Unanswered);
    assert!(book.on_input(AlertInput::Tick, t0() + Duration::hours(5)).unwrap().is_empty(), "said once");
    assert_eq!(book.next_deadline(), None);
}

#[test]
fn acknowledgement_stops_escalation() {
    let mut book = AlertBook::new(policy());
    book.on_input(AlertInput::Raise(alert("k", MergeRule::Window, vec![contact("a"), contact("b")], None)), t0())
        .unwrap();
    let ack = book
        .on_input(
            AlertInput::Acknowledge { dedup_key: "k".into(), by: "Practitioner/x".into() },
            t0() + Duration::minutes(12),
        )
        .unwrap();
    assert_eq!(
        ack,
        vec![AlertAction::Acknowledged {
            dedup_key: "k".into(),
            by: "Practitioner/x".into(),
            after: Duration::minutes(12)
        }]
    );
    assert!(book.on_input(AlertInput::Tick, t0() + Duration::hours(2)).unwrap().is_empty());
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Acknowledged);
    assert_eq!(book.get("k").unwrap().acknowledged, Some((t0() + Duration::minutes(12), "Practitioner/x".to_string())));
    let again = book
        .on_input(
            AlertInput::Acknowledge { dedup_key: "k".into(), by: "Practitioner/y".into() },
            t0() + Duration::minutes(20),
        )
        .unwrap();
    assert!(again.is_empty(), "a second acknowledgement changes nothing");
    // Delivery receipts after acknowledgement do not reopen it.
    book.on_input(AlertInput::Delivered { dedup_key: "k".into() }, t0() + Duration::minutes(21)).unwrap();
    assert_eq!(book.get("k").unwrap().status, AlertStatus::Acknowledged);
}

#[test]
fn the_plan_can_set_its_own_acknowledgement_deadline() {
    let mut book = AlertBook::new(policy());
    let mut quick = alert("k", MergeRule::Window, vec![contact("a"), contact("b")], None);
    quick.acknowledge_within = Some(Duration::minutes(5));
    book.on_input(AlertInput::Raise(quick), t0()).unwrap();
    assert_eq!(book.next_deadline(), Some(t0() + Duration::minutes(5)));
    assert_eq!(sends(&book.on_input(AlertInput::Tick, t0() + Duration::minutes(5)).unwrap()).len(), 1);
}

#[test]
fn unknown_alerts_are_errors_and_finished_ones_are_pruned() {
    let mut book = AlertBook::new(policy());
    assert_eq!(
        book.on_input(AlertInput::Acknowledge { dedup_key: "nope".into(), by: "x".into() }, t0()),
        Err(AlertError::Unknown("nope".into()))
    );
    book.on_input(AlertInput::Raise(alert("done", MergeRule::Window, vec![], None)), t0()).unwrap();
    book.on_input(AlertInput::Raise(alert("open", MergeRule::Window, vec![contact("a"), contact("b")], None)), t0())
        .unwrap();
    book.on_input(AlertInput::Acknowledge { dedup_key: "done".into(), by: "x".into() }, t0()).unwrap();
    book.prune(t0() + Duration::days(3), Duration::days(2));
    assert!(book.get("done").is_none());
    assert!(book.get("open").is_some(), "open alerts are never pruned");
}
