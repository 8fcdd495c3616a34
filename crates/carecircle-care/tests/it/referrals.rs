//! Referral Tasks: every allowed and every refused status change, table-driven, plus parties,
//! reasons, immutable elements, notifications and the inbox search.

use carecircle_care::{
    check_new_referral, check_task_transition, inbox_query, outbox_query, parse_referral_task, referral_notification,
    Party, TaskStatus, TransitionError,
};
use serde_json::{json, Value};

use crate::support::{at, directory, org};

const REQUESTER: &str = "org-gp-ashgrove";
const OWNER: &str = "org-minsterford-pathways";

fn task(status: &str, reason: Option<&str>) -> Value {
    let mut t = json!({
        "resourceType": "Task",
        "id": "task-1",
        "status": status,
        "intent": "order",
        "code": { "coding": [{ "system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill" }] },
        "focus": { "reference": "ServiceRequest/sr-1" },
        "for": { "reference": "Patient/pat-gp-ashgrove-joe" },
        "requester": { "reference": format!("Organization/{REQUESTER}") },
        "owner": { "reference": format!("Organization/{OWNER}") },
    });
    if let Some(reason) = reason {
        t["statusReason"] = json!({ "text": reason });
    }
    t
}

/// The allowed changes, written out by hand: (from, to, who).
const ALLOWED: &[(&str, &str, &str)] = &[
    ("requested", "received", "owner"),
    ("requested", "accepted", "owner"),
    ("requested", "rejected", "owner"),
    ("received", "accepted", "owner"),
    ("received", "rejected", "owner"),
    ("accepted", "in-progress", "owner"),
    ("in-progress", "on-hold", "owner"),
    ("on-hold", "in-progress", "owner"),
    ("in-progress", "completed", "owner"),
    ("in-progress", "failed", "owner"),
    ("requested", "cancelled", "requester"),
    ("received", "cancelled", "requester"),
    ("accepted", "cancelled", "requester"),
    ("in-progress", "cancelled", "requester"),
    ("on-hold", "cancelled", "requester"),
    ("draft", "requested", "requester"),
];

const NEEDS_REASON: &[&str] = &["rejected", "cancelled", "failed"];
const FINAL: &[&str] = &["rejected", "cancelled", "failed", "completed", "entered-in-error"];

#[derive(Debug, PartialEq)]
enum Expected {
    Allowed,
    Finished,
    NotAllowed,
    WrongParty,
}

fn expected(from: &str, to: &str, who: &str) -> Expected {
    if FINAL.contains(&from) {
        Expected::Finished
    } else if from == to || ALLOWED.contains(&(from, to, who)) {
        Expected::Allowed
    } else if ALLOWED.iter().any(|&(f, t, _)| f == from && t == to) {
        Expected::WrongParty
    } else {
        Expected::NotAllowed
    }
}

fn outcome(result: &Result<carecircle_care::Transition, TransitionError>) -> Expected {
    match result {
        Ok(_) => Expected::Allowed,
        Err(TransitionError::Finished { .. }) => Expected::Finished,
        Err(TransitionError::NotAllowed { .. }) => Expected::NotAllowed,
        Err(TransitionError::WrongParty { .. }) => Expected::WrongParty,
        Err(other) => panic!("unexpected refusal: {other}"),
    }
}

#[test]
fn every_status_change_by_every_party_is_decided_by_the_table() {
    let d = directory();
    let mut n_allowed = 0;
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            for (who, actor) in [("requester", REQUESTER), ("owner", OWNER)] {
                let reason = NEEDS_REASON.contains(&to.code()).then_some("the person moved out of the area");
                let result = check_task_transition(&task(from.code(), None), &task(to.code(), reason), &org(actor), &d);
                let want = expected(from.code(), to.code(), who);
                assert_eq!(outcome(&result), want, "{from} -> {to} by the {who}: {result:?}");
                if let Ok(t) = result {
                    n_allowed += 1;
                    assert_eq!(t.from, Some(from));
                    assert_eq!(t.to, to);
                    assert_eq!(t.by, if who == "owner" { Party::Owner } else { Party::Requester });
                }
            }
        }
    }
    // 16 listed changes plus "no status change" on each of the 7 open statuses by either party.
    assert_eq!(n_allowed, 16 + 7 * 2);
}

#[test]
fn rejecting_cancelling_and_failing_need_a_reason() {
    let d = directory();
    for (from, to, actor) in [
        ("requested", "rejected", OWNER),
        ("received", "rejected", OWNER),
        ("in-progress", "failed", OWNER),
        ("accepted", "cancelled", REQUESTER),
    ] {
        let refused = check_task_transition(&task(from, None), &task(to, None), &org(actor), &d).unwrap_err();
        assert!(matches!(refused, TransitionError::ReasonRequired { .. }), "{from} -> {to}: {refused}");
        assert_eq!(refused.expression(), "Task.statusReason");
        assert_eq!(refused.to_issue().code.code(), "required");
        let blank = check_task_transition(&task(from, None), &task(to, Some("  ")), &org(actor), &d);
        assert!(matches!(blank, Err(TransitionError::ReasonRequired { .. })), "blank reason for {to}");
        let mut coded = task(to, None);
        coded["statusReason"] = json!({ "coding": [{ "system": "x", "code": "moved-away" }] });
        assert!(check_task_transition(&task(from, None), &coded, &org(actor), &d).is_ok(), "coded reason for {to}");
    }
}

#[test]
fn the_wrong_party_is_told_who_may() {
    let d = directory();
    let refused =
        check_task_transition(&task("requested", None), &task("accepted", None), &org(REQUESTER), &d).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "only the owner may move a referral from requested to accepted; org-gp-ashgrove is the requester"
    );
    assert_eq!(refused.expression(), "Task.status");
    assert_eq!(refused.to_issue().code.code(), "forbidden");
}

#[test]
fn only_the_two_parties_and_their_teams_may_act() {
    let d = directory();
    let refused =
        check_task_transition(&task("requested", None), &task("received", None), &org("org-northvale-police"), &d);
    assert!(matches!(refused, Err(TransitionError::NotAParty { .. })));
    // The crisis team is part of the mental-health trust: it acts for the trust as owner.
    let mut old = task("requested", None);
    old["owner"] = json!({ "reference": "Organization/org-vale-mh-trust" });
    let mut new = old.clone();
    new["status"] = json!("accepted");
    let ok = check_task_transition(&old, &new, &org("org-vale-mh-crisis-team"), &d).unwrap();
    assert_eq!(ok.by, Party::Owner);
}

#[test]
fn identifying_elements_never_change() {
    let d = directory();
    for (element, value) in [
        ("focus", json!({ "reference": "ServiceRequest/other" })),
        ("for", json!({ "reference": "Patient/other" })),
        ("owner", json!({ "reference": "Organization/org-kettlebeck-homes" })),
        ("requester", json!({ "reference": "Organization/org-minsterford-pathways" })),
    ] {
        let mut new = task("received", None);
        new[element] = value;
        let refused = check_task_transition(&task("requested", None), &new, &org(OWNER), &d).unwrap_err();
        assert_eq!(refused.expression(), format!("Task.{element}"), "{refused}");
    }
}

#[test]
fn invalid_tasks_are_refused_with_locations() {
    let d = directory();
    let mut bad = task("requested", None);
    bad["focus"] = json!({ "reference": "Patient/x" });
    bad.as_object_mut().unwrap().remove("owner");
    let refused = check_task_transition(&task("requested", None), &bad, &org(OWNER), &d).unwrap_err();
    let locations: Vec<String> = refused.to_issues().into_iter().flat_map(|i| i.expression).collect();
    assert_eq!(locations, vec!["Task.focus".to_string(), "Task.owner".to_string()]);
    let problems = parse_referral_task(&json!({ "resourceType": "Task", "status": "sent" })).unwrap_err();
    assert!(problems.iter().any(|p| p.expression == "Task.status" && p.message.contains("sent")));
}

#[test]
fn a_new_referral_is_sent_by_its_requester_as_requested() {
    let d = directory();
    let ok = check_new_referral(&task("requested", None), &org(REQUESTER), &d).unwrap();
    assert_eq!((ok.from, ok.to, ok.by), (None, TaskStatus::Requested, Party::Requester));
    let impostor = check_new_referral(&task("requested", None), &org("org-kettlebeck-homes"), &d).unwrap_err();
    assert_eq!(impostor.expression(), "Task.requester");
    let already_started = check_new_referral(&task("in-progress", None), &org(REQUESTER), &d).unwrap_err();
    assert_eq!(already_started.expression(), "Task.status");
}

#[test]
fn the_referrer_is_told_of_every_change_the_owner_makes() {
    let d = directory();
    let new = task("rejected", Some("Joe is already supported by our outreach team"));
    let transition = check_task_transition(&task("received", None), &new, &org(OWNER), &d).unwrap();
    let parsed = parse_referral_task(&new).unwrap();
    let note = referral_notification(&parsed, &transition, &d, at(2026, 9, 1, 10, 0));
    assert_eq!(note["resourceType"], "Communication");
    assert_eq!(note["recipient"][0]["reference"], "Organization/org-gp-ashgrove");
    assert_eq!(note["sender"]["reference"], "Organization/org-minsterford-pathways");
    assert_eq!(note["about"], json!([{ "reference": "Task/task-1" }, { "reference": "ServiceRequest/sr-1" }]));
    assert_eq!(note["subject"]["reference"], "Patient/pat-gp-ashgrove-joe");
    assert_eq!(note["sent"], "2026-09-01T10:00:00.000Z");
    let text = note["payload"][0]["contentString"].as_str().unwrap();
    assert!(text.contains("declined the referral (was received)"), "{text}");
    assert!(text.ends_with("Reason: Joe is already supported by our outreach team."), "{text}");
    assert_eq!(
        note["extension"][0]["extension"],
        json!([{ "url": "from", "valueCode": "received" }, { "url": "to", "valueCode": "rejected" }])
    );
}

#[test]
fn the_owner_is_told_of_a_new_referral_and_of_a_cancellation() {
    let d = directory();
    let sent = task("requested", None);
    let created = check_new_referral(&sent, &org(REQUESTER), &d).unwrap();
    let note = referral_notification(&parse_referral_task(&sent).unwrap(), &created, &d, at(2026, 9, 1, 9, 0));
    assert_eq!(note["recipient"][0]["reference"], "Organization/org-minsterford-pathways");
    assert!(note["payload"][0]["contentString"].as_str().unwrap().ends_with("sent a referral."));
    let cancelled = task("cancelled", Some("Joe declined the service"));
    let t = check_task_transition(&sent, &cancelled, &org(REQUESTER), &d).unwrap();
    let note = referral_notification(&parse_referral_task(&cancelled).unwrap(), &t, &d, at(2026, 9, 2, 9, 0));
    assert_eq!(note["recipient"][0]["reference"], "Organization/org-minsterford-pathways");
}

#[test]
fn inbox_and_outbox_are_task_searches_by_owner_and_requester() {
    assert_eq!(
        inbox_query(&org(OWNER)),
        "Task?owner=Organization/org-minsterford-pathways&status=requested,received,accepted,in-progress,on-hold&_sort=-_lastUpdated"
    );
    assert_eq!(
        outbox_query(&org(REQUESTER)),
        "Task?requester=Organization/org-gp-ashgrove&status=requested,received,accepted,in-progress,on-hold&_sort=-_lastUpdated"
    );
}

#[test]
fn the_inbox_query_parses_as_an_r4_task_search() {
    let query = inbox_query(&org(OWNER));
    let (_, params) = query.split_once('?').unwrap();
    let pairs: Vec<(String, String)> =
        params.split('&').map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect();
    let parsed = carecircle_fhir::search::parse_search(Some("Task"), &pairs, carecircle_fhir::search::Handling::Strict);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn a_referral_between_two_teams_of_one_partner_keeps_both_parties() {
    let d = directory();
    let mut old = task("requested", None);
    old["requester"] = json!({ "reference": "Organization/org-vale-mh-trust" });
    old["owner"] = json!({ "reference": "Organization/org-vale-mh-crisis-team" });
    let mut cancelled = old.clone();
    cancelled["status"] = json!("cancelled");
    cancelled["statusReason"] = json!({ "text": "Seen in clinic instead" });
    let t = check_task_transition(&old, &cancelled, &org("org-vale-mh-trust"), &d).unwrap();
    assert_eq!(t.by, Party::Requester);
    let mut accepted = old.clone();
    accepted["status"] = json!("accepted");
    assert_eq!(check_task_transition(&old, &accepted, &org("org-vale-mh-crisis-team"), &d).unwrap().by, Party::Owner);
}
