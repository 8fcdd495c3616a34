//! The event runtime of carecircle: what happens after a write. The record's write path publishes
//! a change event per changed resource ([`carecircle_record::PublishingStore`]); the [`Notifier`]
//! reads them and
//!
//! - keeps the live topic-based Subscriptions (`subscriptions`), checks every change against them
//!   through the subscriber's access decision and delivers notification Bundles over rest-hook
//!   with handshake, heartbeats, retries with backoff and a delivery log (`delivery`), or to the
//!   websockets bound to them with a binding token (`websocket`);
//! - evaluates care-plan triggers when an Encounter is stored and raises, merges, escalates and
//!   records alerts as `Communication`s kept in the store (`alerts`).
//!
//! Events reach it through the in-process bus (one server) or through NATS JetStream (`nats`:
//! several server processes sharing one database, each event handled by one of them).
//!
//! The pure rules are `carecircle-care`'s; this crate does the I/O and the scheduling. See
//! `docs/subscriptions.md`.

mod alerts;
mod bus;
mod delivery;
mod nats;
mod subscriptions;
mod websocket;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use carecircle_care::{AlertPolicy, DeliveryRecord, EventClassifier, RetryPolicy};
use carecircle_record::{ChangeEvent, Record};

pub use alerts::{AlertView, ALERT_CATEGORY_CODE, ALERT_STATE_EXTENSION};
pub use bus::{EventStream, InProcessBus};
pub use nats::{NatsBus, NatsEvents};
pub use subscriptions::SubscriptionStatusReport;
pub use websocket::{BindError, WsConnection, WsToken, WsTokenError};

/// How the runtime behaves.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The server's public base URL, for absolute references in notifications.
    pub base_url: String,
    /// Retries of failed rest-hook deliveries.
    pub retry: RetryPolicy,
    /// Alert acknowledgement deadline and merge window.
    pub alerts: AlertPolicy,
    /// How often to look for overdue alerts and due heartbeats.
    pub tick_every: std::time::Duration,
    /// How Encounters are classified into trigger events.
    pub classifier: EventClassifier,
    /// The partnership: sender of every alert `Communication`, and its holder when the alerted
    /// agency is not a registered organisation (otherwise the agency's partner holds it).
    pub alert_custodian: String,
    /// How long a rest-hook endpoint may take to answer when the subscription sets no timeout.
    pub request_timeout: std::time::Duration,
    /// Lines of the delivery log kept in memory.
    pub log_capacity: usize,
    /// How long a websocket binding token (`$get-ws-binding-token`) stays usable.
    pub websocket_token_ttl: std::time::Duration,
    /// Notifications queued for one websocket connection before it counts as too slow and is
    /// closed.
    pub websocket_queue: usize,
}

impl NotifyConfig {
    /// The defaults: the engine's retry and alert policies, a tick every 5 s, a 10 s timeout.
    pub fn new(base_url: impl Into<String>, alert_custodian: impl Into<String>) -> NotifyConfig {
        NotifyConfig {
            base_url: base_url.into(),
            retry: RetryPolicy::default(),
            alerts: AlertPolicy::default(),
            tick_every: std::time::Duration::from_secs(5),
            classifier: EventClassifier::default_rules(),
            alert_custodian: alert_custodian.into(),
            request_timeout: std::time::Duration::from_secs(10),
            log_capacity: 10_000,
            websocket_token_ttl: std::time::Duration::from_secs(300),
            websocket_queue: 1024,
        }
    }
}

/// Change events decided or alerted at once by the runtime.
const IN_FLIGHT: usize = 64;

/// What handling an event left to do in event order: number and queue its notifications.
enum Handled {
    Notify(ChangeEvent, subscriptions::Prepared),
}

/// The running event runtime. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) record: Record,
    pub(crate) config: NotifyConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) live: RwLock<HashMap<String, Arc<subscriptions::Live>>>,
    pub(crate) log: Mutex<VecDeque<DeliveryRecord>>,
    /// The partner directory for classifying Encounters and when it was loaded: reloaded after a
    /// minute (another process may have changed it) or when this process sees an Organization
    /// change.
    pub(crate) directory: Mutex<Option<(std::time::Instant, Arc<carecircle_care::OrgDirectory>)>>,
    /// Websocket binding tokens and bound connections.
    pub(crate) ws: websocket::Hub,
}

impl Notifier {
    /// A notifier over `record` (which must be guarded: every notification is read through the
    /// subscriber's access decision). Nothing runs until [`Notifier::start`].
    pub fn new(record: Record, config: NotifyConfig) -> Result<Notifier, String> {
        if record.guard().is_none() {
            return Err("the notifier needs a guarded record".into());
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                record,
                config,
                http,
                live: RwLock::new(HashMap::new()),
                log: Mutex::new(VecDeque::new()),
                directory: Mutex::new(None),
                ws: websocket::Hub::default(),
            }),
        })
    }

    /// Loads the stored subscriptions (handshaking those still `requested`), then handles the
    /// events of `stream` and ticks (alert escalation, heartbeats) until the stream ends.
    pub async fn start(&self, mut stream: EventStream) -> Result<tokio::task::JoinHandle<()>, String> {
        self.load_subscriptions().await?;
        let ticker = self.clone();
        let tick_every = self.inner.config.tick_every;
        let tick = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick_every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                ticker.tick().await;
            }
        });
        // Events are read in order; the deciding and alerting of up to `IN_FLIGHT` of them run at
        // once (their reads and audit appends share commits), and their notifications are
        // numbered and queued in event order by the consumer below.
        let (ordered, mut in_order) = tokio::sync::mpsc::channel::<tokio::task::JoinHandle<Handled>>(IN_FLIGHT);
        let reader = self.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                // A subscription's change applies before any later event is matched.
                if event.resource_type == "Subscription" {
                    reader.on_subscription_change(&event).await;
                    continue;
                }
                let handled = reader.begin(event);
                if ordered.send(handled).await.is_err() {
                    break;
                }
            }
        });
        let consumer = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(handled) = in_order.recv().await {
                match handled.await {
                    Ok(Handled::Notify(event, prepared)) => consumer.enqueue_notifications(&event, prepared),
                    Err(error) => tracing::error!(%error, "handling a change event failed"),
                }
            }
            tick.abort();
        }))
    }

    /// Starts handling one (non-Subscription) event: bookkeeping that must follow event order
    /// is done now (the partner directory, which subscriptions are live), the rest in a task
    /// whose result the runtime consumes in order.
    fn begin(&self, event: ChangeEvent) -> tokio::task::JoinHandle<Handled> {
        let handler = self.clone();
        if event.resource_type == "Organization" {
            *self.inner.directory.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let candidates = self.notification_candidates(&event);
        tokio::spawn(async move {
            let prepared = handler.prepare_notifications(&event, candidates).await;
            if event.resource_type == "Encounter" {
                if let Err(error) = handler.raise_alerts(&event).await {
                    tracing::error!(%error, "evaluating care-plan triggers failed");
                }
            }
            Handled::Notify(event, prepared)
        })
    }

    /// Handles one change event: subscription bookkeeping, notifications, alerts.
    pub async fn handle(&self, event: ChangeEvent) {
        if event.resource_type == "Subscription" {
            self.on_subscription_change(&event).await;
            return;
        }
        if event.resource_type == "Organization" {
            *self.inner.directory.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.notify(&event).await;
        if event.resource_type == "Encounter" {
            if let Err(error) = self.raise_alerts(&event).await {
                tracing::error!(%error, "evaluating care-plan triggers failed");
            }
        }
    }

    /// One round of periodic work: escalates overdue alerts and sends due heartbeats.
    pub async fn tick(&self) {
        if let Err(error) = self.escalate_overdue().await {
            tracing::error!(%error, "escalating alerts failed");
        }
        self.send_heartbeats();
    }

    /// The delivery log, oldest first (at most `log_capacity` lines), for one subscription or all.
    pub fn delivery_log(&self, subscription_id: Option<&str>) -> Vec<DeliveryRecord> {
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().filter(|r| subscription_id.is_none_or(|id| r.subscription_id == id)).cloned().collect()
    }

    /// The record the notifier reads and writes.
    pub fn record(&self) -> &Record {
        &self.inner.record
    }

    /// The settings.
    pub fn config(&self) -> &NotifyConfig {
        &self.inner.config
    }
}
