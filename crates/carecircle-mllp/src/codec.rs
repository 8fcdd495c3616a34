//! MLLP framing (`0x0B` message `0x1C 0x0D`) as a tokio-util codec with a maximum frame size.
//!
//! Bytes outside frames (line noise, keep-alive newlines, a stray `0x0D`) are skipped. A new
//! start block inside an unfinished frame abandons the unfinished part (the sender restarted).
//! A frame longer than the limit is not buffered: its first bytes are kept so the header can
//! still be read for the rejection, the rest is skipped up to its end block, and the connection
//! goes on.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Starts a frame.
pub const START_BLOCK: u8 = 0x0B;
/// Ends a frame (followed by [`CARRIAGE_RETURN`]).
pub const END_BLOCK: u8 = 0x1C;
/// Follows the end block.
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// How many bytes of an oversized frame are kept, enough for any MSH segment.
const OVERSIZED_PREFIX_BYTES: usize = 4096;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message (without the framing bytes).
    Message(Bytes),
    /// A frame longer than the limit; only its start was kept.
    Oversized {
        /// The first bytes of the frame (up to 4 KiB), for reading its header.
        prefix: Bytes,
        /// The frame's full length in bytes.
        length: usize,
    },
}

#[derive(Debug)]
enum State {
    /// Between frames.
    Idle,
    /// Inside a frame; `scanned` bytes of the buffer hold no end block.
    InFrame { scanned: usize },
    /// Skipping the rest of an oversized frame.
    Discarding { prefix: Vec<u8>, length: usize },
}

/// The MLLP codec: decodes [`Frame`]s, encodes a message into one frame.
#[derive(Debug)]
pub struct MllpCodec {
    max_frame_bytes: usize,
    state: State,
    bytes_outside_frames: u64,
}

impl MllpCodec {
    /// A codec refusing frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        MllpCodec { max_frame_bytes, state: State::Idle, bytes_outside_frames: 0 }
    }

    /// How many bytes were skipped outside frames so far (CR/LF between frames included).
    pub fn bytes_outside_frames(&self) -> u64 {
        self.bytes_outside_frames
    }

    fn oversized(&mut self, buf: &mut BytesMut, frame_end: Option<usize>) -> Option<Frame> {
        let available = frame_end.unwrap_or(buf.len());
        let prefix = buf[..available.min(OVERSIZED_PREFIX_BYTES)].to_vec();
        match frame_end {
            Some(end) => {
                buf.advance(end + 1);
                skip_carriage_return(buf);
                self.state = State::Idle;
                Some(Frame::Oversized { prefix: Bytes::from(prefix), length: end })
            }
            None => {
                let length = buf.len();
                buf.clear();
                self.state = State::Discarding { prefix, length };
                None
            }
        }
    }
}

fn extend_prefix(prefix: &mut Vec<u8>, more: &[u8]) {
    let room = OVERSIZED_PREFIX_BYTES.saturating_sub(prefix.len());
    prefix.extend_from_slice(&more[..more.len().min(room)]);
}

fn skip_carriage_return(buf: &mut BytesMut) {
    if buf.first() == Some(&CARRIAGE_RETURN) {
        buf.advance(1);
    }
}

impl Decoder for MllpCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            match &mut self.state {
                State::Idle => match buf.iter().position(|&b| b == START_BLOCK) {
                    Some(start) => {
                        self.bytes_outside_frames += start as u64;
                        buf.advance(start + 1);
                        self.state = State::InFrame { scanned: 0 };
                    }
                    None => {
                        self.bytes_outside_frames += buf.len() as u64;
                        buf.clear();
                        return Ok(None);
                    }
                },
                State::InFrame { scanned } => {
                    let found = buf[*scanned..].iter().position(|&b| b == END_BLOCK || b == START_BLOCK);
                    match found.map(|i| i + *scanned) {
                        Some(at) if buf[at] == START_BLOCK => {
                            // The sender started over: the unfinished frame is abandoned.
                            tracing::debug!(abandoned_bytes = at, "mllp start block inside a frame");
                            self.bytes_outside_frames += at as u64;
                            buf.advance(at + 1);
                            self.state = State::InFrame { scanned: 0 };
                        }
                        Some(end) if end > self.max_frame_bytes => return Ok(self.oversized(buf, Some(end))),
                        Some(end) => {
                            let message = buf.split_to(end).freeze();
                            buf.advance(1);
                            skip_carriage_return(buf);
                            self.state = State::Idle;
                            return Ok(Some(Frame::Message(message)));
                        }
                        None if buf.len() > self.max_frame_bytes => {
                            if let Some(frame) = self.oversized(buf, None) {
                                return Ok(Some(frame));
                            }
                            return Ok(None);
                        }
                        None => {
                            *scanned = buf.len();
                            return Ok(None);
                        }
                    }
                }
                State::Discarding { prefix, length } => match buf.iter().position(|&b| b == END_BLOCK) {
                    Some(end) => {
                        extend_prefix(prefix, &buf[..end]);
                        let frame =
                            Frame::Oversized { prefix: Bytes::from(std::mem::take(prefix)), length: *length + end };
                        buf.advance(end + 1);
                        skip_carriage_return(buf);
                        self.state = State::Idle;
                        return Ok(Some(frame));
                    }
                    None => {
                        extend_prefix(prefix, buf);
                        *length += buf.len();
                        buf.clear();
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if !matches!(self.state, State::Idle) || !buf.is_empty() {
            // The peer closed in the middle of a frame: it was never acknowledged, so the
            // sender still holds it and will send it again.
            tracing::debug!(pending_bytes = buf.len(), "mllp connection closed inside a frame");
            buf.clear();
            self.state = State::Idle;
        }
        Ok(None)
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, message: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.reserve(message.len() + 3);
        dst.put_u8(START_BLOCK);
        dst.put_slice(message);
        dst.put_u8(END_BLOCK);
        dst.put_u8(CARRIAGE_RETURN);
        Ok(())
    }
}

/// Frames one message: `0x0B` message `0x1C 0x0D`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut MllpCodec, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn message(text: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn skips_noise_and_tolerates_missing_trailing_cr() {
        let mut codec = MllpCodec::new(1024);
        let input = b"noise\r\n\x0bMSH|A\x1c\r\n\n\x0bMSH|B\x1c\x0bMSH|C\x1c\r";
        assert_eq!(decode_all(&mut codec, &[input]), vec![message("MSH|A"), message("MSH|B"), message("MSH|C")]);
        assert_eq!(codec.bytes_outside_frames(), 9);
    }

    #[test]
    fn a_start_block_inside_a_frame_restarts_it() {
        let mut codec = MllpCodec::new(1024);
        assert_eq!(decode_all(&mut codec, &[b"\x0bMSH|lost\x0bMSH|kept\x1c\r"]), vec![message("MSH|kept")]);
    }

    #[test]
    fn oversized_frames_keep_a_prefix_and_the_stream_goes_on() {
        let mut codec = MllpCodec::new(10);
        let big = format!("MSH|{}", "x".repeat(30));
        let framed = [frame(big.as_bytes()), frame(b"MSH|ok")].concat();
        // Fed in small pieces so the limit is crossed before the end block arrives.
        let chunks: Vec<&[u8]> = framed.chunks(7).collect();
        let frames = decode_all(&mut codec, &chunks);
        assert_eq!(frames, vec![Frame::Oversized { prefix: Bytes::from(big.clone()), length: 34 }, message("MSH|ok")]);
        // And in one piece, where the end block is already there.
        let frames = decode_all(&mut MllpCodec::new(10), &[&framed]);
        assert_eq!(frames, vec![Frame::Oversized { prefix: Bytes::from(big), length: 34 }, message("MSH|ok")]);
    }

    #[test]
    fn eof_inside_a_frame_yields_nothing() {
        let mut codec = MllpCodec::new(1024);
        assert_eq!(decode_all(&mut codec, &[b"\x0bMSH|A\x1c\r\x0bMSH|unfinished"]), vec![message("MSH|A")]);
    }

    proptest! {
        #[test]
        fn frames_round_trip_whatever_the_splits_and_the_noise(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no framing bytes", |b| *b != START_BLOCK && *b != END_BLOCK), 0..200), 1..8),
            noise in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no start block", |b| *b != START_BLOCK), 0..10), 8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut stream = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                stream.extend_from_slice(&noise[i]);
                stream.extend_from_slice(&frame(m));
            }
            let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            positions.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in positions {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            let decoded = decode_all(&mut MllpCodec::new(1 << 20), &chunks);
            let expected: Vec<Frame> = messages.iter().map(|m| Frame::Message(Bytes::copy_from_slice(m))).collect();
            prop_assert_eq!(decoded, expected);
        }
    }
}
