//! MLLP (the Minimal Lower Layer Protocol of HL7 v2) for carecircle: the framing codec, a TCP
//! listener that acknowledges each message only after its handler has stored it, and a client.

#![forbid(unsafe_code)]

mod client;
pub mod codec;
mod server;

pub use client::{send_message, ClientError, MllpClient};
pub use codec::{frame, Frame, MllpCodec};
pub use server::{serve, HandlerOutcome, Inbound, MessageHandler, MllpConfig, PendingOutcome};
