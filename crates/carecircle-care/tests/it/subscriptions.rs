//! Topic-based subscriptions: parsing and validation, matching changes, notification bundle
//! shapes, and the retry schedule.

use carecircle_care::codes::{BACKPORT_FILTER_CRITERIA, BACKPORT_HEARTBEAT_PERIOD, BACKPORT_PAYLOAD_CONTENT};
use carecircle_care::subscriptions::{ChannelType, FilterCriterion, NotificationType, SubscriptionStatus};
use carecircle_care::{
    handshake_bundle, heartbeat_bundle, matching_subscriptions, notification_bundle, parse_subscription,
    subscription_matches, DeliveryOutcome, DeliveryRecord, Interaction, NotificationEvent, NotificationTarget,
    PayloadContent, ResourceChange, RetryPolicy, Topic,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use carecircle_care::OrgId;
use serde_json::{json, Value};
use time::Duration;

use crate::support::at;

fn subscription(topic: &str, filters: &[&str], content: &str) -> Value {
    let filters: Vec<Value> =
        filters.iter().map(|f| json!({ "url": BACKPORT_FILTER_CRITERIA, "valueString": f })).collect();
    json!({
        "resourceType": "Subscription",
        "id": "sub-1",
        "status": "active",
        "reason": "Tell the crisis team about Joe's encounters",
        "meta": { "source": "Organization/org-vale-mh-crisis-team" },
        "criteria": topic,
        "_criteria": { "extension": filters },
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://crisis.example/hooks/carecircle",
            "header": ["Authorization: Bearer secret-token"],
            "payload": "application/fhir+json",
            "_payload": { "extension": [{ "url": BACKPORT_PAYLOAD_CONTENT, "valueCode": content }] },
            "extension": [{ "url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 3600 }],
        },
    })
}

fn encounter(patient: &str, status: &str) -> Value {
    json!({ "resourceType": "Encounter", "id": "enc-1", "status": status, "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER" },
            "subject": { "reference": patient } })
}

/// The organisations in the care of the person: the crisis team (the subscriber) when `in_care`.
fn care(in_care: bool) -> &'static BTreeSet<OrgId> {
    static IN_CARE: OnceLock<BTreeSet<OrgId>> = OnceLock::new();
    static OTHERS: OnceLock<BTreeSet<OrgId>> = OnceLock::new();
    if in_care {
        IN_CARE.get_or_init(|| BTreeSet::from([OrgId::new("org-vale-mh-crisis-team"), OrgId::new("org-vale-mh-trust")]))
    } else {
        OTHERS.get_or_init(|| BTreeSet::from([OrgId::new("org-northvale-police")]))
    }
}

fn change<'a>(
    interaction: Interaction,
    current: Option<&'a Value>,
    previous: Option<&'a Value>,
    in_care: bool,
) -> ResourceChange<'a> {
    ResourceChange { interaction, current, previous, care_organisations: Some(care(in_care)) }
}

#[test]
fn a_backport_subscription_is_read_whole() {
    let parsed = parse_subscription(&subscription(
        Topic::CareTeamEncounter.url(),
        &["Encounter?patient=Patient/pat-1,Patient/pat-2&class=EMER"],
        "full-resource",
    ))
    .unwrap();
    assert_eq!(parsed.id.as_deref(), Some("sub-1"));
    assert_eq!(parsed.status, SubscriptionStatus::Active);
    assert_eq!(parsed.topic, Topic::CareTeamEncounter);
    assert_eq!(
        parsed.filters,
        vec![
            FilterCriterion { param: "patient".into(), values: vec!["Patient/pat-1".into(), "Patient/pat-2".into()] },
            FilterCriterion { param: "class".into(), values: vec!["EMER".into()] },
        ]
    );
    assert_eq!(parsed.channel.kind, ChannelType::RestHook);
    assert_eq!(parsed.channel.endpoint.as_deref(), Some("https://crisis.example/hooks/carecircle"));
    assert_eq!(parsed.channel.headers, vec![("Authorization".to_string(), "Bearer secret-token".to_string())]);
    assert_eq!(parsed.channel.content, PayloadContent::FullResource);
    assert_eq!(parsed.channel.heartbeat_period, Some(3600));
    assert_eq!(parsed.subscriber, Some(OrgId::new("org-vale-mh-crisis-team")));
    assert_eq!(parsed.subscriber, Some(OrgId::new("org-vale-mh-crisis-team")));
    let websocket = {
        let mut s = subscription(Topic::FlagRaised.url(), &[], "id-only");
        s["channel"]["type"] = json!("websocket");
        s["channel"].as_object_mut().unwrap().remove("endpoint");
        parse_subscription(&s).unwrap()
    };
    assert_eq!(websocket.channel.kind, ChannelType::Websocket);
    assert_eq!(websocket.channel.content, PayloadContent::IdOnly);
}

#[test]
fn every_topic_filter_is_an_r4_search_parameter_of_its_resource() {
    for topic in Topic::ALL {
        assert_eq!(Topic::from_url(topic.url()), Some(topic));
        for param in topic.filter_parameters() {
            let def = carecircle_fhir::definitions().search_param(topic.resource_type(), param);
            assert!(def.is_some(), "{}: {param}", topic.resource_type());
        }
    }
}

#[test]
fn invalid_subscriptions_are_refused_with_locations() {
    let encounter_topic = Topic::CareTeamEncounter.url();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut s = subscription(encounter_topic, &[], "id-only");
        edit(&mut s);
        s
    };
    let cases: Vec<(Value, &str)> = vec![
        (subscription("https://example.org/topic/other", &[], "id-only"), "Subscription.criteria"),
        (subscription(encounter_topic, &["Patient?name=joe"], "id-only"), "Subscription._criteria.extension[0]"),
        (subscription(encounter_topic, &["Encounter?date=2026"], "id-only"), "Subscription._criteria.extension[0]"),
        (
            subscription(encounter_topic, &["Encounter?patient:missing=true"], "id-only"),
            "Subscription._criteria.extension[0]",
        ),
        (subscription(encounter_topic, &["Encounter?patient="], "id-only"), "Subscription._criteria.extension[0]"),
        (subscription(encounter_topic, &[], "everything"), "Subscription.channel._payload.extension[0]"),
        (
            with(&|s| {
                s["channel"].as_object_mut().unwrap().remove("_payload");
            }),
            "Subscription.channel._payload",
        ),
        (
            with(&|s| {
                s["channel"].as_object_mut().unwrap().remove("endpoint");
            }),
            "Subscription.channel.endpoint",
        ),
        (with(&|s| s["channel"]["endpoint"] = json!("ftp://x")), "Subscription.channel.endpoint"),
        (with(&|s| s["channel"]["type"] = json!("email")), "Subscription.channel.type"),
        (with(&|s| s["channel"]["header"] = json!(["no colon here"])), "Subscription.channel.header[0]"),
        (with(&|s| s["channel"]["payload"] = json!("application/fhir+xml")), "Subscription.channel.payload"),
        (with(&|s| s["status"] = json!("paused")), "Subscription.status"),
        (
            with(&|s| {
                s.as_object_mut().unwrap().remove("criteria");
            }),
            "Subscription.criteria",
        ),
    ];
    for (resource, location) in cases {
        let problems = parse_subscription(&resource).unwrap_err();
        let at: Vec<&str> = problems.iter().map(|p| p.expression.as_str()).collect();
        assert_eq!(at, vec![location], "{resource}");
    }
}

#[test]
fn encounters_match_only_for_subscribers_in_the_persons_care_and_by_filter() {
    let sub = parse_subscription(&subscription(
        Topic::CareTeamEncounter.url(),
        &["Encounter?patient=Patient/pat-1&status=in-progress,finished"],
        "id-only",
    ))
    .unwrap();
    let joes = encounter("Patient/pat-1", "finished");
    let others = encounter("Patient/pat-9", "finished");
    let planned = encounter("Patient/pat-1", "planned");
    assert!(subscription_matches(&sub, &change(Interaction::Create, Some(&joes), None, true)));
    assert!(subscription_matches(&sub, &change(Interaction::Update, Some(&joes), Some(&planned), true)));
    assert!(!subscription_matches(&sub, &change(Interaction::Create, Some(&joes), None, false)), "not in care");
    let unknown = ResourceChange {
        interaction: Interaction::Create,
        current: Some(&joes),
        previous: None,
        care_organisations: None,
    };
    assert!(!subscription_matches(&sub, &unknown), "no relationship known, no notification");
    let mut anonymous = sub.clone();
    anonymous.subscriber = None;
    assert!(!subscription_matches(&anonymous, &change(Interaction::Create, Some(&joes), None, true)), "no subscriber");
    let unknown = ResourceChange {
        interaction: Interaction::Create,
        current: Some(&joes),
        previous: None,
        care_organisations: None,
    };
    assert!(!subscription_matches(&sub, &unknown), "no relationship known, no notification");
    let mut anonymous = sub.clone();
    anonymous.subscriber = None;
    assert!(
        !subscription_matches(&anonymous, &change(Interaction::Create, Some(&joes), None, true)),
        "no subscriber, no relationship"
    );
    assert!(!subscription_matches(&sub, &change(Interaction::Create, Some(&others), None, true)));
    assert!(!subscription_matches(&sub, &change(Interaction::Create, Some(&planned), None, true)));
    assert!(!subscription_matches(&sub, &change(Interaction::Delete, None, Some(&joes), true)));
    let id_only =
        parse_subscription(&subscription(Topic::CareTeamEncounter.url(), &["Encounter?patient=pat-1"], "id-only"))
            .unwrap();
    assert!(subscription_matches(&id_only, &change(Interaction::Create, Some(&joes), None, true)), "a bare id matches");
    let mut requested = sub.clone();
    requested.status = SubscriptionStatus::Requested;
    assert!(!subscription_matches(&requested, &change(Interaction::Create, Some(&joes), None, true)), "not active yet");
}

#[test]
fn referral_topics_fire_on_status_changes_only() {
    let sub = parse_subscription(&subscription(
        Topic::ReferralStatusChanged.url(),
        &["Task?requester=Organization/org-gp-ashgrove"],
        "full-resource",
    ))
    .unwrap();
    let task = |status: &str, requester: &str| {
        json!({ "resourceType": "Task", "id": "t", "status": status, "intent": "order",
        "requester": { "reference": format!("Organization/{requester}") } })
    };
    let (requested, accepted) = (task("requested", "org-gp-ashgrove"), task("accepted", "org-gp-ashgrove"));
    assert!(subscription_matches(&sub, &change(Interaction::Create, Some(&requested), None, false)));
    assert!(subscription_matches(&sub, &change(Interaction::Update, Some(&accepted), Some(&requested), false)));
    assert!(
        !subscription_matches(&sub, &change(Interaction::Update, Some(&accepted), Some(&accepted), false)),
        "a note is not a status change"
    );
    let elsewhere = task("requested", "org-kettlebeck-homes");
    assert!(!subscription_matches(&sub, &change(Interaction::Create, Some(&elsewhere), None, false)));
}

#[test]
fn flags_fire_when_raised_and_care_plans_on_any_change() {
    let flags =
        parse_subscription(&subscription(Topic::FlagRaised.url(), &["Flag?patient=Patient/p"], "id-only")).unwrap();
    let flag = |status: &str| json!({ "resourceType": "Flag", "id": "f", "status": status, "code": { "text": "x" }, "subject": { "reference": "Patient/p" } });
    let (active, inactive) = (flag("active"), flag("inactive"));
    assert!(subscription_matches(&flags, &change(Interaction::Create, Some(&active), None, false)));
    assert!(!subscription_matches(&flags, &change(Interaction::Create, Some(&inactive), None, false)));
    assert!(subscription_matches(&flags, &change(Interaction::Update, Some(&active), Some(&inactive), false)));
    assert!(!subscription_matches(&flags, &change(Interaction::Update, Some(&active), Some(&active), false)));
    assert!(!subscription_matches(&flags, &change(Interaction::Update, Some(&inactive), Some(&active), false)));

    let plans =
        parse_subscription(&subscription(Topic::CarePlanChanged.url(), &["CarePlan?subject=Patient/p"], "id-only"))
            .unwrap();
    let plan = json!({ "resourceType": "CarePlan", "id": "c", "status": "active", "intent": "plan", "subject": { "reference": "Patient/p" } });
    assert!(
        subscription_matches(&plans, &change(Interaction::Delete, None, Some(&plan), false)),
        "deletes are judged on the last version"
    );
    assert!(
        !subscription_matches(&plans, &change(Interaction::Create, Some(&active), None, false)),
        "a Flag is not a CarePlan"
    );
}

fn target(content: PayloadContent) -> NotificationTarget<'static> {
    NotificationTarget {
        base_url: "https://carecircle.example.org/fhir",
        subscription_id: "sub-1",
        topic: Topic::CareTeamEncounter,
        content,
        status: SubscriptionStatus::Active,
    }
}

fn event(resource: &Value) -> NotificationEvent {
    NotificationEvent {
        event_number: 7,
        timestamp: at(2026, 8, 20, 1, 5),
        interaction: Interaction::Create,
        resource_type: "Encounter".into(),
        id: "enc-1".into(),
        resource: Some(resource.clone()),
    }
}

#[test]
fn a_full_resource_notification_has_the_backport_shape() {
    let resource = encounter("Patient/pat-1", "finished");
    let bundle = notification_bundle(
        &target(PayloadContent::FullResource),
        7,
        &[event(&resource)],
        "n-1",
        at(2026, 8, 20, 1, 6),
    );
    assert_eq!(
        bundle,
        json!({
            "resourceType": "Bundle",
            "id": "n-1",
            "meta": { "profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"] },
            "type": "history",
            "timestamp": "2026-08-20T01:06:00.000Z",
            "entry": [
                {
                    "fullUrl": "urn:uuid:n-1",
                    "resource": {
                        "resourceType": "Parameters",
                        "id": "n-1",
                        "meta": { "profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"] },
                        "parameter": [
                            { "name": "subscription", "valueReference": { "reference": "https://carecircle.example.org/fhir/Subscription/sub-1" } },
                            { "name": "topic", "valueCanonical": "https://carecircle.example.org/fhir/SubscriptionTopic/care-team-encounter" },
                            { "name": "status", "valueCode": "active" },
                            { "name": "type", "valueCode": "event-notification" },
                            { "name": "events-since-subscription-start", "valueString": "7" },
                            { "name": "notification-event", "part": [
                                { "name": "event-number", "valueString": "7" },
                                { "name": "timestamp", "valueInstant": "2026-08-20T01:05:00.000Z" },
                                { "name": "focus", "valueReference": { "reference": "https://carecircle.example.org/fhir/Encounter/enc-1" } },
                            ]},
                        ],
                    },
                    "request": { "method": "GET", "url": "https://carecircle.example.org/fhir/Subscription/sub-1/$status" },
                    "response": { "status": "200" },
                },
                {
                    "fullUrl": "https://carecircle.example.org/fhir/Encounter/enc-1",
                    "request": { "method": "POST", "url": "Encounter" },
                    "response": { "status": "201" },
                    "resource": resource,
                },
            ],
        })
    );
}

#[test]
fn id_only_and_empty_notifications_carry_less() {
    let resource = encounter("Patient/pat-1", "finished");
    let id_only =
        notification_bundle(&target(PayloadContent::IdOnly), 7, &[event(&resource)], "n-2", at(2026, 8, 20, 1, 6));
    let entries = id_only["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[1].get("resource").is_none());
    assert_eq!(entries[1]["fullUrl"], "https://carecircle.example.org/fhir/Encounter/enc-1");
    let empty =
        notification_bundle(&target(PayloadContent::Empty), 7, &[event(&resource)], "n-3", at(2026, 8, 20, 1, 6));
    let entries = empty["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let names: Vec<&str> =
        entries[0]["resource"]["parameter"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["subscription", "status", "type", "events-since-subscription-start", "notification-event"]);
    let parts = entries[0]["resource"]["parameter"][4]["part"].as_array().unwrap();
    assert!(parts.iter().all(|p| p["name"] != "focus"), "an empty payload names no focus");
    // A deleted resource is reported without content even with full-resource.
    let mut deleted = event(&resource);
    deleted.interaction = Interaction::Delete;
    let bundle =
        notification_bundle(&target(PayloadContent::FullResource), 8, &[deleted], "n-4", at(2026, 8, 20, 1, 6));
    assert_eq!(bundle["entry"][1]["request"], json!({ "method": "DELETE", "url": "Encounter/enc-1" }));
    assert!(bundle["entry"][1].get("resource").is_none());
}

#[test]
fn handshakes_and_heartbeats_carry_only_the_status() {
    let handshake = handshake_bundle(&target(PayloadContent::IdOnly), "h-1", at(2026, 8, 1, 0, 0));
    let parameters = &handshake["entry"][0]["resource"]["parameter"];
    assert_eq!(handshake["entry"].as_array().unwrap().len(), 1);
    assert_eq!(parameters[2], json!({ "name": "status", "valueCode": "requested" }));
    assert_eq!(parameters[3], json!({ "name": "type", "valueCode": "handshake" }));
    assert_eq!(parameters[4], json!({ "name": "events-since-subscription-start", "valueString": "0" }));
    let heartbeat = heartbeat_bundle(&target(PayloadContent::IdOnly), 12, "hb-1", at(2026, 8, 1, 1, 0));
    let parameters = &heartbeat["entry"][0]["resource"]["parameter"];
    assert_eq!(parameters[2], json!({ "name": "status", "valueCode": "active" }));
    assert_eq!(parameters[3], json!({ "name": "type", "valueCode": "heartbeat" }));
    assert_eq!(parameters[4], json!({ "name": "events-since-subscription-start", "valueString": "12" }));
    assert_eq!(heartbeat["type"], "history");
}

#[test]
fn retries_back_off_exponentially_up_to_a_cap_and_a_limit() {
    let policy = RetryPolicy { initial_delay: Duration::seconds(5), max_delay: Duration::minutes(1), max_attempts: 6 };
    let delays: Vec<Option<Duration>> = (0..=7).map(|n| policy.delay_after(n)).collect();
    assert_eq!(
        delays,
        vec![
            None,
            Some(Duration::seconds(5)),
            Some(Duration::seconds(10)),
            Some(Duration::seconds(20)),
            Some(Duration::seconds(40)),
            Some(Duration::seconds(60)),
            None,
            None,
        ]
    );
    let huge = RetryPolicy { initial_delay: Duration::seconds(1), max_delay: Duration::hours(1), max_attempts: 200 };
    assert_eq!(huge.delay_after(150), Some(Duration::hours(1)), "no overflow");
}

#[test]
fn the_delivery_log_schedules_the_next_attempt() {
    let policy = RetryPolicy::default();
    let failed = DeliveryOutcome::Failed { http_status: Some(503), error: "service unavailable".into() };
    let first = DeliveryRecord::new(
        &policy,
        "sub-1",
        "n-1",
        NotificationType::EventNotification,
        7,
        1,
        at(2026, 8, 20, 1, 6),
        failed.clone(),
    );
    assert_eq!(first.next_attempt_at, Some(at(2026, 8, 20, 1, 6) + Duration::seconds(5)));
    assert!(!first.gave_up());
    let last = DeliveryRecord::new(
        &policy,
        "sub-1",
        "n-1",
        NotificationType::EventNotification,
        7,
        policy.max_attempts,
        at(2026, 8, 20, 2, 0),
        failed,
    );
    assert!(last.gave_up());
    let ok = DeliveryRecord::new(
        &policy,
        "sub-1",
        "n-1",
        NotificationType::EventNotification,
        7,
        2,
        at(2026, 8, 20, 1, 7),
        DeliveryOutcome::Delivered { http_status: 200 },
    );
    assert_eq!(ok.next_attempt_at, None);
    assert!(!ok.gave_up());
}

#[test]
fn many_subscriptions_are_matched_against_one_change_at_once() {
    let subscriptions: Vec<_> =
        ["Encounter?patient=Patient/pat-1", "Encounter?patient=Patient/pat-2", "Encounter?class=EMER"]
            .iter()
            .map(|f| parse_subscription(&subscription(Topic::CareTeamEncounter.url(), &[f], "id-only")).unwrap())
            .chain([parse_subscription(&subscription(Topic::FlagRaised.url(), &[], "id-only")).unwrap()])
            .collect();
    let joes = encounter("Patient/pat-1", "finished");
    let matched = matching_subscriptions(&subscriptions, &change(Interaction::Create, Some(&joes), None, true));
    assert_eq!(matched, vec![0, 2]);
    for (i, s) in subscriptions.iter().enumerate() {
        assert_eq!(
            subscription_matches(s, &change(Interaction::Create, Some(&joes), None, true)),
            matched.contains(&i)
        );
    }
}

#[test]
fn ends_and_heartbeats_are_judged_on_the_given_time() {
    let mut resource = subscription(Topic::FlagRaised.url(), &[], "empty");
    resource["end"] = json!("2026-08-31");
    let parsed = parse_subscription(&resource).unwrap();
    assert!(!parsed.has_ended(at(2026, 8, 31, 23, 0)), "the end day counts whole");
    assert!(parsed.has_ended(at(2026, 9, 1, 0, 0)));
    assert!(!parsed.heartbeat_due(at(2026, 8, 1, 0, 0), at(2026, 8, 1, 0, 59)));
    assert!(parsed.heartbeat_due(at(2026, 8, 1, 0, 0), at(2026, 8, 1, 1, 0)));
}

proptest! {
    #[test]
    fn any_filter_text_is_either_refused_or_uses_only_the_topics_parameters(text in "[A-Za-z%=&?,|:/0-9 -]{0,60}") {
        let resource = subscription(Topic::CareTeamEncounter.url(), &[text.as_str()], "id-only");
        match parse_subscription(&resource) {
            Ok(parsed) => {
                for filter in &parsed.filters {
                    prop_assert!(Topic::CareTeamEncounter.filter_parameters().contains(&filter.param.as_str()));
                    prop_assert!(filter.values.iter().all(|v| !v.is_empty()));
                }
            }
            Err(problems) => prop_assert!(problems.iter().all(|p| p.expression.starts_with("Subscription._criteria.extension[0]"))),
        }
    }

    #[test]
    fn retry_delays_never_shrink_and_never_pass_the_cap(initial in 1i64..600, cap in 1i64..7200, attempts in 1u32..64) {
        let policy = RetryPolicy { initial_delay: Duration::seconds(initial), max_delay: Duration::seconds(cap), max_attempts: attempts };
        let mut previous = Duration::ZERO;
        for attempt in 1..attempts {
            let delay = policy.delay_after(attempt).unwrap();
            prop_assert!(delay >= previous && delay <= Duration::seconds(cap));
            previous = delay;
        }
        prop_assert_eq!(policy.delay_after(attempts), None);
    }
}
