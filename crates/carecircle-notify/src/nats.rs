//! Change events through NATS JetStream, for several server processes sharing one database
//! (`carecircle serve --nats URL`). See `docs/subscriptions.md`, "Several server processes".
//!
//! - **Publishing** ([`NatsBus`]): every [`ChangeEvent`] is published, after the commit and
//!   before the write is answered, to the subject `{stream}.change.{ResourceType}` of the stream
//!   `{stream}`, with the header `Nats-Msg-Id: {type}/{id}/{version}` so that a publish retried
//!   within the stream's duplicate window is stored once. When NATS does not acknowledge, the
//!   write is still answered and the events are retried in order in the background (in memory).
//! - **Work queue**: one durable pull consumer, `{stream}-notifier`, shared by every process:
//!   each event is handed to one process, which runs the notifier on it (notifications, alerts)
//!   and acknowledges it only once its effects are done: the alert `Communication`s stored and,
//!   for every rest-hook notification it queued, the first delivery attempt recorded in the
//!   delivery log. An event not acknowledged within [`ACK_WAIT`] (the process died) is handed to
//!   another process.
//! - **Broadcast**: every process also reads the `Subscription` changes through its own ordered,
//!   ephemeral consumer, so each keeps the whole live set whichever process handled the change
//!   (a rest-hook subscription still `requested` is left to the process that handshakes it).
//! - **Periodic work**: every process escalates overdue alerts (each change is an `If-Match`
//!   write, so a process that loses the race re-reads and finds nothing left to do); heartbeats
//!   are sent only by the process holding the `ticker` lease in the key-value bucket
//!   `{stream}-lease` (renewed every tick, expiring after three ticks).

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv, stream};
use async_trait::async_trait;
use carecircle_care::subscriptions::ChannelType;
use carecircle_record::{ChangeEvent, ChangeInteraction, EventBus};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::Notifier;

/// How long the work-queue consumer waits for an acknowledgement before handing the event to
/// another process. A process still working on an event says so every third of it.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// How long the stream keeps events (a consumer that fell behind catches up within it).
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The stream's duplicate window: a publish retried within it with the same `Nats-Msg-Id` is
/// stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long the first publish of a write's events may take before the write is answered anyway
/// and the events are retried in the background.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a processed event waits for its rest-hook delivery attempts before it is
/// acknowledged anyway.
const MAX_DELIVERY_WAIT: Duration = Duration::from_secs(3600);

/// How long the heartbeat lease lasts unless renewed (every tick).
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// The key of the heartbeat lease.
const LEASE_KEY: &str = "ticker";

/// A connection to NATS JetStream set up for one stream of change events: the stream, the shared
/// work-queue consumer and the lease bucket exist once [`NatsEvents::connect`] returns.
#[derive(Clone)]
pub struct NatsEvents {
    jetstream: jetstream::Context,
    stream_name: String,
    stream: stream::Stream,
    work: consumer::PullConsumer,
    lease: kv::Store,
    process_id: String,
}

/// A stream name usable as a NATS stream, subject token, consumer and bucket name.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `url` with any user name, password or token removed, for messages.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|server| match server.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host)),
            None => server.rsplit_once('@').map_or(server, |(_, host)| host).to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl NatsEvents {
    /// Connects to the NATS server(s) at `url` and makes sure the stream `stream_name`, its
    /// work-queue consumer and its lease bucket exist. Fails (without retrying) when NATS cannot
    /// be reached or has no JetStream; the error never contains the URL's credentials.
    pub async fn connect(url: &str, stream_name: &str) -> Result<NatsEvents, String> {
        NatsEvents::connect_with_ack_wait(url, stream_name, ACK_WAIT).await
    }

    /// [`NatsEvents::connect`] with another acknowledgement wait for a new work-queue consumer
    /// (tests; an existing consumer keeps its own).
    pub async fn connect_with_ack_wait(url: &str, stream_name: &str, ack_wait: Duration) -> Result<NatsEvents, String> {
        if !valid_stream_name(stream_name) {
            return Err(format!("the NATS stream name '{stream_name}' may only contain letters, digits, '-' and '_'"));
        }
        let shown = redacted(url);
        let client = async_nats::ConnectOptions::new()
            .name("carecircle")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| format!("cannot connect to NATS at {shown}: {}", kind_of(&e)))?;
        let jetstream = jetstream::new(client);
        let config = stream::Config {
            name: stream_name.to_string(),
            subjects: vec![format!("{stream_name}.change.>")],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: STREAM_MAX_AGE,
            duplicate_window: DUPLICATE_WINDOW,
            description: Some("carecircle change events".into()),
            ..Default::default()
        };
        let stream = jetstream.get_or_create_stream(config).await.map_err(|e| {
            format!("NATS at {shown}: cannot open the JetStream stream '{stream_name}' (is JetStream enabled?): {e}")
        })?;
        let work = stream
            .get_or_create_consumer(
                &format!("{stream_name}-notifier"),
                consumer::pull::Config {
                    durable_name: Some(format!("{stream_name}-notifier")),
                    description: Some("carecircle notifier: each change event handled by one process".into()),
                    filter_subject: format!("{stream_name}.change.>"),
                    // Events written before the first server started were never meant for it.
                    deliver_policy: consumer::DeliverPolicy::New,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("NATS at {shown}: cannot open the work-queue consumer: {e}"))?;
        // The lease bucket's stream is made as the key-value API would make it; the client's own
        // bucket creation first asks for account details that NATS servers before 2.10 describe
        // differently.
        let bucket = format!("{stream_name}-lease");
        jetstream
            .get_or_create_stream(stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("carecircle: which process sends heartbeats".into()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: LEASE_TTL,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("NATS at {shown}: cannot open the lease bucket: {e}"))?;
        let lease = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|e| format!("NATS at {shown}: cannot open the lease bucket: {e}"))?;
        Ok(NatsEvents {
            jetstream,
            stream_name: stream_name.to_string(),
            stream,
            work,
            lease,
            process_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// The bus the record's write path publishes on.
    pub fn bus(&self) -> NatsBus {
        let (sender, receiver) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(retry_backlog(self.jetstream.clone(), self.stream_name.clone(), receiver, pending.clone()));
        NatsBus { jetstream: self.jetstream.clone(), stream_name: self.stream_name.clone(), backlog: sender, pending }
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// Deletes the stream and the lease bucket (tests, decommissioning).
    pub async fn delete(self) -> Result<(), String> {
        self.jetstream
            .delete_stream(format!("KV_{}-lease", self.stream_name))
            .await
            .map_err(|e| format!("deleting the lease bucket: {e}"))?;
        self.jetstream.delete_stream(&self.stream_name).await.map_err(|e| format!("deleting the stream: {e}"))?;
        Ok(())
    }

    /// How many events the stream holds.
    pub async fn stored_events(&self) -> Result<u64, String> {
        let info = self.stream.get_info().await.map_err(|e| format!("reading the stream: {e}"))?;
        Ok(info.state.messages)
    }

    /// Events of the work queue not yet acknowledged: waiting to be taken, or taken and not yet
    /// done.
    pub async fn outstanding_events(&self) -> Result<u64, String> {
        let info = self.work.get_info().await.map_err(|e| format!("reading the work-queue consumer: {e}"))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Takes up to `max` events from the work queue and never acknowledges them, as a process
    /// that dies while handling them would (tests of redelivery). Returns how many it took.
    #[doc(hidden)]
    pub async fn take_and_abandon(&self, max: usize) -> Result<usize, String> {
        let batch = self
            .work
            .fetch()
            .max_messages(max)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(|e| format!("fetching: {e}"))?;
        Ok(batch.filter(|m| std::future::ready(m.is_ok())).count().await)
    }

    /// Tries to take or renew the heartbeat lease; true while this process holds it.
    async fn hold_lease(&self, revision: &Mutex<Option<u64>>) -> bool {
        let held = *revision.lock().unwrap_or_else(|e| e.into_inner());
        let value: Vec<u8> = self.process_id.clone().into_bytes();
        let renewed = match held {
            Some(r) => self.lease.update(LEASE_KEY, value.into(), r).await.ok(),
            None => self.lease.create(LEASE_KEY, value.into()).await.ok(),
        };
        *revision.lock().unwrap_or_else(|e| e.into_inner()) = renewed;
        renewed.is_some()
    }
}

/// A short, secret-free description of an error.
fn kind_of(error: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind as Kind;
    match error.kind() {
        Kind::Io => "the server could not be reached (is NATS running?)".into(),
        Kind::TimedOut => "timed out".into(),
        Kind::Authentication | Kind::AuthorizationViolation => "the server refused the credentials".into(),
        Kind::Tls => "the TLS handshake failed".into(),
        other => other.to_string(),
    }
}

/// The JSON an event travels as.
pub fn encode_event(event: &ChangeEvent) -> Vec<u8> {
    json!({
        "resourceType": event.resource_type,
        "id": event.id,
        "version": event.version,
        "interaction": event.interaction.code(),
        "custodian": event.custodian,
        "lastUpdated": event.last_updated,
    })
    .to_string()
    .into_bytes()
}

/// The event a message carries; `None` when it is not one.
pub fn decode_event(payload: &[u8]) -> Option<ChangeEvent> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    Some(ChangeEvent {
        resource_type: value.get("resourceType")?.as_str()?.to_string(),
        id: value.get("id")?.as_str()?.to_string(),
        version: value.get("version")?.as_i64()?,
        interaction: ChangeInteraction::from_code(value.get("interaction")?.as_str()?)?,
        custodian: value.get("custodian").and_then(Value::as_str).map(str::to_string),
        last_updated: value.get("lastUpdated").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// The `Nats-Msg-Id` of an event: the same for every publish of the same version.
pub fn message_id(event: &ChangeEvent) -> String {
    format!("{}/{}/{}", event.resource_type, event.id, event.version)
}

/// An [`EventBus`] publishing to a JetStream stream.
pub struct NatsBus {
    jetstream: jetstream::Context,
    stream_name: String,
    backlog: mpsc::UnboundedSender<Vec<ChangeEvent>>,
    pending: Arc<AtomicUsize>,
}

impl NatsBus {
    /// Batches of events waiting to be retried.
    pub fn backlog(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// Publishes `events` and waits for the server's acknowledgement of each.
async fn publish_all(jetstream: &jetstream::Context, stream_name: &str, events: &[ChangeEvent]) -> Result<(), String> {
    let mut acks = Vec::with_capacity(events.len());
    for event in events {
        let subject = format!("{stream_name}.change.{}", event.resource_type);
        let message = jetstream::message::PublishMessage::build()
            .payload(encode_event(event).into())
            .message_id(message_id(event));
        let ack = jetstream.send_publish(subject, message).await.map_err(|e| format!("publish: {:?}", e.kind()))?;
        acks.push(ack);
    }
    for ack in acks {
        match tokio::time::timeout(PUBLISH_TIMEOUT, ack.into_future()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("acknowledgement: {:?}", e.kind())),
            Err(_) => return Err("no acknowledgement in time".into()),
        }
    }
    Ok(())
}

/// Retries batches that could not be published, in order, until each is stored.
async fn retry_backlog(
    jetstream: jetstream::Context,
    stream_name: String,
    mut receiver: mpsc::UnboundedReceiver<Vec<ChangeEvent>>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(events) = receiver.recv().await {
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0_u32;
        loop {
            match publish_all(&jetstream, &stream_name, &events).await {
                Ok(()) => break,
                Err(error) => {
                    attempts += 1;
                    if attempts.is_power_of_two() {
                        tracing::warn!(%error, attempts, events = events.len(), "change events still not published to NATS; retrying");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        if attempts > 0 {
            tracing::info!(attempts, "change events published to NATS after retrying");
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, events: Vec<ChangeEvent>) {
        if self.pending.load(Ordering::SeqCst) == 0 {
            match publish_all(&self.jetstream, &self.stream_name, &events).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "publishing change events to NATS failed; retrying in the background")
                }
            }
        }
        // Behind earlier batches still being retried, so this process's events stay in order.
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.backlog.send(events).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::error!("the NATS retry queue is gone; change events were lost");
        }
    }
}

/// A handled event whose acknowledgement waits for rest-hook delivery attempts.
struct PendingAck {
    acker: jetstream::message::Acker,
    /// (subscription id, event number) pairs whose first attempt must be logged.
    waits: Vec<(String, u64)>,
    since: Instant,
    last_progress: Instant,
}

impl Notifier {
    /// Starts the runtime on NATS: loads the stored subscriptions, then handles this process's
    /// share of the work queue, follows every Subscription change, and ticks (alert escalation;
    /// heartbeats while holding the lease). Runs until the process ends.
    pub async fn start_nats(&self, nats: NatsEvents) -> Result<tokio::task::JoinHandle<()>, String> {
        // Follow Subscription changes from now on before loading, so none falls in between.
        let broadcast = nats
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: format!("{}.change.Subscription", nats.stream_name),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("following Subscription changes on NATS: {e}"))?
            .messages()
            .await
            .map_err(|e| format!("following Subscription changes on NATS: {e}"))?;
        self.load_subscriptions().await?;

        let follower = self.clone();
        tokio::spawn(async move {
            let mut broadcast = broadcast;
            while let Some(item) = broadcast.next().await {
                match item {
                    Ok(message) => {
                        if let Some(event) = decode_event(&message.payload) {
                            follower.follow_subscription_change(&event).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "reading Subscription changes from NATS"),
                }
            }
            tracing::error!(
                "the NATS Subscription feed ended; other processes' Subscription changes are no longer seen"
            );
        });

        let ticker = self.clone();
        let tick_nats = nats.clone();
        tokio::spawn(async move {
            let revision = Mutex::new(None);
            let mut interval = tokio::time::interval(ticker.inner.config.tick_every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = ticker.escalate_overdue().await {
                    tracing::error!(%error, "escalating alerts failed");
                }
                if tick_nats.hold_lease(&revision).await {
                    ticker.send_heartbeats();
                }
            }
        });

        let (ack_sender, ack_receiver) = mpsc::unbounded_channel();
        let progress_every = (nats.work.cached_info().config.ack_wait / 3).max(Duration::from_millis(100));
        tokio::spawn(self.clone().acknowledge_after_delivery(ack_receiver, progress_every));

        let worker = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                match nats.work.messages().await {
                    Ok(mut messages) => {
                        while let Some(item) = messages.next().await {
                            match item {
                                Ok(message) => worker.work_on(message, &ack_sender).await,
                                Err(error) => tracing::warn!(%error, "reading change events from NATS"),
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "pulling change events from NATS"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }

    /// Handles one event of the work queue and acknowledges it once its effects are done.
    async fn work_on(&self, message: jetstream::Message, acks: &mpsc::UnboundedSender<PendingAck>) {
        let (message, acker) = message.split();
        let Some(event) = decode_event(&message.payload) else {
            tracing::warn!("a message on the change-event stream is not a change event; dropped");
            let _ = acker.ack_with(jetstream::AckKind::Term).await;
            return;
        };
        let before = self.queued_rest_hook_events();
        self.handle(event).await;
        let after = self.queued_rest_hook_events();
        let waits: Vec<(String, u64)> =
            after.into_iter().filter(|(id, number)| before.get(id).is_none_or(|b| number > b)).collect();
        if waits.is_empty() {
            if let Err(error) = acker.ack().await {
                tracing::warn!(%error, "acknowledging a change event failed; it may be handled again");
            }
            return;
        }
        let now = Instant::now();
        let _ = acks.send(PendingAck { acker, waits, since: now, last_progress: now });
    }

    /// Events numbered so far for each live rest-hook subscription.
    fn queued_rest_hook_events(&self) -> HashMap<String, u64> {
        let live = self.inner.live.read().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .filter(|(_, l)| l.parsed.lock().unwrap_or_else(|e| e.into_inner()).channel.kind == ChannelType::RestHook)
            .map(|(id, l)| (id.clone(), l.events.load(Ordering::SeqCst)))
            .collect()
    }

    /// Acknowledges handled events once the first delivery attempt of each of their
    /// notifications is in the delivery log (or the subscription is gone), telling NATS that work
    /// is in progress meanwhile (every third of the consumer's acknowledgement wait).
    async fn acknowledge_after_delivery(
        self,
        mut receiver: mpsc::UnboundedReceiver<PendingAck>,
        progress_every: Duration,
    ) {
        let mut pending: Vec<PendingAck> = Vec::new();
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = receiver.recv() => match item {
                    Some(ack) => pending.push(ack),
                    None => return,
                },
                _ = interval.tick(), if !pending.is_empty() => {
                    let attempted = self.highest_attempted(&pending);
                    let live: Vec<String> = self.inner.live.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
                    let mut still = Vec::with_capacity(pending.len());
                    for mut ack in pending.drain(..) {
                        let done = ack.waits.iter().all(|(id, number)| {
                            attempted.get(id).is_some_and(|a| a >= number) || !live.contains(id)
                        });
                        if done || ack.since.elapsed() > MAX_DELIVERY_WAIT {
                            if let Err(error) = ack.acker.ack().await {
                                tracing::warn!(%error, "acknowledging a change event failed; it may be handled again");
                            }
                        } else {
                            if ack.last_progress.elapsed() > progress_every {
                                let _ = ack.acker.ack_with(jetstream::AckKind::Progress).await;
                                ack.last_progress = Instant::now();
                            }
                            still.push(ack);
                        }
                    }
                    pending = still;
                }
            }
        }
    }

    /// The highest event number with a logged delivery attempt, for the subscriptions `pending`
    /// waits on.
    fn highest_attempted(&self, pending: &[PendingAck]) -> HashMap<String, u64> {
        let mut wanted: HashMap<String, u64> =
            pending.iter().flat_map(|p| p.waits.iter().map(|(id, _)| (id.clone(), 0))).collect();
        // Only attempts made since the oldest waiting event was taken (less a generous margin for
        // the time handling it took) can count: the log is read newest first up to there.
        let oldest = pending.iter().map(|p| p.since.elapsed()).max().unwrap_or_default();
        let cutoff = time::Duration::try_from(oldest + Duration::from_secs(600))
            .ok()
            .and_then(|back| time::OffsetDateTime::now_utc().checked_sub(back))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        for record in log.iter().rev().take_while(|r| r.attempted_at >= cutoff) {
            if let Some(highest) = wanted.get_mut(&record.subscription_id) {
                *highest = (*highest).max(record.event_number);
            }
        }
        wanted
    }

    /// A Subscription change seen on the broadcast feed: installed, refreshed or dropped here too,
    /// except a rest-hook subscription still `requested`, which the process handling the change
    /// from the work queue handshakes (its outcome, `active` or `error`, is another change).
    async fn follow_subscription_change(&self, event: &ChangeEvent) {
        if event.interaction != ChangeInteraction::Delete {
            let stored = self.inner.record.store().read_version("Subscription", &event.id, event.version).await;
            if let Ok(Some(stored)) = stored {
                if let Some(parsed) = stored.json().and_then(|b| carecircle_care::parse_subscription(&b).ok()) {
                    let requested = parsed.status == carecircle_care::subscriptions::SubscriptionStatus::Requested;
                    let known = self.inner.live.read().unwrap_or_else(|e| e.into_inner()).contains_key(&event.id);
                    if requested && parsed.channel.kind == ChannelType::RestHook && !known {
                        return;
                    }
                }
            }
        }
        self.on_subscription_change(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_name_their_version() {
        let event = ChangeEvent {
            resource_type: "Encounter".into(),
            id: "e1".into(),
            version: 3,
            interaction: ChangeInteraction::Update,
            custodian: Some("Organization/org-a".into()),
            last_updated: 1_700_000_000_000,
        };
        assert_eq!(decode_event(&encode_event(&event)), Some(event.clone()));
        assert_eq!(message_id(&event), "Encounter/e1/3");
        assert_eq!(decode_event(b"{\"resourceType\":\"Encounter\"}"), None);
        assert_eq!(decode_event(b"not json"), None);
    }

    #[test]
    fn credentials_are_kept_out_of_messages() {
        assert_eq!(redacted("nats://user:secret@127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redacted("nats://token@a:4222,nats://b:4222"), "nats://a:4222,nats://b:4222");
        assert_eq!(redacted("127.0.0.1:4222"), "127.0.0.1:4222");
    }

    /// A NATS JetStream server on 127.0.0.1:4222, as on every machine here and in CI.
    const NATS: &str = "nats://127.0.0.1:4222";

    fn unique_stream() -> String {
        format!("carecircle-unit-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn one_process_at_a_time_holds_the_heartbeat_lease() {
        let stream = unique_stream();
        let first = NatsEvents::connect(NATS, &stream).await.expect("NATS on 127.0.0.1:4222");
        let second = NatsEvents::connect(NATS, &stream).await.expect("NATS");
        let (mine, theirs) = (Mutex::new(None), Mutex::new(None));
        assert!(first.hold_lease(&mine).await, "the first to ask takes it");
        assert!(!second.hold_lease(&theirs).await, "held by another");
        assert!(first.hold_lease(&mine).await, "the holder renews it");
        assert!(!second.hold_lease(&theirs).await);
        // The holder stops (its lease is gone, as after expiry): the other takes over.
        first.lease.purge(LEASE_KEY).await.expect("purge");
        assert!(second.hold_lease(&theirs).await, "taken over");
        assert!(!first.hold_lease(&mine).await, "the old holder's revision is stale");
        first.delete().await.expect("clean up");
    }

    #[tokio::test]
    async fn a_version_published_twice_is_stored_once() {
        let stream = unique_stream();
        let nats = NatsEvents::connect(NATS, &stream).await.expect("NATS on 127.0.0.1:4222");
        let bus = nats.bus();
        let event = |version| ChangeEvent {
            resource_type: "CarePlan".into(),
            id: "p1".into(),
            version,
            interaction: ChangeInteraction::Update,
            custodian: None,
            last_updated: 0,
        };
        bus.publish(vec![event(1), event(2)]).await;
        bus.publish(vec![event(2)]).await;
        assert_eq!(bus.backlog(), 0);
        assert_eq!(nats.stored_events().await.expect("stream"), 2, "the retried version is a duplicate");
        nats.delete().await.expect("clean up");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error_without_credentials() {
        let error = NatsEvents::connect("nats://carecircle:s3cret@127.0.0.1:1", "carecircle-events")
            .await
            .err()
            .expect("nothing listens on port 1");
        assert!(error.contains("cannot connect to NATS at nats://127.0.0.1:1"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn stream_names_are_checked() {
        assert!(valid_stream_name("carecircle-events"));
        assert!(valid_stream_name("t_1"));
        assert!(!valid_stream_name("a.b"));
        assert!(!valid_stream_name("a b"));
        assert!(!valid_stream_name(""));
        assert!(!valid_stream_name("a>"));
    }
}
