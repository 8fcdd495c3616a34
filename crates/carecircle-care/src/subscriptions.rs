//! Topic-based subscriptions as the FHIR R5 Subscriptions Backport IG defines them for R4:
//! carecircle's four topics, reading and validating a backport `Subscription`, deciding whether
//! a change matches it, the notification, handshake and heartbeat Bundles, and the delivery
//! retry schedule.
//!
//! A Subscription names its topic in `criteria` and narrows it with `_criteria` filter
//! extensions (`Encounter?patient=Patient/123`, ANDed). Filters are search parameters of the
//! topic's resource type, evaluated on the changed resource with the same index extraction the
//! store uses, so a filter means what the same search would mean.

use std::collections::BTreeSet;
use std::fmt;

use carecircle_fhir::{definitions, extract_index, IndexEntry, IndexValue, SearchParamType};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::codes;
use crate::model::{extensions, format_instant, str_at, OrgId, Problem, ProblemKind};

/// carecircle's subscription topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// An Encounter was recorded or updated for a person in the subscriber's care team.
    CareTeamEncounter,
    /// A CarePlan was created, changed or deleted.
    CarePlanChanged,
    /// A referral Task was created or its status changed.
    ReferralStatusChanged,
    /// A Flag was raised (created active, or made active again).
    FlagRaised,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 4] =
        [Topic::CareTeamEncounter, Topic::CarePlanChanged, Topic::ReferralStatusChanged, Topic::FlagRaised];

    /// The topic's canonical URL (what `Subscription.criteria` holds).
    pub fn url(self) -> &'static str {
        match self {
            Topic::CareTeamEncounter => "https://carecircle.example.org/fhir/SubscriptionTopic/care-team-encounter",
            Topic::CarePlanChanged => "https://carecircle.example.org/fhir/SubscriptionTopic/care-plan-changed",
            Topic::ReferralStatusChanged => {
                "https://carecircle.example.org/fhir/SubscriptionTopic/referral-status-changed"
            }
            Topic::FlagRaised => "https://carecircle.example.org/fhir/SubscriptionTopic/flag-raised",
        }
    }

    /// The topic with this canonical URL (a `|version` suffix is ignored).
    pub fn from_url(url: &str) -> Option<Topic> {
        let url = url.split('|').next().unwrap_or(url);
        Topic::ALL.into_iter().find(|t| t.url() == url)
    }

    /// The resource type whose changes the topic reports.
    pub fn resource_type(self) -> &'static str {
        match self {
            Topic::CareTeamEncounter => "Encounter",
            Topic::CarePlanChanged => "CarePlan",
            Topic::ReferralStatusChanged => "Task",
            Topic::FlagRaised => "Flag",
        }
    }

    /// The search parameters a `_criteria` filter may use with this topic.
    pub fn filter_parameters(self) -> &'static [&'static str] {
        match self {
            Topic::CareTeamEncounter => &["patient", "subject", "class", "type", "status", "service-provider"],
            Topic::CarePlanChanged => &["patient", "subject", "category", "status", "intent"],
            Topic::ReferralStatusChanged => &["patient", "owner", "requester", "status", "focus", "code"],
            Topic::FlagRaised => &["patient", "subject", "author"],
        }
    }

    /// What the topic means, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Topic::CareTeamEncounter => "An encounter is created or updated for a person in my care team.",
            Topic::CarePlanChanged => "A care plan is created, changed or deleted.",
            Topic::ReferralStatusChanged => "A referral Task is created or its status changes.",
            Topic::FlagRaised => "A Flag is created active, or becomes active again.",
        }
    }
}

/// How much of the triggering resource a notification carries (backport payload content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadContent {
    /// Nothing: only the status entry.
    Empty,
    /// The focus reference and one entry per resource without its content.
    IdOnly,
    /// The resources themselves.
    FullResource,
}

impl PayloadContent {
    /// The backport code.
    pub fn code(self) -> &'static str {
        match self {
            PayloadContent::Empty => "empty",
            PayloadContent::IdOnly => "id-only",
            PayloadContent::FullResource => "full-resource",
        }
    }
}

/// The channel notifications go over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    /// HTTP POST to the endpoint.
    RestHook,
    /// A websocket the client opens.
    Websocket,
}

/// `Subscription.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Asked for, not yet confirmed by a handshake.
    Requested,
    /// Notifications are being sent.
    Active,
    /// Delivery failed; the server stopped.
    Error,
    /// Turned off.
    Off,
}

impl SubscriptionStatus {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            SubscriptionStatus::Requested => "requested",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Error => "error",
            SubscriptionStatus::Off => "off",
        }
    }
}

/// One `_criteria` filter: a search parameter and the values any of which must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterCriterion {
    /// The search parameter code.
    pub param: String,
    /// Its values (comma-separated in the query, percent-decoded).
    pub values: Vec<String>,
}

/// The channel of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// rest-hook or websocket.
    pub kind: ChannelType,
    /// Where a rest-hook posts (absent for websocket).
    pub endpoint: Option<String>,
    /// Headers to send with a rest-hook POST (`Authorization: Bearer ...`).
    pub headers: Vec<(String, String)>,
    /// How much content notifications carry.
    pub content: PayloadContent,
    /// Seconds between heartbeats, if asked for.
    pub heartbeat_period: Option<u32>,
    /// Seconds to wait for the endpoint before a delivery attempt fails, if given.
    pub timeout: Option<u32>,
    /// Most triggering resources in one notification, if given.
    pub max_count: Option<u32>,
}

/// A validated backport `Subscription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSubscription {
    /// `Subscription.id`.
    pub id: Option<String>,
    /// `Subscription.status`.
    pub status: SubscriptionStatus,
    /// The topic.
    pub topic: Topic,
    /// The filters, all of which must match.
    pub filters: Vec<FilterCriterion>,
    /// The channel.
    pub channel: Channel,
    /// `Subscription.end`, if given (the caller turns it off then).
    pub end: Option<String>,
    /// The organisation that subscribed: the stored Subscription's custodian (`meta.source`).
    /// The care-team-encounter topic reports only people in its care.
    pub subscriber: Option<OrgId>,
}

/// Decodes `%XX` escapes (and `+` as a space) in a query component; `None` for a bad escape or
/// invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses one filter criteria string for `topic`, reporting problems at `at`.
fn parse_filter(text: &str, topic: Topic, at: &str, problems: &mut Vec<Problem>) -> Vec<FilterCriterion> {
    let (resource_type, query) = text.split_once('?').unwrap_or(("", text));
    if !resource_type.is_empty() && resource_type != topic.resource_type() {
        problems.push(Problem::value(
            at,
            format!("the topic reports {} resources, so a filter cannot be on {resource_type}", topic.resource_type()),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((param, raw)) = pair.split_once('=') else {
            problems.push(Problem::value(at, format!("'{pair}' is not a name=value filter")));
            continue;
        };
        if param.contains(':') {
            problems.push(Problem::new(
                ProblemKind::NotSupported,
                at,
                format!("filter modifiers are not supported ('{param}')"),
            ));
            continue;
        }
        if !topic.filter_parameters().contains(&param) {
            problems.push(Problem::value(
                at,
                format!("'{param}' is not a filter of this topic (allowed: {})", topic.filter_parameters().join(", ")),
            ));
            continue;
        }
        let values: Option<Vec<String>> = raw.split(',').map(percent_decode).collect();
        match values {
            Some(values) if values.iter().all(|v| !v.is_empty()) => {
                out.push(FilterCriterion { param: param.to_string(), values })
            }
            _ => problems.push(Problem::value(at, format!("the value of '{param}' is empty or badly escaped"))),
        }
    }
    out
}

fn unsigned_extension(element: &Value, url: &str, key: &str, at: &str, problems: &mut Vec<Problem>) -> Option<u32> {
    let (i, ext) = extensions(element, url).next()?;
    let value = ext.get(key).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
    if value.is_none() {
        problems.push(Problem::value(
            format!("{at}.extension[{i}]"),
            format!("expected {key} with a non-negative integer"),
        ));
    }
    value
}

/// Reads and validates an R4 backport `Subscription`: a known topic in `criteria`, filters
/// allowed by the topic, a rest-hook (with an http(s) endpoint) or websocket channel, headers
/// as `Name: value`, and the payload content extension.
pub fn parse_subscription(subscription: &Value) -> Result<ParsedSubscription, Vec<Problem>> {
    let mut problems = Vec::new();
    if str_at(subscription, "resourceType") != Some("Subscription") {
        problems.push(Problem::value("Subscription.resourceType", "expected a Subscription"));
    }
    let status = match str_at(subscription, "status") {
        Some("requested") => Some(SubscriptionStatus::Requested),
        Some("active") => Some(SubscriptionStatus::Active),
        Some("error") => Some(SubscriptionStatus::Error),
        Some("off") => Some(SubscriptionStatus::Off),
        Some(other) => {
            problems.push(Problem::value("Subscription.status", format!("unknown status '{other}'")));
            None
        }
        None => {
            problems.push(Problem::required("Subscription.status", "a Subscription needs a status"));
            None
        }
    };
    let topic = match str_at(subscription, "criteria") {
        Some(url) => {
            let topic = Topic::from_url(url);
            if topic.is_none() {
                let known: Vec<&str> = Topic::ALL.iter().map(|t| t.url()).collect();
                problems.push(Problem::value(
                    "Subscription.criteria",
                    format!("'{url}' is not a topic of this server (known: {})", known.join(", ")),
                ));
            }
            topic
        }
        None => {
            problems.push(Problem::required(
                "Subscription.criteria",
                "a topic-based Subscription names its topic in criteria",
            ));
            None
        }
    };
    let mut filters = Vec::new();
    if let (Some(topic), Some(criteria_ext)) = (topic, subscription.get("_criteria")) {
        for (i, ext) in extensions(criteria_ext, codes::BACKPORT_FILTER_CRITERIA) {
            let at = format!("Subscription._criteria.extension[{i}]");
            match str_at(ext, "valueString") {
                Some(text) => filters.extend(parse_filter(text, topic, &at, &mut problems)),
                None => problems.push(Problem::required(at, "a filter criteria extension needs a valueString")),
            }
        }
    }
    let channel = subscription.get("channel");
    if channel.is_none() {
        problems.push(Problem::required("Subscription.channel", "a Subscription needs a channel"));
    }
    let empty = json!({});
    let channel = channel.unwrap_or(&empty);
    let kind = match str_at(channel, "type") {
        Some("rest-hook") => Some(ChannelType::RestHook),
        Some("websocket") => Some(ChannelType::Websocket),
        Some(other) => {
            problems.push(Problem::new(
                ProblemKind::NotSupported,
                "Subscription.channel.type",
                format!("channel type '{other}' is not supported (rest-hook, websocket)"),
            ));
            None
        }
        None => {
            problems.push(Problem::required("Subscription.channel.type", "a channel needs a type"));
            None
        }
    };
    let endpoint = str_at(channel, "endpoint").map(str::to_string);
    match (kind, &endpoint) {
        (Some(ChannelType::RestHook), None) => {
            problems.push(Problem::required("Subscription.channel.endpoint", "a rest-hook channel needs an endpoint"))
        }
        (Some(ChannelType::RestHook), Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            problems.push(Problem::value("Subscription.channel.endpoint", format!("'{url}' is not an http(s) URL")))
        }
        _ => {}
    }
    let mut headers = Vec::new();
    for (i, header) in channel.get("header").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let parsed = header.as_str().and_then(|h| h.split_once(':')).and_then(|(name, value)| {
            let name = name.trim();
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            valid.then(|| (name.to_string(), value.trim().to_string()))
        });
        match parsed {
            Some(h) => headers.push(h),
            None => {
                problems.push(Problem::value(format!("Subscription.channel.header[{i}]"), "a header is 'Name: value'"))
            }
        }
    }
    let content = match subscription.get("channel").and_then(|c| c.get("_payload")) {
        Some(payload_ext) => match extensions(payload_ext, codes::BACKPORT_PAYLOAD_CONTENT).next() {
            Some((i, ext)) => match str_at(ext, "valueCode") {
                Some("empty") => Some(PayloadContent::Empty),
                Some("id-only") => Some(PayloadContent::IdOnly),
                Some("full-resource") => Some(PayloadContent::FullResource),
                _ => {
                    problems.push(Problem::value(
                        format!("Subscription.channel._payload.extension[{i}]"),
                        "payload content is empty, id-only or full-resource",
                    ));
                    None
                }
            },
            None => None,
        },
        None => None,
    };
    if content.is_none() && !problems.iter().any(|p| p.expression.starts_with("Subscription.channel._payload")) {
        problems.push(Problem::required(
            "Subscription.channel._payload",
            format!("the channel payload needs the {} extension", codes::BACKPORT_PAYLOAD_CONTENT),
        ));
    }
    if let Some(mime) = str_at(channel, "payload") {
        if mime != "application/fhir+json" && mime != "application/json" {
            problems.push(Problem::new(
                ProblemKind::NotSupported,
                "Subscription.channel.payload",
                format!("payload type '{mime}' is not supported (application/fhir+json)"),
            ));
        }
    }
    let heartbeat_period = unsigned_extension(
        channel,
        codes::BACKPORT_HEARTBEAT_PERIOD,
        "valueUnsignedInt",
        "Subscription.channel",
        &mut problems,
    );
    let timeout =
        unsigned_extension(channel, codes::BACKPORT_TIMEOUT, "valueUnsignedInt", "Subscription.channel", &mut problems);
    let max_count = unsigned_extension(
        channel,
        codes::BACKPORT_MAX_COUNT,
        "valuePositiveInt",
        "Subscription.channel",
        &mut problems,
    );
    match (status, topic, kind, content) {
        (Some(status), Some(topic), Some(kind), Some(content)) if problems.is_empty() => Ok(ParsedSubscription {
            id: str_at(subscription, "id").map(str::to_string),
            status,
            topic,
            filters,
            channel: Channel { kind, endpoint, headers, content, heartbeat_period, timeout, max_count },
            end: str_at(subscription, "end").map(str::to_string),
            subscriber: subscription.get("meta").and_then(|m| str_at(m, "source")).and_then(OrgId::from_reference),
        }),
        _ => Err(problems),
    }
}

impl ParsedSubscription {
    /// True when `Subscription.end` has passed at `now` (an unreadable end counts as passed).
    pub fn has_ended(&self, now: OffsetDateTime) -> bool {
        self.end.as_deref().is_some_and(|end| crate::model::fhir_instant_range(end).is_none_or(|(_, last)| last < now))
    }

    /// True when a heartbeat is due: the channel asks for them and nothing was sent for a whole
    /// period since `last_sent`.
    pub fn heartbeat_due(&self, last_sent: OffsetDateTime, now: OffsetDateTime) -> bool {
        self.channel.heartbeat_period.is_some_and(|seconds| now - last_sent >= Duration::seconds(i64::from(seconds)))
    }
}

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// Created.
    Create,
    /// Updated.
    Update,
    /// Deleted.
    Delete,
}

/// A change to one resource, as the record service reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceChange<'a> {
    /// What happened.
    pub interaction: Interaction,
    /// The resource after the change (`None` for a delete).
    pub current: Option<&'a Value>,
    /// The resource before the change (`None` for a create).
    pub previous: Option<&'a Value>,
    /// The organisations in the care of the person the resource is about, from
    /// [`crate::care_team::organisations_in_care`]. The care-team-encounter topic needs it and
    /// matches nothing without it; other topics ignore it.
    pub care_organisations: Option<&'a BTreeSet<OrgId>>,
}

impl ResourceChange<'_> {
    fn resource(&self) -> Option<&Value> {
        self.current.or(self.previous)
    }
}

/// True when the change is an event of the topic (before filters and before the care-team
/// relationship the care-team-encounter topic also needs).
pub fn topic_triggered(topic: Topic, change: &ResourceChange<'_>) -> bool {
    let Some(resource) = change.resource() else { return false };
    if str_at(resource, "resourceType") != Some(topic.resource_type()) {
        return false;
    }
    let status = |r: Option<&Value>| r.and_then(|r| str_at(r, "status")).map(str::to_string);
    match topic {
        Topic::CareTeamEncounter => change.interaction != Interaction::Delete,
        Topic::CarePlanChanged => true,
        Topic::ReferralStatusChanged => match change.interaction {
            Interaction::Create => true,
            Interaction::Update => status(change.current) != status(change.previous),
            Interaction::Delete => false,
        },
        Topic::FlagRaised => {
            let active_now = status(change.current).as_deref() == Some("active");
            match change.interaction {
                Interaction::Create => active_now,
                Interaction::Update => active_now && status(change.previous).as_deref() != Some("active"),
                Interaction::Delete => false,
            }
        }
    }
}

fn token_matches(value: &str, system: Option<&str>, code: &str) -> bool {
    match value.split_once('|') {
        None => value == code,
        Some(("", c)) => system.is_none() && c == code,
        Some((s, "")) => system == Some(s),
        Some((s, c)) => system == Some(s) && c == code,
    }
}

fn reference_matches(value: &str, target_type: Option<&str>, target_id: Option<&str>, url: &str) -> bool {
    if value == url {
        return true;
    }
    match value.rsplit_once('/') {
        Some((prefix, id)) => {
            let value_type = prefix.rsplit('/').next();
            target_id == Some(id) && value_type == target_type
        }
        None => target_id == Some(value),
    }
}

/// True when `resource` satisfies the filter (any of its values), judged on the resource's
/// search index.
pub fn filter_matches(filter: &FilterCriterion, resource: &Value) -> bool {
    let Some(resource_type) = str_at(resource, "resourceType") else { return false };
    filter_matches_index(filter, resource_type, &extract_index(resource))
}

/// [`filter_matches`] on an index already extracted from a resource of `resource_type`.
fn filter_matches_index(filter: &FilterCriterion, resource_type: &str, index: &[IndexEntry]) -> bool {
    let Some(def) = definitions().search_param(resource_type, &filter.param) else { return false };
    let entries: Vec<&IndexValue> = index.iter().filter(|e| e.param == filter.param).map(|e| &e.value).collect();
    filter.values.iter().any(|value| {
        entries.iter().any(|entry| match (def.kind, entry) {
            (SearchParamType::Token, IndexValue::Token { system, code }) => {
                token_matches(value, system.as_deref(), code)
            }
            (SearchParamType::Reference, IndexValue::Reference { target_type, target_id, url }) => {
                reference_matches(value, target_type.as_deref(), target_id.as_deref(), url)
            }
            (SearchParamType::String, IndexValue::String { normalized, .. }) => {
                normalized.starts_with(&carecircle_fhir::text::normalize_for_search(value))
            }
            (SearchParamType::Uri, IndexValue::Uri(uri)) => uri == value,
            _ => false,
        })
    })
}

fn matches_with_index(
    subscription: &ParsedSubscription,
    change: &ResourceChange<'_>,
    index: &mut Option<(String, Vec<IndexEntry>)>,
) -> bool {
    if subscription.status != SubscriptionStatus::Active || !topic_triggered(subscription.topic, change) {
        return false;
    }
    if subscription.topic == Topic::CareTeamEncounter {
        let in_care = match (&subscription.subscriber, change.care_organisations) {
            (Some(subscriber), Some(in_care)) => in_care.contains(subscriber),
            _ => false,
        };
        if !in_care {
            return false;
        }
    }
    if subscription.filters.is_empty() {
        return true;
    }
    let Some(resource) = change.resource() else { return false };
    let (resource_type, entries) = index.get_or_insert_with(|| {
        (str_at(resource, "resourceType").unwrap_or_default().to_string(), extract_index(resource))
    });
    subscription.filters.iter().all(|f| filter_matches_index(f, resource_type, entries))
}

/// True when `subscription` wants a notification for `change`: it is active, the change is an
/// event of its topic, for the care-team-encounter topic its subscriber is among the change's
/// care organisations, and every filter matches the resource (after the change; before it for
/// a delete).
pub fn subscription_matches(subscription: &ParsedSubscription, change: &ResourceChange<'_>) -> bool {
    matches_with_index(subscription, change, &mut None)
}

/// The positions in `subscriptions` of those that want a notification for `change`, extracting
/// the resource's search index once for all of them.
pub fn matching_subscriptions(subscriptions: &[ParsedSubscription], change: &ResourceChange<'_>) -> Vec<usize> {
    let mut index = None;
    subscriptions
        .iter()
        .enumerate()
        .filter(|(_, s)| matches_with_index(s, change, &mut index))
        .map(|(i, _)| i)
        .collect()
}

/// The subscription a notification is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationTarget<'a> {
    /// The server's base URL (`https://carecircle.example.org/fhir`), for absolute references.
    pub base_url: &'a str,
    /// `Subscription.id`.
    pub subscription_id: &'a str,
    /// Its topic.
    pub topic: Topic,
    /// Its payload content.
    pub content: PayloadContent,
    /// Its status now.
    pub status: SubscriptionStatus,
}

/// One event to report.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEvent {
    /// Its number in the subscription's event sequence (from 1).
    pub event_number: u64,
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// What happened to the focus.
    pub interaction: Interaction,
    /// The focus resource's type.
    pub resource_type: String,
    /// The focus resource's id.
    pub id: String,
    /// The focus resource after the change (not used for a delete or with less than
    /// full-resource content).
    pub resource: Option<Value>,
}

/// The kind of a notification (R5 subscription-notification-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    /// Confirms a new subscription's channel.
    Handshake,
    /// Keeps the channel alive when there are no events.
    Heartbeat,
    /// Reports events.
    EventNotification,
}

impl NotificationType {
    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            NotificationType::Handshake => "handshake",
            NotificationType::Heartbeat => "heartbeat",
            NotificationType::EventNotification => "event-notification",
        }
    }
}

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn status_parameters(
    target: &NotificationTarget<'_>,
    kind: NotificationType,
    events_since_start: u64,
    events: &[NotificationEvent],
    notification_id: &str,
) -> Value {
    let mut parameters = vec![json!({
        "name": "subscription",
        "valueReference": { "reference": format!("{}/Subscription/{}", target.base_url, target.subscription_id) },
    })];
    if target.content != PayloadContent::Empty {
        parameters.push(json!({ "name": "topic", "valueCanonical": target.topic.url() }));
    }
    parameters.push(json!({ "name": "status", "valueCode": target.status.code() }));
    parameters.push(json!({ "name": "type", "valueCode": kind.code() }));
    parameters
        .push(json!({ "name": "events-since-subscription-start", "valueString": events_since_start.to_string() }));
    for event in events {
        let mut parts = vec![
            json!({ "name": "event-number", "valueString": event.event_number.to_string() }),
            json!({ "name": "timestamp", "valueInstant": format_instant(event.timestamp) }),
        ];
        if target.content != PayloadContent::Empty {
            parts.push(json!({
                "name": "focus",
                "valueReference": { "reference": format!("{}/{}/{}", target.base_url, event.resource_type, event.id) },
            }));
        }
        parameters.push(json!({ "name": "notification-event", "part": parts }));
    }
    json!({
        "fullUrl": format!("urn:uuid:{notification_id}"),
        "resource": {
            "resourceType": "Parameters",
            "id": notification_id,
            "meta": { "profile": [codes::BACKPORT_STATUS_PROFILE] },
            "parameter": parameters,
        },
        "request": { "method": "GET", "url": format!("{}/Subscription/{}/$status", target.base_url, target.subscription_id) },
        "response": { "status": "200" },
    })
}

fn bundle(notification_id: &str, now: OffsetDateTime, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": notification_id,
        "meta": { "profile": [codes::BACKPORT_NOTIFICATION_PROFILE] },
        "type": "history",
        "timestamp": format_instant(now),
        "entry": entries,
    })
}

/// The notification Bundle for `events`: type `history`, first entry the backport
/// `Parameters` status (type `event-notification`, `events-since-subscription-start`, one
/// `notification-event` per event with its focus unless content is empty), then one entry per
/// event: without content for id-only, with the resource for full-resource (a deleted resource
/// has none), each with its request method. `notification_id` (a UUID the caller makes) names
/// the Bundle and the status entry.
pub fn notification_bundle(
    target: &NotificationTarget<'_>,
    events_since_start: u64,
    events: &[NotificationEvent],
    notification_id: &str,
    now: OffsetDateTime,
) -> Value {
    let mut entries = vec![status_parameters(
        target,
        NotificationType::EventNotification,
        events_since_start,
        events,
        notification_id,
    )];
    if target.content != PayloadContent::Empty {
        for event in events {
            let (method, url, status) = match event.interaction {
                Interaction::Create => ("POST", event.resource_type.clone(), "201"),
                Interaction::Update => ("PUT", format!("{}/{}", event.resource_type, event.id), "200"),
                Interaction::Delete => ("DELETE", format!("{}/{}", event.resource_type, event.id), "204"),
            };
            let mut entry = json!({
                "fullUrl": format!("{}/{}/{}", target.base_url, event.resource_type, event.id),
                "request": { "method": method, "url": url },
                "response": { "status": status },
            });
            if target.content == PayloadContent::FullResource && event.interaction != Interaction::Delete {
                if let Some(resource) = &event.resource {
                    entry["resource"] = resource.clone();
                }
            }
            entries.push(entry);
        }
    }
    bundle(notification_id, now, entries)
}

/// The handshake Bundle sent when a subscription is created (status `requested`, 0 events).
pub fn handshake_bundle(target: &NotificationTarget<'_>, notification_id: &str, now: OffsetDateTime) -> Value {
    let target = NotificationTarget { status: SubscriptionStatus::Requested, ..*target };
    bundle(notification_id, now, vec![status_parameters(&target, NotificationType::Handshake, 0, &[], notification_id)])
}

/// The heartbeat Bundle sent when no event was sent for the heartbeat period.
pub fn heartbeat_bundle(
    target: &NotificationTarget<'_>,
    events_since_start: u64,
    notification_id: &str,
    now: OffsetDateTime,
) -> Value {
    bundle(
        notification_id,
        now,
        vec![status_parameters(target, NotificationType::Heartbeat, events_since_start, &[], notification_id)],
    )
}

/// When to retry a failed delivery: exponential backoff from `initial_delay`, doubling each
/// attempt up to `max_delay`, for at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// The delay never grows beyond this.
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { initial_delay: Duration::seconds(5), max_delay: Duration::minutes(30), max_attempts: 8 }
    }
}

impl RetryPolicy {
    /// The delay to wait after failed attempt `attempt` (1 = the first) before the next one, or
    /// `None` when no attempt is left: `initial_delay × 2^(attempt−1)`, capped at `max_delay`.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let factor = 2_i32.checked_pow(attempt - 1).unwrap_or(i32::MAX);
        let delay = self.initial_delay.checked_mul(factor).unwrap_or(self.max_delay);
        Some(delay.min(self.max_delay))
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered {
        /// The HTTP status.
        http_status: u16,
    },
    /// The endpoint answered otherwise, or could not be reached.
    Failed {
        /// The HTTP status, when there was an answer.
        http_status: Option<u16>,
        /// What went wrong (no personal data: status, timeout, connection refused).
        error: String,
    },
    /// Written to the websockets bound to the subscription (none bound: `connections` is 0 and
    /// the client sees the gap in event numbers). Never retried.
    Websocket {
        /// How many bound connections it was written to.
        connections: u32,
    },
}

/// One line of the delivery log: one attempt to deliver one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The subscription.
    pub subscription_id: String,
    /// The notification Bundle's id.
    pub notification_id: String,
    /// The kind of notification.
    pub kind: NotificationType,
    /// The highest event number it carried (0 for handshakes and heartbeats).
    pub event_number: u64,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When it was attempted.
    pub attempted_at: OffsetDateTime,
    /// How it went.
    pub outcome: DeliveryOutcome,
    /// When to try again; `None` when delivered or out of attempts.
    pub next_attempt_at: Option<OffsetDateTime>,
}

impl DeliveryRecord {
    /// The log record for an attempt, with the next attempt scheduled by `policy` on failure.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        policy: &RetryPolicy,
        subscription_id: &str,
        notification_id: &str,
        kind: NotificationType,
        event_number: u64,
        attempt: u32,
        attempted_at: OffsetDateTime,
        outcome: DeliveryOutcome,
    ) -> DeliveryRecord {
        let next_attempt_at = match outcome {
            DeliveryOutcome::Delivered { .. } | DeliveryOutcome::Websocket { .. } => None,
            DeliveryOutcome::Failed { .. } => policy.delay_after(attempt).map(|d| attempted_at + d),
        };
        DeliveryRecord {
            subscription_id: subscription_id.to_string(),
            notification_id: notification_id.to_string(),
            kind,
            event_number,
            attempt,
            attempted_at,
            outcome,
            next_attempt_at,
        }
    }

    /// True when delivery gave up: the attempt failed and no attempt is left (the subscription
    /// should go to status `error`).
    pub fn gave_up(&self) -> bool {
        matches!(self.outcome, DeliveryOutcome::Failed { .. }) && self.next_attempt_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("http%3A%2F%2Fx%7Ccode").as_deref(), Some("http://x|code"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("%ff%fe"), None);
    }

    #[test]
    fn token_values_follow_search_syntax() {
        let cases = [
            ("EMER", Some("http://s"), "EMER", true),
            ("http://s|EMER", Some("http://s"), "EMER", true),
            ("http://t|EMER", Some("http://s"), "EMER", false),
            ("|EMER", None, "EMER", true),
            ("|EMER", Some("http://s"), "EMER", false),
            ("http://s|", Some("http://s"), "AMB", true),
            ("AMB", Some("http://s"), "EMER", false),
        ];
        for (value, system, code, expected) in cases {
            assert_eq!(token_matches(value, system, code), expected, "{value} vs {system:?}|{code}");
        }
    }

    #[test]
    fn reference_values_match_type_and_id_or_the_url() {
        assert!(reference_matches("Patient/1", Some("Patient"), Some("1"), "Patient/1"));
        assert!(reference_matches("1", Some("Patient"), Some("1"), "Patient/1"));
        assert!(reference_matches("https://x/fhir/Patient/1", Some("Patient"), Some("1"), "Patient/1"));
        assert!(!reference_matches("Group/1", Some("Patient"), Some("1"), "Patient/1"));
        assert!(!reference_matches("Patient/2", Some("Patient"), Some("1"), "Patient/1"));
    }
}
