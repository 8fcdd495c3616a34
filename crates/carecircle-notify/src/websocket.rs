//! The websocket channel of the Subscriptions Backport IG. A subscriber asks for a binding token
//! (`Subscription/$get-ws-binding-token`, checked by the API through its session), opens a
//! websocket and sends `bind-with-token <token>`; from then on the connection gets the
//! subscription's handshake, then its heartbeats and event notifications: the same Bundles, event
//! numbers and access decisions as rest-hook, written to every bound connection instead of POSTed.
//!
//! This module is transport-free: the HTTP layer owns the socket and moves text between it and a
//! [`WsConnection`]. Tokens are random (256 bits), single-use, short-lived and bound to the
//! subscriber and its subscriptions; only their SHA-256 is kept, and they are never logged.
//! Connections are per process: a token binds only on the process that issued it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use carecircle_care::subscriptions::{ChannelType, NotificationType, SubscriptionStatus};
use carecircle_care::{handshake_bundle, DeliveryOutcome, DeliveryRecord, NotificationTarget, OrgId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{Inner, Notifier};

/// The most binding tokens waiting to be used at once (all subscribers together); past it new
/// tokens are refused until some are used or expire.
const MAX_PENDING_TOKENS: usize = 10_000;

/// A binding token as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsToken {
    /// The token (43 characters of URL-safe base64); given to the caller once, never stored.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// The subscriptions it binds.
    pub subscriptions: Vec<String>,
}

/// Why a token cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsTokenError {
    /// The subscription is not active on this server (unknown here, off, in error, requested).
    NotActive(String),
    /// The subscription's channel is not `websocket`.
    NotWebsocket(String),
    /// The caller's organisation did not subscribe it.
    NotSubscriber(String),
    /// Too many tokens are waiting to be used.
    TooMany,
}

impl std::fmt::Display for WsTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsTokenError::NotActive(id) => write!(f, "Subscription/{id} is not active on this server"),
            WsTokenError::NotWebsocket(id) => write!(f, "Subscription/{id} does not use the websocket channel"),
            WsTokenError::NotSubscriber(id) => {
                write!(f, "only the subscriber (the organisation that created it) may bind to Subscription/{id}")
            }
            WsTokenError::TooMany => f.write_str("too many binding tokens are waiting to be used; try again shortly"),
        }
    }
}

/// Why `bind-with-token` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// Not a token this server issued, already used, or expired.
    UnknownToken,
    /// A subscription of the token is no longer an active websocket subscription of its subscriber.
    NotActive(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::UnknownToken => f.write_str("the token is unknown, expired or already used"),
            BindError::NotActive(id) => write!(f, "Subscription/{id} is no longer active for this token's subscriber"),
        }
    }
}

/// A token waiting to be used.
struct PendingToken {
    subscriber: OrgId,
    subscriptions: Vec<String>,
    expires_at: OffsetDateTime,
}

/// What the hub hands a connection.
enum WsEvent {
    /// A notification Bundle, as JSON text.
    Text(Arc<str>),
    /// The subscription ended (deleted, off, in error, changed channel): no more from it.
    Unbound(String),
}

/// One connection's place in a subscription's list.
struct Registration {
    connection: u64,
    sender: mpsc::Sender<WsEvent>,
    /// Set when the connection's queue overflowed and it was dropped from a subscription.
    lagged: Arc<AtomicBool>,
}

/// The websocket state of a notifier: tokens waiting to be used and the bound connections.
#[derive(Default)]
pub(crate) struct Hub {
    tokens: Mutex<HashMap<[u8; 32], PendingToken>>,
    bound: Mutex<HashMap<String, Vec<Registration>>>,
    next_connection: AtomicU64,
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// One websocket connection's side of the hub: bind tokens to it, read what to send. Dropping it
/// unbinds it from every subscription.
pub struct WsConnection {
    inner: Arc<Inner>,
    id: u64,
    sender: mpsc::Sender<WsEvent>,
    receiver: mpsc::Receiver<WsEvent>,
    lagged: Arc<AtomicBool>,
    bound: Vec<String>,
}

impl WsConnection {
    /// Binds the connection to the subscriptions of `token` (which is used up): each gets its
    /// handshake Bundle queued on this connection, then receives the subscription's heartbeats
    /// and notifications. All or nothing. Answers the bound subscription ids.
    pub fn bind(&mut self, token: &str) -> Result<Vec<String>, BindError> {
        let now = OffsetDateTime::now_utc();
        let pending = {
            let mut tokens = self.inner.ws.tokens.lock().unwrap_or_else(|e| e.into_inner());
            tokens.retain(|_, t| t.expires_at > now);
            tokens.remove(&token_key(token)).ok_or(BindError::UnknownToken)?
        };
        // Lock order: bound, then live (never the other way round).
        let mut bound = self.inner.ws.bound.lock().unwrap_or_else(|e| e.into_inner());
        let mut handshakes = Vec::new();
        {
            let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
            for id in &pending.subscriptions {
                let entry = live.get(id).ok_or_else(|| BindError::NotActive(id.clone()))?;
                let parsed = entry.parsed();
                if parsed.status != SubscriptionStatus::Active
                    || parsed.channel.kind != ChannelType::Websocket
                    || parsed.subscriber.as_ref() != Some(&pending.subscriber)
                {
                    return Err(BindError::NotActive(id.clone()));
                }
                let target = NotificationTarget {
                    base_url: &self.inner.config.base_url,
                    subscription_id: id,
                    topic: parsed.topic,
                    content: parsed.channel.content,
                    status: parsed.status,
                };
                let notification_id = uuid::Uuid::new_v4().to_string();
                let mut bundle = handshake_bundle(&target, &notification_id, now);
                // The engine's handshake is the rest-hook one (status requested, no events yet);
                // a websocket binds to a running subscription, so it says where it stands.
                set_status_parameter(&mut bundle, "status", Value::String(parsed.status.code().into()));
                let events = entry.events.load(Ordering::SeqCst);
                set_status_parameter(&mut bundle, "events-since-subscription-start", Value::String(events.to_string()));
                handshakes.push((id.clone(), notification_id, bundle.to_string()));
            }
        }
        let mut ids = Vec::new();
        for (id, notification_id, text) in handshakes {
            if self.sender.try_send(WsEvent::Text(text.into())).is_err() {
                self.lagged.store(true, Ordering::SeqCst);
            }
            log_send(&self.inner, &id, &notification_id, NotificationType::Handshake, 0, 1);
            let list = bound.entry(id.clone()).or_default();
            if !list.iter().any(|r| r.connection == self.id) {
                list.push(Registration {
                    connection: self.id,
                    sender: self.sender.clone(),
                    lagged: self.lagged.clone(),
                });
            }
            if !self.bound.contains(&id) {
                self.bound.push(id.clone());
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Whether the connection is bound to at least one subscription.
    pub fn is_bound(&self) -> bool {
        !self.bound.is_empty()
    }

    /// The next Bundle (JSON text) to write to the socket. `Err` with a reason when the
    /// connection should be closed: its last subscription ended, or it read too slowly and
    /// notifications were dropped. Waits for ever while nothing is bound. Cancel-safe.
    pub async fn next(&mut self) -> Result<Arc<str>, String> {
        loop {
            if self.lagged.load(Ordering::SeqCst) {
                return Err("the connection read too slowly and notifications were dropped; bind again".into());
            }
            match self.receiver.recv().await {
                Some(WsEvent::Text(text)) => return Ok(text),
                Some(WsEvent::Unbound(id)) => {
                    self.bound.retain(|b| *b != id);
                    if self.bound.is_empty() {
                        return Err(format!("Subscription/{id} ended"));
                    }
                }
                // The connection holds a sender itself, so the queue never closes while it lives.
                None => return Err("the notifier stopped".into()),
            }
        }
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        let mut bound = self.inner.ws.bound.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.bound {
            if let Some(list) = bound.get_mut(id) {
                list.retain(|r| r.connection != self.id);
                if list.is_empty() {
                    bound.remove(id);
                }
            }
        }
    }
}

/// Sets the value of the named parameter of a notification Bundle's status `Parameters`.
fn set_status_parameter(bundle: &mut Value, name: &str, value: Value) {
    let Some(parameters) = bundle.pointer_mut("/entry/0/resource/parameter").and_then(Value::as_array_mut) else {
        return;
    };
    if let Some(parameter) = parameters.iter_mut().find(|p| p["name"] == name) {
        if let Some(object) = parameter.as_object_mut() {
            object.retain(|key, _| !key.starts_with("value"));
            let key = if name == "status" { "valueCode" } else { "valueString" };
            object.insert(key.into(), value);
        }
    }
}

fn log_send(
    inner: &Inner,
    subscription_id: &str,
    notification_id: &str,
    kind: NotificationType,
    event_number: u64,
    connections: u32,
) {
    crate::delivery::log(
        inner,
        DeliveryRecord::new(
            &inner.config.retry,
            subscription_id,
            notification_id,
            kind,
            event_number,
            1,
            OffsetDateTime::now_utc(),
            DeliveryOutcome::Websocket { connections },
        ),
    );
}

/// Writes a notification to every connection bound to the subscription and logs it (a heartbeat
/// to nobody is not logged). A connection whose queue is full is dropped from the subscription
/// and told to close. Answers how many connections it went to.
pub(crate) fn deliver(
    inner: &Inner,
    subscription_id: &str,
    kind: NotificationType,
    event_number: u64,
    notification_id: &str,
    bundle: &Value,
) -> u32 {
    let text: Arc<str> = bundle.to_string().into();
    let mut sent = 0u32;
    {
        let mut bound = inner.ws.bound.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = bound.get_mut(subscription_id) {
            list.retain(|r| match r.sender.try_send(WsEvent::Text(text.clone())) {
                Ok(()) => {
                    sent += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    r.lagged.store(true, Ordering::SeqCst);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if list.is_empty() {
                bound.remove(subscription_id);
            }
        }
    }
    if sent > 0 || kind != NotificationType::Heartbeat {
        log_send(inner, subscription_id, notification_id, kind, event_number, sent);
    }
    sent
}

/// Unbinds every connection from a subscription that ended; each is told, and one left with no
/// subscription closes.
pub(crate) fn unbind_subscription(inner: &Inner, subscription_id: &str) {
    let removed = inner.ws.bound.lock().unwrap_or_else(|e| e.into_inner()).remove(subscription_id);
    for registration in removed.into_iter().flatten() {
        if registration.sender.try_send(WsEvent::Unbound(subscription_id.to_string())).is_err() {
            registration.lagged.store(true, Ordering::SeqCst);
        }
    }
}

impl Notifier {
    /// Issues a binding token for `subscriptions`, all of which must be active websocket
    /// subscriptions of `subscriber` (`Organization/{id}`) on this server. The caller (the API)
    /// has already read each through the requester's session. The token is valid for
    /// `NotifyConfig::websocket_token_ttl` and binds one connection.
    pub fn issue_ws_token(&self, subscriber: &str, subscriptions: &[String]) -> Result<WsToken, WsTokenError> {
        let org = OrgId::from_reference(subscriber);
        {
            let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
            for id in subscriptions {
                let entry = live.get(id).ok_or_else(|| WsTokenError::NotActive(id.clone()))?;
                let parsed = entry.parsed();
                if parsed.channel.kind != ChannelType::Websocket {
                    return Err(WsTokenError::NotWebsocket(id.clone()));
                }
                if org.is_none() || parsed.subscriber != org {
                    return Err(WsTokenError::NotSubscriber(id.clone()));
                }
                if parsed.status != SubscriptionStatus::Active {
                    return Err(WsTokenError::NotActive(id.clone()));
                }
            }
        }
        let Some(org) = org else { return Err(WsTokenError::NotSubscriber(subscriptions.join(","))) };
        let secret: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let now = OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(self.inner.config.websocket_token_ttl).unwrap_or(time::Duration::MINUTE);
        let expires_at = now + ttl;
        let mut tokens = self.inner.ws.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, t| t.expires_at > now);
        if tokens.len() >= MAX_PENDING_TOKENS {
            return Err(WsTokenError::TooMany);
        }
        tokens.insert(
            token_key(&token),
            PendingToken { subscriber: org, subscriptions: subscriptions.to_vec(), expires_at },
        );
        Ok(WsToken { token, expires_at, subscriptions: subscriptions.to_vec() })
    }

    /// A new, unbound websocket connection.
    pub fn ws_connection(&self) -> WsConnection {
        let (sender, receiver) = mpsc::channel(self.inner.config.websocket_queue.max(1));
        WsConnection {
            inner: self.inner.clone(),
            id: self.inner.ws.next_connection.fetch_add(1, Ordering::SeqCst),
            sender,
            receiver,
            lagged: Arc::new(AtomicBool::new(false)),
            bound: Vec::new(),
        }
    }

    /// How many connections are bound to a subscription in this process.
    pub fn ws_connections(&self, subscription_id: &str) -> usize {
        self.inner.ws.bound.lock().unwrap_or_else(|e| e.into_inner()).get(subscription_id).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_parameters_of_a_handshake_can_be_set() {
        let mut bundle = serde_json::json!({"entry": [{"resource": {"parameter": [
            {"name": "status", "valueCode": "requested"},
            {"name": "events-since-subscription-start", "valueString": "0"}
        ]}}]});
        set_status_parameter(&mut bundle, "status", Value::String("active".into()));
        set_status_parameter(&mut bundle, "events-since-subscription-start", Value::String("7".into()));
        assert_eq!(
            bundle["entry"][0]["resource"]["parameter"][0],
            serde_json::json!({"name": "status", "valueCode": "active"})
        );
        assert_eq!(
            bundle["entry"][0]["resource"]["parameter"][1],
            serde_json::json!({"name": "events-since-subscription-start", "valueString": "7"})
        );
    }

    #[test]
    fn tokens_are_kept_only_as_their_hash() {
        let key = token_key("abc");
        assert_ne!(&key[..3], b"abc");
        assert_eq!(key, token_key("abc"));
        assert_ne!(key, token_key("abd"));
    }
}
