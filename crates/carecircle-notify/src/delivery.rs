//! Rest-hook delivery: one queue per subscription, worked in order; each notification is POSTed
//! to the endpoint with the subscription's headers, retried with exponential backoff
//! ([`RetryPolicy`]) and logged attempt by attempt ([`DeliveryRecord`]). A subscription whose
//! delivery gives up goes to status `error`; a successful handshake makes it `active`. A websocket
//! subscription's notifications are built the same way and written to its bound connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use carecircle_care::subscriptions::{ChannelType, NotificationType, SubscriptionStatus};
use carecircle_care::{
    handshake_bundle, heartbeat_bundle, notification_bundle, DeliveryOutcome, DeliveryRecord, NotificationEvent,
    NotificationTarget,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::subscriptions::{set_status, Live};
use crate::Inner;

/// What a subscription's queue sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Confirm the channel of a new subscription.
    Handshake,
    /// Nothing happened for a heartbeat period.
    Heartbeat,
    /// Events to report.
    Events(Vec<NotificationEvent>),
}

/// Works one subscription's queue until the subscription is dropped.
pub(crate) async fn run_queue(
    inner: Arc<Inner>,
    subscription_id: String,
    live: Arc<Live>,
    mut receiver: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(outgoing) = receiver.recv().await {
        let parsed = live.parsed();
        let websocket = parsed.channel.kind == ChannelType::Websocket;
        if websocket && matches!(outgoing, Outgoing::Handshake) {
            // A websocket's handshake goes to each connection as it binds (`websocket.rs`).
            continue;
        }
        let status =
            if matches!(outgoing, Outgoing::Handshake) { SubscriptionStatus::Requested } else { parsed.status };
        let target = NotificationTarget {
            base_url: &inner.config.base_url,
            subscription_id: &subscription_id,
            topic: parsed.topic,
            content: parsed.channel.content,
            status,
        };
        let notification_id = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        let events_since_start = live.events.load(Ordering::SeqCst);
        let (kind, event_number, bundle) = match &outgoing {
            Outgoing::Handshake => (NotificationType::Handshake, 0, handshake_bundle(&target, &notification_id, now)),
            Outgoing::Heartbeat => {
                (NotificationType::Heartbeat, 0, heartbeat_bundle(&target, events_since_start, &notification_id, now))
            }
            Outgoing::Events(events) => (
                NotificationType::EventNotification,
                events.iter().map(|e| e.event_number).max().unwrap_or(0),
                notification_bundle(&target, events_since_start, events, &notification_id, now),
            ),
        };
        if websocket {
            crate::websocket::deliver(&inner, &subscription_id, kind, event_number, &notification_id, &bundle);
            *live.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = OffsetDateTime::now_utc();
            continue;
        }
        let delivered = deliver(&inner, &subscription_id, &parsed, kind, event_number, &notification_id, &bundle).await;
        *live.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = OffsetDateTime::now_utc();
        match (kind, delivered) {
            (NotificationType::Handshake, true) => {
                live.parsed.lock().unwrap_or_else(|e| e.into_inner()).status = SubscriptionStatus::Active;
                set_status(&inner, &subscription_id, SubscriptionStatus::Active).await;
            }
            (_, false) => {
                live.parsed.lock().unwrap_or_else(|e| e.into_inner()).status = SubscriptionStatus::Error;
                set_status(&inner, &subscription_id, SubscriptionStatus::Error).await;
            }
            _ => {}
        }
    }
}

/// POSTs one notification until it is delivered or the retry policy gives up; true when it was
/// delivered.
async fn deliver(
    inner: &Inner,
    subscription_id: &str,
    parsed: &carecircle_care::ParsedSubscription,
    kind: NotificationType,
    event_number: u64,
    notification_id: &str,
    bundle: &Value,
) -> bool {
    let Some(endpoint) = parsed.channel.endpoint.as_deref() else { return false };
    let body = bundle.to_string();
    let timeout = parsed
        .channel
        .timeout
        .map(|s| std::time::Duration::from_secs(u64::from(s)))
        .unwrap_or(inner.config.request_timeout);
    let mut attempt = 1;
    loop {
        let mut request = inner
            .http
            .post(endpoint)
            .timeout(timeout)
            .header("content-type", "application/fhir+json")
            .body(body.clone());
        for (name, value) in &parsed.channel.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let attempted_at = OffsetDateTime::now_utc();
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => {
                DeliveryOutcome::Delivered { http_status: response.status().as_u16() }
            }
            Ok(response) => DeliveryOutcome::Failed {
                http_status: Some(response.status().as_u16()),
                error: format!("the endpoint answered {}", response.status().as_u16()),
            },
            Err(error) => DeliveryOutcome::Failed {
                http_status: None,
                error: if error.is_timeout() {
                    "timed out".into()
                } else if error.is_connect() {
                    "could not connect".into()
                } else {
                    "request failed".into()
                },
            },
        };
        let record = DeliveryRecord::new(
            &inner.config.retry,
            subscription_id,
            notification_id,
            kind,
            event_number,
            attempt,
            attempted_at,
            outcome,
        );
        let delivered = matches!(record.outcome, DeliveryOutcome::Delivered { .. });
        let next = record.next_attempt_at;
        log(inner, record);
        if delivered {
            return true;
        }
        let Some(next) = next else {
            tracing::warn!(subscription = subscription_id, "delivery gave up; the subscription goes to error");
            return false;
        };
        let wait = (next - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        tokio::time::sleep(std::time::Duration::try_from(wait).unwrap_or_default()).await;
        attempt += 1;
    }
}

pub(crate) fn log(inner: &Inner, record: DeliveryRecord) {
    let mut log = inner.log.lock().unwrap_or_else(|e| e.into_inner());
    log.push_back(record);
    while log.len() > inner.config.log_capacity {
        log.pop_front();
    }
}
