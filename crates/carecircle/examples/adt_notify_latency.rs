//! ADT message received → rest-hook notification delivered: the latency of carecircle's event
//! path under a steady ADT feed (issue 5, "Performance").
//!
//! Against a running `carecircle demo --mllp` (the demo partnership: the hospital sends ADT as
//! facility `MFH`), this tool
//!
//! 1. picks the hospital's Patients that carry an NHS number, and has the hospital record a
//!    `CareTeam` for each naming the subscriber organisation (default the mental-health trust),
//!    so that the subscriber is in each person's care; people whose record the subscriber still
//!    may not read (their consent) are left out;
//! 2. starts a rest-hook receiver on a loopback port and registers, as the subscriber's system, a
//!    `care-team-encounter` Subscription (full-resource) pointing at it, and waits for the
//!    handshake;
//! 3. sends ADT^A04 emergency-department attendances (a new visit number each, PID-3 the NHS
//!    number) for those people in turn at a fixed rate over several MLLP connections, each
//!    message due at start + i / rate;
//! 4. matches each notification to its message by the Encounter's visit number and reports the
//!    latency from sending the message to receiving its notification (p50/p95/p99/max), the ACK
//!    latency, the rates achieved and anything not notified.
//!
//! ```sh
//! cargo build --release -p carecircle --examples
//! target/release/carecircle --data-dir /tmp/bench demo --mllp 127.0.0.1:2575 &
//! target/release/examples/adt_notify_latency --data-dir /tmp/bench --rate 200 --seconds 60
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use carecircle_hl7::AckCode;
use carecircle_mllp::MllpClient;
use serde_json::{json, Value};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const TOPIC: &str = "https://carecircle.example.org/fhir/SubscriptionTopic/care-team-encounter";
const CONTENT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const HOSPITAL: &str = "org-minsterford-hospital";

struct Options {
    http: String,
    mllp: String,
    data_dir: PathBuf,
    carecircle: PathBuf,
    subscriber: String,
    rate: f64,
    seconds: f64,
    connections: usize,
    people: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        http: "http://127.0.0.1:8080".into(),
        mllp: "127.0.0.1:2575".into(),
        data_dir: PathBuf::from("data"),
        carecircle: PathBuf::from("target/release/carecircle"),
        subscriber: "org-vale-mh-trust".into(),
        rate: 200.0,
        seconds: 60.0,
        connections: 16,
        people: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--http" => o.http = value()?.trim_end_matches('/').to_string(),
            "--mllp" => o.mllp = value()?,
            "--data-dir" => o.data_dir = value()?.into(),
            "--carecircle" => o.carecircle = value()?.into(),
            "--subscriber" => o.subscriber = value()?,
            "--rate" => o.rate = value()?.parse().context("--rate")?,
            "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
            "--connections" => o.connections = value()?.parse().context("--connections")?,
            "--people" => o.people = value()?.parse().context("--people")?,
            "-h" | "--help" => {
                println!(
                    "adt_notify_latency [--http URL] [--mllp ADDR] [--data-dir DIR] [--carecircle BIN] \
                     [--subscriber ORG] [--rate MSG/S] [--seconds S] [--connections N] [--people N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if o.rate <= 0.0 || o.seconds <= 0.0 || o.connections == 0 || o.people == 0 {
        bail!("--rate, --seconds, --connections and --people must be positive");
    }
    Ok(o)
}

/// A development-issuer token for a partner's system, minted by the carecircle binary.
fn system_token(o: &Options, org: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(&o.carecircle)
        .arg("--data-dir")
        .arg(&o.data_dir)
        .args(["token", "--system", "--org", org, "--audience", &o.http, "--ttl", "2h"])
        .output()
        .with_context(|| format!("running {}", o.carecircle.display()))?;
    if !output.status.success() {
        bail!("minting a token: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

async fn fhir(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.header("accept", "application/fhir+json").send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// The hospital's Patients with an NHS number: (id, NHS number).
async fn hospital_patients(o: &Options, http: &reqwest::Client, token: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while out.len() < o.people {
        let request = http
            .get(format!("{}/Patient", o.http))
            .query(&[
                ("_source", format!("Organization/{HOSPITAL}")),
                ("_count", "500".into()),
                ("_offset", offset.to_string()),
            ])
            .bearer_auth(token);
        let (status, bundle) = fhir(request).await?;
        if status != 200 {
            bail!("searching the hospital's Patients: {status} {bundle}");
        }
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            break;
        }
        offset += entries.len();
        for entry in entries {
            let patient = &entry["resource"];
            let nhs = patient["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["system"] == NHS)
                .and_then(|i| i["value"].as_str());
            if let (Some(id), Some(nhs)) = (patient["id"].as_str(), nhs) {
                if patient["active"] != false && out.len() < o.people {
                    out.push((id.to_string(), nhs.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// The hospital records that the subscriber works with each person (one `CareTeam` each).
async fn record_care_teams(
    o: &Options,
    http: &reqwest::Client,
    token: &str,
    people: &[(String, String)],
) -> anyhow::Result<()> {
    for chunk in people.chunks(200) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|(id, _)| {
                let team = format!("bench-team-{id}");
                json!({
                    "resource": {
                        "resourceType": "CareTeam", "id": team, "status": "active",
                        "subject": {"reference": format!("Patient/{id}")},
                        "participant": [{"onBehalfOf": {"reference": format!("Organization/{}", o.subscriber)}}]
                    },
                    "request": {"method": "PUT", "url": format!("CareTeam/{team}")}
                })
            })
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let request = http
            .post(o.http.clone())
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string());
        let (status, answer) = fhir(request).await?;
        if status != 200 {
            bail!("recording care teams: {status} {answer}");
        }
    }
    Ok(())
}

/// When each visit's notification arrived, and whether the handshake came.
#[derive(Default)]
struct Received {
    handshake: bool,
    at: HashMap<String, Instant>,
    bundles: usize,
}

async fn start_receiver(received: Arc<Mutex<Received>>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let received = received.clone();
            async move {
                let now = Instant::now();
                let bundle: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
                r.bundles += 1;
                let kind = bundle.pointer("/entry/0/resource/parameter").and_then(Value::as_array).and_then(|ps| {
                    ps.iter().find(|p| p["name"] == "type").and_then(|p| p["valueCode"].as_str().map(str::to_string))
                });
                if kind.as_deref() == Some("handshake") {
                    r.handshake = true;
                }
                for entry in bundle["entry"].as_array().into_iter().flatten().skip(1) {
                    let encounter = &entry["resource"];
                    for identifier in encounter["identifier"].as_array().into_iter().flatten() {
                        if let Some(visit) = identifier["value"].as_str() {
                            r.at.entry(visit.to_string()).or_insert(now);
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

fn a04(control_id: &str, nhs: &str, visit: &str, at: &str) -> String {
    format!(
        "MSH|^~\\&|MFH_PAS|MFH|CARECIRCLE|PARTNERSHIP|{at}||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
EVN|A04|{at}\r\
PID|1||{nhs}^^^NHS^NH||BENCH^PERSON\r\
PV1|1|E|ED^MAJORS^1^MFH||||||||||||||||{visit}^^^MFH^VN\r"
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p95={:.1} ms p99={:.1} ms max={:.1} ms",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        percentile(&values, 95.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let http = reqwest::Client::new();
    let hospital = system_token(&o, HOSPITAL)?;
    let subscriber = system_token(&o, &o.subscriber)?;

    let candidates = hospital_patients(&o, &http, &hospital).await?;
    record_care_teams(&o, &http, &hospital, &candidates).await?;
    let mut people = Vec::new();
    for (id, nhs) in candidates {
        let request = http.get(format!("{}/Patient/{id}", o.http)).bearer_auth(&subscriber);
        if fhir(request).await?.0 == 200 {
            people.push(nhs);
        }
    }
    if people.is_empty() {
        bail!("no hospital Patient with an NHS number is visible to {}", o.subscriber);
    }
    println!(
        "{} people: hospital Patients with an NHS number in {}'s care and visible to it",
        people.len(),
        o.subscriber
    );

    let received = Arc::new(Mutex::new(Received::default()));
    let receiver = start_receiver(received.clone()).await?;
    let subscription = json!({
        "resourceType": "Subscription", "status": "requested", "reason": "ADT → rest-hook latency benchmark",
        "criteria": TOPIC,
        "channel": {
            "type": "rest-hook", "endpoint": format!("http://{receiver}/hook"), "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": CONTENT, "valueCode": "full-resource"}]}
        }
    });
    let request = http
        .post(format!("{}/Subscription", o.http))
        .bearer_auth(&subscriber)
        .header("content-type", "application/fhir+json")
        .body(subscription.to_string());
    let (status, created) = fhir(request).await?;
    if status != 201 {
        bail!("creating the Subscription: {status} {created}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !received.lock().unwrap_or_else(|e| e.into_inner()).handshake {
        if Instant::now() > deadline {
            bail!("no handshake within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The subscription turns active once its handshake is answered.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let total = (o.rate * o.seconds).round() as usize;
    let run = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs());
    let stamp = "20261122120000";
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let acks: Arc<Mutex<Vec<(f64, AckCode)>>> = Arc::default();
    let people = Arc::new(people);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.connections {
        let (sent, acks, people, address) = (sent.clone(), acks.clone(), people.clone(), o.mllp.clone());
        let (run, connections, rate) = (run.clone(), o.connections, o.rate);
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(&address).await?;
            for i in (c..total).step_by(connections) {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let visit = format!("B{run}-{i:07}");
                let message = a04(&format!("{visit}-M"), &people[i % people.len()], &visit, stamp);
                let at = Instant::now();
                sent.lock().unwrap_or_else(|e| e.into_inner()).insert(visit, at);
                let ack = client.send_and_read_ack(message.as_bytes()).await?;
                acks.lock().unwrap_or_else(|e| e.into_inner()).push((at.elapsed().as_secs_f64() * 1e3, ack.code));
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let sending = started.elapsed().as_secs_f64();
    // Wait for the stragglers (at most 30 s, or 5 s without progress).
    let (mut last, mut last_change) = (0, Instant::now());
    let wait_until = Instant::now() + Duration::from_secs(30);
    loop {
        let n = received.lock().unwrap_or_else(|e| e.into_inner()).at.len();
        if n >= total || Instant::now() > wait_until || last_change.elapsed() > Duration::from_secs(5) {
            break;
        }
        if n != last {
            (last, last_change) = (n, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The receiver goes away with this process: end the subscription so the server does not
    // keep retrying it (and deciding notifications for it) in the next run.
    if let Some(id) = created["id"].as_str() {
        let request = http.delete(format!("{}/Subscription/{id}", o.http)).bearer_auth(&subscriber);
        let (status, answer) = fhir(request).await?;
        if !(200..300).contains(&status) {
            eprintln!("could not delete Subscription/{id}: {status} {answer}");
        }
    }

    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let received = received.lock().unwrap_or_else(|e| e.into_inner());
    let acks = acks.lock().unwrap_or_else(|e| e.into_inner());
    let accepted = acks.iter().filter(|(_, code)| *code == AckCode::Accept).count();
    let latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(visit, at)| received.at.get(visit).map(|r| r.duration_since(*at).as_secs_f64() * 1e3))
        .collect();
    let last_notified = sent
        .keys()
        .filter_map(|visit| received.at.get(visit))
        .max()
        .map(|t| t.duration_since(started).as_secs_f64())
        .unwrap_or(f64::NAN);
    println!(
        "sent {} A04 in {sending:.1} s ({:.1} msg/s asked {:.0}) over {} connections; {accepted} AA",
        sent.len(),
        sent.len() as f64 / sending,
        o.rate,
        o.connections
    );
    println!(
        "notified {} of {} ({} missing) in {} notification bundles; last at {last_notified:.1} s ({:.1} notifications/s)",
        latencies.len(),
        sent.len(),
        sent.len() - latencies.len(),
        received.bundles,
        latencies.len() as f64 / last_notified
    );
    summary("ADT sent → notification received", latencies);
    summary("ADT sent → ACK received", acks.iter().map(|(ms, _)| *ms).collect());
    Ok(())
}
