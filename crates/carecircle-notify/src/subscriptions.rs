//! Live subscriptions: which stored Subscriptions are in force, matching each change against
//! them through the subscriber's access decision, and handing notifications to each
//! subscription's delivery queue (one queue per subscription, so its notifications go out in
//! order).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use carecircle_auth::Scopes;
use carecircle_care::subscriptions::{ChannelType, SubscriptionStatus};
use carecircle_care::{
    parse_subscription, subscription_matches, Interaction, NotificationEvent, OrgId, ParsedSubscription,
    ResourceChange, Topic,
};
use carecircle_fhir::search::Handling;
use carecircle_record::{
    AccessAction, Caller, Candidate, ChangeEvent, ChangeInteraction, Principal, PrincipalKind, RecordError, RequestMeta,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::delivery::Outgoing;
use crate::{Inner, Notifier};

/// A subscription in force in this process.
pub(crate) struct Live {
    /// The parsed Subscription (its `id` is always set).
    pub(crate) parsed: Mutex<ParsedSubscription>,
    /// The subscription's delivery queue.
    pub(crate) queue: mpsc::UnboundedSender<Outgoing>,
    /// Events numbered for it so far.
    pub(crate) events: AtomicU64,
    /// When something was last sent to it, for heartbeats.
    pub(crate) last_sent: Mutex<OffsetDateTime>,
}

impl Live {
    pub(crate) fn parsed(&self) -> ParsedSubscription {
        self.parsed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The subscriptions an event is to be reported to, decided, and the version they are sent.
#[derive(Default)]
pub(crate) struct Prepared {
    subscriptions: Vec<Arc<Live>>,
    resource: Option<Value>,
}

/// What `Subscription/{id}/$status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatusReport {
    /// The status code.
    pub status: String,
    /// Events numbered since the subscription started (in this process).
    pub events_since_start: u64,
    /// The topic's canonical URL.
    pub topic: String,
}

/// The principal a subscriber's notifications are read as: its organisation's system.
pub(crate) fn subscriber_principal(subscriber: &OrgId, subscription_id: &str) -> Principal {
    Principal {
        kind: PrincipalKind::System,
        subject: format!("subscription:{subscription_id}"),
        organization: Some(subscriber.reference()),
        role: None,
        can_break_glass: false,
        purpose: "TREAT".into(),
        reason: None,
        // A constant, valid scope string: parsing cannot fail.
        scopes: Scopes::parse("system/*.rs").unwrap_or_default(),
        token_id: String::new(),
    }
}

fn interaction_of(interaction: ChangeInteraction) -> Interaction {
    match interaction {
        ChangeInteraction::Create => Interaction::Create,
        ChangeInteraction::Update => Interaction::Update,
        ChangeInteraction::Delete => Interaction::Delete,
    }
}

impl Notifier {
    pub(crate) async fn load_subscriptions(&self) -> Result<(), String> {
        let params = vec![("status".to_string(), "requested,active".to_string()), ("_count".into(), "1000".into())];
        let found = self
            .inner
            .record
            .search(Some("Subscription"), &params, Handling::Strict)
            .await
            .map_err(|e| format!("loading subscriptions: {e}"))?;
        for stored in found.page.entries {
            if let Some(body) = stored.json() {
                self.install(&body);
            }
        }
        Ok(())
    }

    /// Installs (or refreshes) a stored Subscription; a new `requested` rest-hook subscription is
    /// handshaken, a websocket one is active at once.
    fn install(&self, body: &Value) {
        let Ok(mut parsed) = parse_subscription(body) else {
            tracing::warn!("a stored Subscription does not parse; it is ignored");
            return;
        };
        let Some(id) = parsed.id.clone() else { return };
        if matches!(parsed.status, SubscriptionStatus::Off | SubscriptionStatus::Error) {
            self.inner.live.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
            crate::websocket::unbind_subscription(&self.inner, &id);
            return;
        }
        if parsed.channel.kind == ChannelType::Websocket && parsed.status == SubscriptionStatus::Requested {
            parsed.status = SubscriptionStatus::Active;
        }
        let mut live = self.inner.live.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = live.get(&id) {
            let mut current = existing.parsed.lock().unwrap_or_else(|e| e.into_inner());
            let rebind = current.channel.kind != parsed.channel.kind || current.subscriber != parsed.subscriber;
            *current = parsed;
            drop(current);
            drop(live);
            if rebind {
                // Connections bound for the old channel or subscriber have no business here now.
                crate::websocket::unbind_subscription(&self.inner, &id);
            }
            return;
        }
        let requested = parsed.status == SubscriptionStatus::Requested;
        let (sender, receiver) = mpsc::unbounded_channel();
        let entry = Arc::new(Live {
            parsed: Mutex::new(parsed),
            queue: sender,
            events: AtomicU64::new(0),
            last_sent: Mutex::new(OffsetDateTime::now_utc()),
        });
        live.insert(id.clone(), entry.clone());
        drop(live);
        tokio::spawn(crate::delivery::run_queue(self.inner.clone(), id, entry.clone(), receiver));
        if requested {
            let _ = entry.queue.send(Outgoing::Handshake);
        }
    }

    pub(crate) async fn on_subscription_change(&self, event: &ChangeEvent) {
        if event.interaction == ChangeInteraction::Delete {
            self.inner.live.write().unwrap_or_else(|e| e.into_inner()).remove(&event.id);
            crate::websocket::unbind_subscription(&self.inner, &event.id);
            return;
        }
        match self.inner.record.store().read_version("Subscription", &event.id, event.version).await {
            Ok(Some(stored)) => {
                if let Some(body) = stored.json() {
                    self.install(&body);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "reading a changed Subscription failed"),
        }
    }

    /// Checks one change against every live subscription of its resource type and queues a
    /// notification for each that matches and whose subscriber may read the resource.
    pub(crate) async fn notify(&self, event: &ChangeEvent) {
        let candidates = self.notification_candidates(event);
        let prepared = self.prepare_notifications(event, candidates).await;
        self.enqueue_notifications(event, prepared);
    }

    /// The live, active subscriptions whose topic reports `event`'s resource type, as they are
    /// now. Taken in event order (cheap, no I/O), so a subscription sees exactly the events
    /// published after it went live, however the deciding runs concurrently.
    pub(crate) fn notification_candidates(&self, event: &ChangeEvent) -> Vec<(String, Arc<Live>)> {
        let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .filter(|(_, l)| {
                let parsed = l.parsed.lock().unwrap_or_else(|e| e.into_inner());
                parsed.status == SubscriptionStatus::Active && parsed.topic.resource_type() == event.resource_type
            })
            .map(|(id, l)| (id.clone(), l.clone()))
            .collect()
    }

    /// Decides which `candidates` are told of `event`: the topic and filters match, and the
    /// subscriber may read the version (its own session: decided and audited). Does the I/O, so
    /// the runtime runs it for several events at once; numbering and queueing stay in order
    /// ([`Notifier::enqueue_notifications`]).
    pub(crate) async fn prepare_notifications(
        &self,
        event: &ChangeEvent,
        candidates: Vec<(String, Arc<Live>)>,
    ) -> Prepared {
        if candidates.is_empty() {
            return Prepared::default();
        }
        let store = self.inner.record.store();
        let read = |version: i64| async move {
            if version < 1 {
                return None;
            }
            store.read_version(&event.resource_type, &event.id, version).await.ok().flatten().and_then(|s| s.json())
        };
        let current = if event.interaction == ChangeInteraction::Delete { None } else { read(event.version).await };
        let previous = read(event.version - 1).await;
        let shown_version =
            if event.interaction == ChangeInteraction::Delete { event.version - 1 } else { event.version };
        let mut matched = Vec::new();
        for (id, live) in candidates {
            let parsed = live.parsed();
            let Some(subscriber) = parsed.subscriber.clone() else { continue };
            let care: BTreeSet<OrgId> = [subscriber.clone()].into_iter().collect();
            let change = ResourceChange {
                interaction: interaction_of(event.interaction),
                current: current.as_ref(),
                previous: previous.as_ref(),
                care_organisations: Some(&care),
            };
            if !subscription_matches(&parsed, &change) {
                continue;
            }
            match self.visible_to(&subscriber, &id, event, shown_version, parsed.topic).await {
                Ok(true) => matched.push(live),
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "deciding a notification failed"),
            }
        }
        Prepared { subscriptions: matched, resource: current }
    }

    /// Numbers and queues the notifications decided for `event` (call in event order).
    pub(crate) fn enqueue_notifications(&self, event: &ChangeEvent, prepared: Prepared) {
        for live in prepared.subscriptions {
            let number = live.events.fetch_add(1, Ordering::SeqCst) + 1;
            let notification = NotificationEvent {
                event_number: number,
                timestamp: OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.last_updated) * 1_000_000)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc()),
                interaction: interaction_of(event.interaction),
                resource_type: event.resource_type.clone(),
                id: event.id.clone(),
                resource: prepared.resource.clone(),
            };
            let _ = live.queue.send(Outgoing::Events(vec![notification]));
        }
    }

    /// Whether the subscriber may read the version a notification reveals: read through its own
    /// session (decided and audited); for the care-team-encounter topic its organisation must
    /// also be in the person's care.
    async fn visible_to(
        &self,
        subscriber: &OrgId,
        subscription_id: &str,
        event: &ChangeEvent,
        version: i64,
        topic: Topic,
    ) -> Result<bool, RecordError> {
        let principal = subscriber_principal(subscriber, subscription_id);
        let meta = RequestMeta {
            request_id: Some(format!("subscription/{subscription_id}")),
            client_address: None,
            query: Some("subscription-notification".into()),
        };
        let session = self.inner.record.session(&principal, meta)?;
        let stored = match session.vread(&event.resource_type, &event.id, &version.to_string()).await {
            Ok(stored) => stored,
            Err(RecordError::Forbidden(_) | RecordError::NotFound(_) | RecordError::Gone(_)) => return Ok(false),
            Err(error) => return Err(error),
        };
        if topic != Topic::CareTeamEncounter {
            return Ok(true);
        }
        let Some(guard) = self.inner.record.guard() else { return Ok(false) };
        let body = stored.json().unwrap_or(Value::Null);
        let candidate = Candidate {
            resource_type: &stored.resource_type,
            id: &stored.id,
            custodian: stored.custodian.as_deref(),
            resource: &body,
        };
        let verdicts = guard.access.decide(&principal, AccessAction::Read, &[candidate]).await?;
        Ok(verdicts.first().is_some_and(|v| v.permit && v.in_care_relationship == Some(true)))
    }

    pub(crate) fn send_heartbeats(&self) {
        let now = OffsetDateTime::now_utc();
        let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
        for entry in live.values() {
            let parsed = entry.parsed();
            let last = *entry.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            if parsed.status == SubscriptionStatus::Active && parsed.heartbeat_due(last, now) {
                *entry.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = now;
                let _ = entry.queue.send(Outgoing::Heartbeat);
            }
        }
    }

    /// What `$status` reports for a live subscription; `None` when it is not live here.
    pub fn status(&self, subscription_id: &str) -> Option<SubscriptionStatusReport> {
        let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
        let entry = live.get(subscription_id)?;
        let parsed = entry.parsed();
        Some(SubscriptionStatusReport {
            status: parsed.status.code().to_string(),
            events_since_start: entry.events.load(Ordering::SeqCst),
            topic: parsed.topic.url().to_string(),
        })
    }
}

/// Sets a stored Subscription's status (after a handshake, or when delivery gave up), keeping its
/// custodian. A concurrent change wins: the next event refreshes the live copy.
pub(crate) async fn set_status(inner: &Inner, subscription_id: &str, status: SubscriptionStatus) {
    let Ok(Some(stored)) = inner.record.store().read("Subscription", subscription_id).await else { return };
    let Some(mut body) = stored.json() else { return };
    if body.get("status").and_then(Value::as_str) == Some(status.code()) {
        return;
    }
    body["status"] = Value::String(status.code().into());
    let caller = Caller { custodian: stored.custodian.clone().unwrap_or_else(|| inner.config.alert_custodian.clone()) };
    if let Err(error) = inner.record.update(&caller, "Subscription", subscription_id, body, Some(stored.version)).await
    {
        tracing::warn!(%error, "could not record a subscription's new status");
    }
}
