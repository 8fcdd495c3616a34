//! An MLLP load generator: sends ADT A01/A03 messages at a fixed rate over several connections
//! (each sending one message at a time and awaiting its ACK, as HL7 senders do, or with
//! PIPELINE > 1 keeping up to that many messages unacknowledged) and reports throughput and ACK
//! latency percentiles.
//!
//! `cargo run --release -p carecircle-mllp --example mllp_load -- ADDR RATE SECONDS [CONNECTIONS [PIPELINE]]`
//!
//! Message `i` is due at `i / RATE` seconds. Latency is reported twice: from the moment the
//! message was sent, and from the moment it was due, which also counts the time it waited
//! behind a slow ACK on its connection (so a receiver that falls behind cannot hide it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use carecircle_hl7::{parse_ack, AckCode};
use carecircle_mllp::{frame, Frame, MllpClient, MllpCodec};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::FramedRead;

fn message(i: u64) -> String {
    let (event, structure) = if i & 1 == 0 { ("A01", "ADT_A01") } else { ("A03", "ADT_A03") };
    let patient = 100_000 + i / 2;
    format!(
        "MSH|^~\\&|PAS|RXX01|CARECIRCLE|CC|20240301101502||ADT^{event}^{structure}|LOAD{i}|P|2.5.1\r\
EVN|{event}|20240301101500\r\
PID|1||9{patient:09}^^^NHS^NH~RXX{patient}^^^RXX^MR||SMITH^JOHN^PAUL^^MR^^L||19700101|M|||1 HIGH ST^^LEEDS^^LS1 1AA^GBR^H\r\
PV1|1|I|WARD1^BAY2^BED3^RXX01||||C1234^JONES^ALAN|||MED|||||||||V{patient}^^^RXX^VN|||||||||||||||||||||||||20240301100000\r"
    )
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    not_accepted: u64,
    failed: u64,
    since_sent: Vec<Duration>,
    since_due: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<10} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 90.0)),
        ms(percentile(latencies, 99.0)),
        ms(percentile(latencies, 99.9)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: mllp_load ADDR RATE SECONDS [CONNECTIONS [PIPELINE]]");
        std::process::exit(2);
    }
    let address = args[0].clone();
    let rate: f64 = args[1].parse()?;
    let seconds: f64 = args[2].parse()?;
    let connections: u64 = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(8).max(1);
    let pipeline: usize = args.get(4).map(|c| c.parse()).transpose()?.unwrap_or(1).max(1);
    let total = (rate * seconds).round() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    // Never run longer than the planned time plus a margin, whatever the receiver does.
    let deadline = start + Duration::from_secs_f64(seconds) + Duration::from_secs(10);

    let mut tasks = Vec::new();
    for c in 0..connections {
        let address = address.clone();
        if pipeline > 1 {
            let plan = Plan { c, connections, total, rate, start, deadline, pipeline };
            tasks.push(tokio::spawn(pipelined(address, plan)));
            continue;
        }
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut client = match MllpClient::connect(&address).await {
                Ok(client) => client,
                Err(error) => {
                    eprintln!("connection {c}: {error}");
                    return tally;
                }
            };
            let mut i = c;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due > deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let text = message(i);
                let outcome = tokio::time::timeout(Duration::from_secs(10), client.send_and_read_ack(text.as_bytes()));
                match outcome.await {
                    Ok(Ok(ack)) if ack.code == AckCode::Accept => tally.accepted += 1,
                    Ok(Ok(_)) => tally.not_accepted += 1,
                    Ok(Err(error)) => {
                        eprintln!("connection {c}: {error}");
                        tally.failed += 1;
                        break;
                    }
                    Err(_) => {
                        eprintln!("connection {c}: no ACK within 10 s");
                        tally.failed += 1;
                        break;
                    }
                }
                let now = Instant::now();
                tally.since_sent.push(now - sent);
                tally.since_due.push(now - due);
                i += connections;
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.accepted += tally.accepted;
        all.not_accepted += tally.not_accepted;
        all.failed += tally.failed;
        all.since_sent.extend(tally.since_sent);
        all.since_due.extend(tally.since_due);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "mllp_load {address}: target {rate} msg/s for {seconds} s over {connections} connections, \
         pipeline {pipeline} ({total} messages)"
    );
    println!(
        "  acknowledged {} ({} AA, {} AE/AR), {} failed; {:.0} msg/s over {:.2} s",
        all.accepted + all.not_accepted,
        all.accepted,
        all.not_accepted,
        all.failed,
        (all.accepted + all.not_accepted) as f64 / elapsed,
        elapsed
    );
    report("since sent", &mut all.since_sent);
    report("since due", &mut all.since_due);
    Ok(())
}

/// What one pipelining connection sends.
struct Plan {
    c: u64,
    connections: u64,
    total: u64,
    rate: f64,
    start: Instant,
    deadline: Instant,
    pipeline: usize,
}

/// One connection that writes each message when due while up to `pipeline` earlier ones are
/// unacknowledged, and reads the ACKs (in order) on the side.
async fn pipelined(address: String, plan: Plan) -> Tally {
    let mut tally = Tally::default();
    let stream = match TcpStream::connect(&address).await {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("connection {}: {error}", plan.c);
            return tally;
        }
    };
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = stream.into_split();
    let mut acks = FramedRead::new(read_half, MllpCodec::new(1 << 20));
    let window = Arc::new(Semaphore::new(plan.pipeline));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(Instant, Instant)>();
    let sender_window = window.clone();
    let sender = tokio::spawn(async move {
        let mut i = plan.c;
        while i < plan.total {
            let due = plan.start + Duration::from_secs_f64(i as f64 / plan.rate);
            if due > plan.deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let Ok(permit) = sender_window.acquire().await else { break };
            permit.forget();
            let sent = Instant::now();
            if write_half.write_all(&frame(message(i).as_bytes())).await.is_err() || sent_tx.send((due, sent)).is_err()
            {
                break;
            }
            i += plan.connections;
        }
    });
    while let Some((due, sent)) = sent_rx.recv().await {
        let ack = tokio::time::timeout(Duration::from_secs(10), acks.next()).await;
        match ack {
            Ok(Some(Ok(Frame::Message(bytes)))) => match parse_ack(&bytes) {
                Ok(ack) if ack.code == AckCode::Accept => tally.accepted += 1,
                _ => tally.not_accepted += 1,
            },
            Ok(_) => {
                eprintln!("connection {}: closed or unreadable", plan.c);
                tally.failed += 1;
                break;
            }
            Err(_) => {
                eprintln!("connection {}: no ACK within 10 s", plan.c);
                tally.failed += 1;
                break;
            }
        }
        let now = Instant::now();
        tally.since_sent.push(now - sent);
        tally.since_due.push(now - due);
        window.add_permits(1);
    }
    sender.abort();
    tally
}
