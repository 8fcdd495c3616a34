//! The MLLP listener: accepts connections, reads frames, hands each parsed message to a
//! [`MessageHandler`] and writes the acknowledgement only after the handler returned.
//!
//! Each connection is served by one task that takes its messages strictly in order (HL7 senders
//! rely on that: an A03 must not overtake its A01), so pipelined messages are answered in order.
//! Throughput comes from many connections and from the handler batching its durable writes.
//! Every frame gets an answer: unparseable or unsupported messages an `AR`/`AE`, a handler
//! failure or panic an `AE`; only I/O errors, idle timeouts and shutdown end a connection.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
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

/// Processes messages; implemented by the application (ADT ingest into the record).
///
/// The acknowledgement is written only after `handle` returns, so an implementation returns
/// [`HandlerOutcome::Stored`] only once its write is durable. Calls for one connection never
/// overlap; calls for different connections do.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one parsed message.
    fn handle(&self, inbound: Inbound<'_>) -> impl Future<Output = HandlerOutcome> + Send;
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
}

impl Default for MllpConfig {
    fn default() -> Self {
        MllpConfig {
            max_frame_bytes: 1 << 20,
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            max_connections: 256,
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
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
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            next = next_frame(&mut framed, config.idle_timeout) => next,
        };
        let frame = match next {
            NextFrame::Frame(frame) => frame,
            NextFrame::Closed => break,
            NextFrame::IdleTimeout => {
                tracing::info!(%peer, "mllp connection idle, closing");
                break;
            }
            NextFrame::Error(error) => {
                tracing::info!(%peer, %error, "mllp read failed");
                break;
            }
        };
        let ack = match frame {
            Frame::Message(raw) => answer(&raw, peer, handler, ack_ids).await,
            Frame::Oversized { prefix, length } => {
                let rejection = Rejection {
                    ack_code: AckCode::Reject,
                    error_code: ErrorCode::ApplicationInternalError,
                    location: None,
                    reason: format!(
                        "the message is {length} bytes long; this receiver accepts at most {} bytes",
                        config.max_frame_bytes
                    ),
                };
                let header = AckHeader::from_raw(&prefix);
                log_refusal(peer, &header, &rejection);
                build_ack(&header, Err(&rejection), &ack_ids.next(), OffsetDateTime::now_utc())
            }
        };
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
    tracing::info!(%peer, "mllp connection closed");
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

/// Parses, hands over, and builds the acknowledgement of one message.
async fn answer<H: MessageHandler>(raw: &[u8], peer: SocketAddr, handler: &H, ack_ids: &AckIds) -> String {
    let (header, outcome) = match parse_message(raw) {
        Err(error) => (AckHeader::from_raw(raw), Err(Rejection::from_parse_error(&error))),
        Ok(message) => {
            let header = AckHeader::from_message(&message);
            let handled =
                AssertUnwindSafe(handler.handle(Inbound { raw, message: &message, peer })).catch_unwind().await;
            let outcome = match handled {
                Ok(HandlerOutcome::Stored) => Ok(()),
                Ok(HandlerOutcome::Rejected(rejection)) => Err(rejection),
                Ok(HandlerOutcome::Failed(reason)) => Err(Rejection::internal_error(&reason)),
                Err(_) => {
                    tracing::error!(%peer, control_id = %header.control_id, "mllp handler panicked");
                    Err(Rejection::internal_error("internal error while processing the message; send it again"))
                }
            };
            (header, outcome)
        }
    };
    if let Err(rejection) = &outcome {
        log_refusal(peer, &header, rejection);
    }
    build_ack(&header, outcome.as_ref().map(|_| ()), &ack_ids.next(), OffsetDateTime::now_utc())
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
