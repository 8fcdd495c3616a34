//! `carecircle hl7 send`: send HL7 v2 messages from files to an MLLP receiver (carecircle's own
//! `serve --mllp`, or any other) and print each acknowledgement. For demos, partner onboarding
//! and checking a feed by hand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use carecircle_hl7::AckCode;
use carecircle_mllp::MllpClient;
use clap::{Args, Subcommand};

/// HL7 v2 tools.
#[derive(Subcommand)]
pub(crate) enum Hl7Command {
    /// Send the HL7 v2 messages in FILEs over MLLP, one after another on one connection, and print
    /// each acknowledgement.
    ///
    /// A file holds one message or several, each starting with an MSH segment; segments may end
    /// with CR, LF or CRLF (they are sent ended by CR). Exits 0 when every message was answered
    /// AA, 1 otherwise.
    ///
    /// Example: carecircle hl7 send --to 127.0.0.1:2575 docs/demo/joe-ed-a04.hl7
    Send(SendArgs),
}

/// Arguments of `hl7 send`.
#[derive(Args)]
pub(crate) struct SendArgs {
    /// The MLLP receiver (host:port).
    #[arg(long, default_value = "127.0.0.1:2575")]
    to: String,
    /// Seconds to wait for each acknowledgement.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Files of HL7 v2 messages.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The messages of one file: split before every line starting with `MSH`, segments joined by CR,
/// blank lines dropped.
pub(crate) fn messages_of(text: &str) -> Vec<String> {
    let mut messages: Vec<Vec<&str>> = Vec::new();
    for line in text.split(['\r', '\n']).map(|l| l.trim_end()).filter(|l| !l.is_empty()) {
        if line.starts_with("MSH") || messages.is_empty() {
            messages.push(Vec::new());
        }
        if let Some(current) = messages.last_mut() {
            current.push(line);
        }
    }
    messages.into_iter().map(|segments| segments.iter().map(|s| format!("{s}\r")).collect()).collect()
}

fn read(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let messages = messages_of(&text);
    if messages.is_empty() {
        bail!("{} holds no HL7 v2 message", path.display());
    }
    Ok(messages)
}

/// Sends every message and prints one line per acknowledgement; `Ok(true)` when all were `AA`.
pub(crate) async fn send(args: &SendArgs) -> anyhow::Result<bool> {
    let mut batches = Vec::new();
    for path in &args.files {
        batches.push((path, read(path)?));
    }
    let mut client =
        MllpClient::connect(&args.to).await.with_context(|| format!("connecting to the MLLP receiver {}", args.to))?;
    let mut all_accepted = true;
    for (path, messages) in batches {
        for (n, message) in messages.iter().enumerate() {
            let ack =
                tokio::time::timeout(Duration::from_secs(args.timeout), client.send_and_read_ack(message.as_bytes()))
                    .await
                    .with_context(|| {
                        format!("{} message {}: no acknowledgement within {} s", path.display(), n + 1, args.timeout)
                    })?
                    .with_context(|| format!("{} message {}", path.display(), n + 1))?;
            let mut line =
                format!("{} message {}: {} (control id {})", path.display(), n + 1, ack.code, ack.control_id);
            if let Some(code) = &ack.error_code {
                line.push_str(&format!(", error {code}"));
            }
            if let Some(text) = &ack.text {
                line.push_str(&format!(": {text}"));
            }
            println!("{line}");
            all_accepted &= ack.code == AckCode::Accept;
        }
    }
    Ok(all_accepted)
}

#[cfg(test)]
mod tests {
    use super::messages_of;

    #[test]
    fn files_split_into_messages_at_each_msh() {
        let text = "MSH|^~\\&|A|B\nEVN|A04\r\n\r\nPID|1||X\nMSH|^~\\&|A|B\rPV1|1|E\n";
        let messages = messages_of(text);
        assert_eq!(messages, vec!["MSH|^~\\&|A|B\rEVN|A04\rPID|1||X\r", "MSH|^~\\&|A|B\rPV1|1|E\r"]);
        assert!(messages_of("\n\n").is_empty());
    }
}
