//! An MLLP load generator: sends ADT A01/A03 messages at a fixed rate over several connections
//! (each sending one message at a time and awaiting its ACK, as HL7 senders do) and reports
//! throughput and ACK latency percentiles.
//!
//! `cargo run --release -p carecircle-mllp --example mllp_load -- ADDR RATE SECONDS [CONNECTIONS]`
//!
//! Message `i` is due at `i / RATE` seconds. Latency is reported twice: from the moment the
//! message was sent, and from the moment it was due, which also counts the time it waited
//! behind a slow ACK on its connection (so a receiver that falls behind cannot hide it).

use std::time::{Duration, Instant};

use carecircle_hl7::AckCode;
use carecircle_mllp::MllpClient;

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
        eprintln!("usage: mllp_load ADDR RATE SECONDS [CONNECTIONS]");
        std::process::exit(2);
    }
    let address = args[0].clone();
    let rate: f64 = args[1].parse()?;
    let seconds: f64 = args[2].parse()?;
    let connections: u64 = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(8).max(1);
    let total = (rate * seconds).round() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    // Never run longer than the planned time plus a margin, whatever the receiver does.
    let deadline = start + Duration::from_secs_f64(seconds) + Duration::from_secs(10);

    let mut tasks = Vec::new();
    for c in 0..connections {
        let address = address.clone();
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
        "mllp_load {address}: target {rate} msg/s for {seconds} s over {connections} connections ({total} messages)"
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
