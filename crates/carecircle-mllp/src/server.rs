//! The MLLP listener: accepts connections, reads frames, hands each parsed message to a
//! [`MessageHandler`] and writes the acknowledgement only after the handler returned.
//!
//! Each connection is served by one task that hands its messages over strictly in order (HL7
//! senders rely on that: an A03 must not overtake its A01) and answers them in that order. A
//! sender that pipelines (sends several messages before reading their ACKs) has up to
//! `MllpConfig::max_pipelined` of them in the handler at once: the handler takes them in
//! ([`MessageHandler::accept`]) one after another and may store them together.
//! Throughput comes from many connections, pipelining and the handler batching its durable
//! writes. Every frame gets an answer: unparseable or unsupported messages an `AR`/`AE`, a
//! handler failure or panic an `AE`; only I/O errors, idle timeouts and shutdown end a connection.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use carecircle_hl7::{build_ack, parse_message, AckCode, AckHeader, ErrorCode, Message, Rejection};
use futures_util::{FutureExt, SinkExt, StreamExt};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{Frame, MllpCodec};

/// One message handed to the handler.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The message bytes as received (without MLLP framing), for storing the original.
    pub raw: &'a [u8],
    /// The parsed message.
    pub message: &'a Message,
    /// The sender's address.
    pub peer: SocketAddr,
}

/// What the handler did with a message; it decides the acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutcome {
    /// Stored durably: answered `AA`.
    Stored,
    /// Not processed because of the message itself (unsupported, invalid, unknown partner):
    /// answered with the rejection's `AE`/`AR` and ERR segment.
    Rejected(Rejection),
    /// Not processed because of a failure of the receiver (storage unavailable): answered `AE`
    /// with error 207 so the sender sends it again. The text goes to the sender.
    Failed(String),
}

/// The outcome of a message the handler has taken in, still to come.
pub type PendingOutcome = Pin<Box<dyn Future<Output = HandlerOutcome> + Send + 'static>>;

/// Processes messages; implemented by the application (ADT ingest into the record).
///
/// The acknowledgement is written only after the outcome is known, so an implementation
/// returns [`HandlerOutcome::Stored`] only once its write is durable.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one parsed message. Calls for one connection never overlap; calls for different
    /// connections do.
    fn handle(&self, inbound: Inbound<'_>) -> impl Future<Output = HandlerOutcome> + Send;

    /// Takes one message in and returns its outcome to come, so that the listener can hand over
    /// a connection's next pipelined message before this one is stored. Calls for one
    /// connection are made in the order received, each after the previous call returned; an
    /// implementation must apply one connection's messages in the order of these calls. The
    /// default handles the message completely before returning (no overlap within a
    /// connection).
    fn accept(&self, inbound: Inbound<'_>) -> impl Future<Output = PendingOutcome> + Send {
        // Yielding a future is the point: the listener awaits the outcome later.
        #[allow(clippy::async_yields_async)]
        async move {
            let outcome = self.handle(inbound).await;
            Box::pin(std::future::ready(outcome)) as PendingOutcome
        }
    }
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct MllpConfig {
    /// Frames longer than this are answered `AR` without being buffered (default 1 MiB).
    pub max_frame_bytes: usize,
    /// A connection with no complete frame for this long is closed (default 15 minutes;
    /// `None` keeps idle connections open).
    pub idle_timeout: Option<Duration>,
    /// At most this many connections are served at once; further ones wait to be accepted
    /// (default 256).
    pub max_connections: usize,
    /// An acknowledgement not accepted by the peer's socket within this time (a sender that
    /// stopped reading) closes the connection (default 60 s).
    pub write_timeout: Duration,
    /// On shutdown, how long connections may take to finish the message in hand (default 10 s).
    pub shutdown_grace: Duration,
    /// Messages of one connection in the handler at once when the sender pipelines (default
    /// 64); further ones stay unread until the first is answered. At least 1.
    pub max_pipelined: usize,
}

impl Default for MllpConfig {
    fn default() -> Self {
        MllpConfig {
            max_frame_bytes: 1 << 20,
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            max_connections: 256,
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            max_pipelined: 64,
        }
    }
}

/// Unique control ids for the acknowledgements this process sends: the start time in seconds,
/// then a counter (at most 20 characters, the v2.5 limit of MSH-10).
struct AckIds {
    prefix: u64,
    counter: AtomicU64,
}

impl AckIds {
    fn new() -> Self {
        let prefix = OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() % 10_000_000_000;
        AckIds { prefix, counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % 10_000_000_000;
        format!("{}{n:010}", self.prefix)
    }
}

/// Serves MLLP on `listener` until `shutdown` is cancelled, then stops accepting, lets every
/// connection finish the message it is handling and returns. It waits at most `shutdown_grace`:
/// a handler still running then finishes in the background (its message unacknowledged if the
/// runtime stops first, so the sender sends it again).
pub async fn serve<H: MessageHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: MllpConfig,
    shutdown: CancellationToken,
) {
    let config = Arc::new(config);
    let ack_ids = Arc::new(AckIds::new());
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; stop serving rather than spin if it were.
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(%error, "mllp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (handler, config, ack_ids, shutdown) = (handler.clone(), config.clone(), ack_ids.clone(), shutdown.clone());
        tracker.spawn(async move {
            serve_connection(stream, peer, &*handler, &config, &ack_ids, &shutdown).await;
            drop(permit);
        });
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(connections = tracker.len(), "mllp shutdown grace period over with messages in hand");
    }
}

/// A message of a connection being handled: its acknowledgement header and outcome to come.
struct InFlight {
    header: AckHeader,
    outcome: Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send>>,
}

async fn serve_connection<H: MessageHandler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: &H,
    config: &MllpConfig,
    ack_ids: &AckIds,
    shutdown: &CancellationToken,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "mllp set_nodelay failed");
    }
    tracing::info!(%peer, "mllp connection opened");
    let mut framed = Framed::new(stream, MllpCodec::new(config.max_frame_bytes));
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // Once set, nothing more is read: the messages in hand are answered, then the connection ends.
    let mut closing = false;
    loop {
        if closing && in_flight.is_empty() {
            break;
        }
        let may_read = !closing && in_flight.len() < config.max_pipelined.max(1);
        // The idle timeout applies only while nothing is in hand.
        let idle_timeout = if in_flight.is_empty() { config.idle_timeout } else { None };
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !closing => closing = true,
            result = first_outcome(&mut in_flight) => {
                let Some(done) = in_flight.pop_front() else { continue };
                let ack = build_ack(&done.header, result.as_ref().map(|_| ()), &ack_ids.next(), OffsetDateTime::now_utc());
                if let Err(rejection) = &result {
                    log_refusal(peer, &done.header, rejection);
                }
                match tokio::time::timeout(config.write_timeout, framed.send(ack.as_bytes())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::info!(%peer, %error, "mllp write failed");
                        break;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "mllp peer not reading acknowledgements, closing");
                        break;
                    }
                }
            }
            next = next_frame(&mut framed, idle_timeout), if may_read => match next {
                NextFrame::Frame(Frame::Message(raw)) => in_flight.push_back(take_in(raw, peer, handler).await),
                NextFrame::Frame(Frame::Oversized { prefix, length }) => {
                    let rejection = Rejection {
                        ack_code: AckCode::Reject,
                        error_code: ErrorCode::ApplicationInternalError,
                        location: None,
                        reason: format!(
                            "the message is {length} bytes long; this receiver accepts at most {} bytes",
                            config.max_frame_bytes
                        ),
                    };
                    in_flight.push_back(InFlight {
                        header: AckHeader::from_raw(&prefix),
                        outcome: Box::pin(std::future::ready(Err(rejection))),
                    });
                }
                // A sender that half-closes after its last message still gets its ACKs.
                NextFrame::Closed => closing = true,
                NextFrame::IdleTimeout => {
                    tracing::info!(%peer, "mllp connection idle, closing");
                    break;
                }
                NextFrame::Error(error) => {
                    tracing::info!(%peer, %error, "mllp read failed");
                    break;
                }
            },
        }
    }
    tracing::info!(%peer, "mllp connection closed");
}

/// The outcome of the oldest message in hand (acknowledgements go out in order); never ready
/// when nothing is in hand.
async fn first_outcome(in_flight: &mut VecDeque<InFlight>) -> Result<(), Rejection> {
    match in_flight.front_mut() {
        Some(first) => first.outcome.as_mut().await,
        None => std::future::pending().await,
    }
}

enum NextFrame {
    Frame(Frame),
    Closed,
    IdleTimeout,
    Error(std::io::Error),
}

async fn next_frame(framed: &mut Framed<TcpStream, MllpCodec>, idle_timeout: Option<Duration>) -> NextFrame {
    let next = match idle_timeout {
        Some(limit) => match tokio::time::timeout(limit, framed.next()).await {
            Ok(next) => next,
            Err(_) => return NextFrame::IdleTimeout,
        },
        None => framed.next().await,
    };
    match next {
        Some(Ok(frame)) => NextFrame::Frame(frame),
        Some(Err(error)) => NextFrame::Error(error),
        None => NextFrame::Closed,
    }
}

/// Parses and hands over one message; a message that does not parse is refused at once.
async fn take_in<H: MessageHandler>(raw: bytes::Bytes, peer: SocketAddr, handler: &H) -> InFlight {
    let message = match parse_message(&raw) {
        Ok(message) => message,
        Err(error) => {
            return InFlight {
                header: AckHeader::from_raw(&raw),
                outcome: Box::pin(std::future::ready(Err(Rejection::from_parse_error(&error)))),
            }
        }
    };
    let header = AckHeader::from_message(&message);
    let accepted =
        AssertUnwindSafe(handler.accept(Inbound { raw: &raw, message: &message, peer })).catch_unwind().await;
    let control_id = header.control_id.clone();
    let panicked = move || {
        tracing::error!(%peer, control_id = %control_id, "mllp handler panicked");
        Err(Rejection::internal_error("internal error while processing the message; send it again"))
    };
    let outcome: Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send>> = match accepted {
        Ok(pending) => Box::pin(async move {
            match AssertUnwindSafe(pending).catch_unwind().await {
                Ok(HandlerOutcome::Stored) => Ok(()),
                Ok(HandlerOutcome::Rejected(rejection)) => Err(rejection),
                Ok(HandlerOutcome::Failed(reason)) => Err(Rejection::internal_error(&reason)),
                Err(_) => panicked(),
            }
        }),
        Err(_) => Box::pin(std::future::ready(panicked())),
    };
    InFlight { header, outcome }
}

/// Logs a refusal by control id, code and location only: reasons can quote message content.
fn log_refusal(peer: SocketAddr, header: &AckHeader, rejection: &Rejection) {
    tracing::warn!(
        %peer,
        control_id = %header.control_id,
        ack = rejection.ack_code.code(),
        error = rejection.error_code.code(),
        location = rejection.location.as_ref().map(ToString::to_string).unwrap_or_default(),
        "mllp message refused"
    );
}
