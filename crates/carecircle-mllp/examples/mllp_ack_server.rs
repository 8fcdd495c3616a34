//! An MLLP receiver that reads each message as ADT, maps it to a FHIR Encounter and
//! acknowledges it, storing nothing: the baseline for `mllp_load`.
//!
//! `cargo run --release -p carecircle-mllp --example mllp_ack_server -- 127.0.0.1:2575 [SECONDS]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use carecircle_hl7::{fhir, AdtEvent, AdtOptions};
use carecircle_mllp::{serve, HandlerOutcome, Inbound, MessageHandler, MllpConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct AckOnly {
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl MessageHandler for AckOnly {
    async fn handle(&self, inbound: Inbound<'_>) -> HandlerOutcome {
        match AdtEvent::from_message(inbound.message, &AdtOptions::default()) {
            Ok(event) => {
                let encounter = fhir::to_encounter(&event, "Patient/p", "Organization/o");
                std::hint::black_box(encounter);
                self.accepted.fetch_add(1, Ordering::Relaxed);
                HandlerOutcome::Stored
            }
            Err(error) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                HandlerOutcome::Rejected(error.to_rejection())
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:2575".into());
    let seconds: Option<u64> = args.next().and_then(|s| s.parse().ok());
    let listener = TcpListener::bind(&address).await?;
    eprintln!("mllp_ack_server listening on {}", listener.local_addr()?);
    let handler = Arc::new(AckOnly::default());
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        match seconds {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        stopper.cancel();
    });
    serve(listener, handler.clone(), MllpConfig::default(), shutdown).await;
    eprintln!(
        "accepted {} refused {}",
        handler.accepted.load(Ordering::Relaxed),
        handler.refused.load(Ordering::Relaxed)
    );
    Ok(())
}
