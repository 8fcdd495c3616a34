//! An MLLP client: send a message, await its acknowledgement. Used by tests, the demo script
//! and the load generator.

use bytes::Bytes;
use carecircle_hl7::{parse_ack, AckParseError, AckSummary};
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;

use crate::codec::{Frame, MllpCodec};

/// Why no acknowledgement was received.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("mllp i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The receiver closed the connection before acknowledging.
    #[error("the receiver closed the connection before acknowledging")]
    Closed,
    /// The acknowledgement was longer than the client accepts.
    #[error("the acknowledgement is {0} bytes long, more than accepted")]
    OversizedAck(usize),
    /// The answer is not an HL7 acknowledgement.
    #[error("unreadable acknowledgement: {0}")]
    Ack(#[from] AckParseError),
}

/// One MLLP connection to a receiver, sending one message at a time.
#[derive(Debug)]
pub struct MllpClient {
    framed: Framed<TcpStream, MllpCodec>,
}

impl MllpClient {
    /// Connects to a receiver.
    pub async fn connect(address: impl ToSocketAddrs) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(MllpClient { framed: Framed::new(stream, MllpCodec::new(1 << 20)) })
    }

    /// Sends one message (without framing; segments ended by CR) and returns the raw bytes of
    /// the acknowledgement. Wrap in `tokio::time::timeout` for a deadline.
    pub async fn send(&mut self, message: &[u8]) -> Result<Bytes, ClientError> {
        self.framed.send(message).await?;
        match self.framed.next().await {
            Some(Ok(Frame::Message(ack))) => Ok(ack),
            Some(Ok(Frame::Oversized { length, .. })) => Err(ClientError::OversizedAck(length)),
            Some(Err(error)) => Err(ClientError::Io(error)),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends one message and reads its acknowledgement's code, control id and error.
    pub async fn send_and_read_ack(&mut self, message: &[u8]) -> Result<AckSummary, ClientError> {
        let ack = self.send(message).await?;
        Ok(parse_ack(&ack)?)
    }
}

/// Connects, sends one message, reads its acknowledgement and disconnects.
pub async fn send_message(address: impl ToSocketAddrs, message: &[u8]) -> Result<AckSummary, ClientError> {
    MllpClient::connect(address).await?.send_and_read_ack(message).await
}
