//! `carecircle serve --mllp` end to end: a partner's ADT feed over MLLP into the record, read
//! back over the FHIR API with the partner's system token.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use carecircle_hl7::{AckCode, AckSummary};
use carecircle_mllp::MllpClient;
use serde_json::Value;

use crate::carecircle;

/// The partner under test: its Organization says it sends HL7 v2 as facility RXX01.
const PARTNER_ORGANIZATION: &str = r#"{"resourceType":"Organization","id":"org-rxx","name":"Riverside Hospital",
  "identifier":[{"system":"urn:carecircle:hl7v2:facility","value":"RXX01"}],
  "type":[{"coding":[{"system":"https://carecircle.example.org/fhir/CodeSystem/partner-sector","code":"acute"}]}]}"#;

/// A running server, killed when dropped.
struct Server {
    child: Child,
    http: String,
    mllp: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_server(data: &Path) -> Server {
    let organization = data.with_extension("org.json");
    std::fs::write(&organization, PARTNER_ORGANIZATION).unwrap();
    let import =
        carecircle(data).args(["import", "--custodian", "Organization/org-rxx"]).arg(&organization).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stdout));

    let (http_port, mllp_port) = (free_port(), free_port());
    let http = format!("127.0.0.1:{http_port}");
    let mllp = format!("127.0.0.1:{mllp_port}");
    let child = carecircle(data)
        .args(["serve", "--dev-issuer", "--listen", &http, "--mllp", &mllp])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server { child, http: format!("http://{http}"), mllp };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server exited with {status}");
        }
        let http_up = reqwest::get(format!("{}/healthz", server.http)).await.is_ok_and(|r| r.status().is_success());
        if http_up && tokio::net::TcpStream::connect(&server.mllp).await.is_ok() {
            return server;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token of the partner's own system, to read back what its feed wrote.
fn system_token(data: &Path, server: &Server) -> String {
    let output =
        carecircle(data).args(["token", "--system", "--org", "org-rxx", "--audience", &server.http]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn adt(facility: &str, event: &str, control_id: &str, mrn: &str, visit: &str, extra_pv1: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|{facility}|CARECIRCLE|CC|20240301101502||ADT^{event}^ADT_A01|{control_id}|P|2.5.1\r\
EVN|{event}|20240301101500\r\
PID|1||{mrn}^^^RXX^MR||SMITH^JOHN^^^MR^^L||19700101|M\r\
PV1|1|E|ED^BAY2^1^RXX01||||||||||||||||{visit}^^^RXX^VN{extra_pv1}\r"
    )
}

/// PV1-44 admit time and PV1-45 discharge time appended after PV1-19.
fn times(admit: &str, discharge: &str) -> String {
    format!("{}|{admit}|{discharge}", "|".repeat(24))
}

async fn send(client: &mut MllpClient, message: &str) -> AckSummary {
    tokio::time::timeout(Duration::from_secs(30), client.send_and_read_ack(message.as_bytes()))
        .await
        .expect("an acknowledgement within 30 s")
        .expect("a readable acknowledgement")
}

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let response =
        reqwest::Client::new().get(format!("{}/{path}", server.http)).bearer_auth(token).send().await.unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adt_messages_become_one_encounter_and_every_message_is_answered() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let server = start_server(&data).await;
    let token = system_token(&data, &server);
    let mut client = MllpClient::connect(&server.mllp).await.unwrap();

    // An A04 for a person the record does not know: Patient and Encounter created, AA.
    let a04 = adt("RXX01", "A04", "MSG1", "MRN100", "V100", &times("20240301100000", ""));
    let ack = send(&mut client, &a04).await;
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "MSG1"), "{ack:?}");
    // The same message again (its ACK lost): nothing new.
    assert_eq!(send(&mut client, &a04).await.code, AckCode::Accept);

    let visit = "identifier=urn:carecircle:hl7v2:RXX01:RXX%7CV100";
    let found = entries(&get(&server, &token, &format!("Encounter?{visit}")).await);
    assert_eq!(found.len(), 1, "{found:?}");
    let encounter = &found[0];
    assert_eq!(encounter["status"], "arrived");
    assert_eq!(encounter["meta"]["versionId"], "1", "the resent message wrote nothing");
    assert_eq!(encounter["meta"]["source"], "Organization/org-rxx");
    assert_eq!(encounter["class"]["code"], "EMER");
    let subject = encounter["subject"]["reference"].as_str().unwrap().to_string();
    let patient = get(&server, &token, &subject).await;
    assert_eq!(patient["name"][0]["family"], "SMITH");
    assert_eq!(patient["identifier"][0]["value"], "MRN100");

    // The A03 of the same visit updates the same Encounter to finished; sent twice, once stored.
    let a03 = adt("RXX01", "A03", "MSG2", "MRN100", "V100", &times("20240301100000", "20240301160000"));
    for _ in 0..2 {
        let ack = send(&mut client, &a03).await;
        assert_eq!(ack.code, AckCode::Accept, "{ack:?}");
    }
    let found = entries(&get(&server, &token, &format!("Encounter?{visit}")).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], encounter["id"]);
    assert_eq!(found[0]["status"], "finished");
    assert_eq!(found[0]["meta"]["versionId"], "2");
    assert_eq!(found[0]["period"]["start"], "2024-03-01T10:00:00Z");
    assert_eq!(found[0]["period"]["end"], "2024-03-01T16:00:00Z");
    assert_eq!(found[0]["subject"]["reference"], subject.as_str(), "the known patient is found again");
    let patients = entries(&get(&server, &token, "Patient?identifier=MRN100").await);
    assert_eq!(patients.len(), 1, "one Patient however many messages: {patients:?}");

    // An unknown facility is refused (AR, 204) and the connection goes on.
    let unknown = send(&mut client, &adt("ELSEWHERE", "A04", "MSG3", "MRN1", "V1", "")).await;
    assert_eq!(unknown.code, AckCode::Reject, "{unknown:?}");
    assert_eq!(unknown.error_code.as_deref(), Some("204"), "{unknown:?}");

    // Malformed messages get AE/AR on the same connection, which stays usable.
    let no_visit = "MSH|^~\\&|PAS|RXX01|CC|CC|20240301101502||ADT^A01|MSG4|P|2.5.1\rPID|1||MRN9^^^RXX^MR\r";
    assert_eq!(send(&mut client, no_visit).await.code, AckCode::Error);
    assert_eq!(send(&mut client, "this is not HL7").await.code, AckCode::Reject);
    let a02_without_visit_number = adt("RXX01", "A02", "MSG5", "MRN100", "", "");
    let ack = send(&mut client, &a02_without_visit_number).await;
    assert_eq!((ack.code, ack.error_code.as_deref()), (AckCode::Error, Some("101")), "{ack:?}");
    let a13 = adt("RXX01", "A13", "MSG6", "MRN100", "V100", "");
    assert_eq!(send(&mut client, &a13).await.code, AckCode::Accept);
    let found = entries(&get(&server, &token, &format!("Encounter?{visit}")).await);
    assert_eq!(found[0]["status"], "in-progress", "A13 cancels the discharge");
    assert_eq!(found[0]["period"]["start"], "2024-03-01T10:00:00Z");
    assert!(found[0]["period"].get("end").is_none(), "{:?}", found[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a40_retires_the_prior_record_into_the_surviving_one() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let server = start_server(&data).await;
    let token = system_token(&data, &server);
    let mut client = MllpClient::connect(&server.mllp).await.unwrap();

    let a01 = adt("RXX01", "A01", "M1", "OLD7", "V7", "");
    assert_eq!(send(&mut client, &a01).await.code, AckCode::Accept);
    let merge = "MSH|^~\\&|PAS|RXX01|CC|CC|20240302101502||ADT^A40^ADT_A39|M2|P|2.5.1\r\
EVN|A40|20240302101500\r\
PID|1||NEW7^^^RXX^MR||SMITH^JOHN^^^MR^^L||19700101|M\r\
MRG|OLD7^^^RXX^MR\r";
    assert_eq!(send(&mut client, merge).await.code, AckCode::Accept);
    assert_eq!(send(&mut client, merge).await.code, AckCode::Accept, "a merge sent again is answered AA");

    let survivors = entries(&get(&server, &token, "Patient?identifier=NEW7").await);
    assert_eq!(survivors.len(), 1, "{survivors:?}");
    let survivor = &survivors[0];
    let survivor_ref = format!("Patient/{}", survivor["id"].as_str().unwrap());
    let olds = entries(&get(&server, &token, "Patient?identifier=OLD7").await);
    assert_eq!(olds.len(), 2, "the survivor carries the old number too: {olds:?}");
    let prior = olds.iter().find(|p| p["id"] != survivor["id"]).unwrap();
    assert_eq!(prior["active"], false);
    assert_eq!(prior["link"][0]["type"], "replaced-by");
    assert_eq!(prior["link"][0]["other"]["reference"], survivor_ref.as_str());
    assert_eq!(prior["meta"]["versionId"], "2", "the resent merge wrote nothing more");

    let encounters = entries(&get(&server, &token, "Encounter?identifier=V7").await);
    assert_eq!(encounters.len(), 1);
    assert_eq!(encounters[0]["subject"]["reference"], survivor_ref.as_str());

    // A later message under the old number finds the surviving record.
    let a08 = adt("RXX01", "A08", "M3", "OLD7", "V7", "");
    assert_eq!(send(&mut client, &a08).await.code, AckCode::Accept);
    let encounters = entries(&get(&server, &token, "Encounter?identifier=V7").await);
    assert_eq!(encounters[0]["subject"]["reference"], survivor_ref.as_str());
}

/// Many senders at once: messages of one round are written together (group commit). Each
/// connection's A01 → A08 → A03 of its own visit applies in order, the A01/A03 pairs split
/// across two connections still make one Encounter each, and a bad message among them is
/// answered on its own while the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_are_batched_without_losing_order_or_isolation() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let server = start_server(&data).await;
    let token = system_token(&data, &server);
    const N_CONNECTIONS: usize = 16;

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N_CONNECTIONS));
    let mut tasks = Vec::new();
    for c in 0..N_CONNECTIONS {
        let (address, barrier) = (server.mllp.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = MllpClient::connect(&address).await.unwrap();
            barrier.wait().await;
            let mut codes = Vec::new();
            // Its own visit, in order.
            let own = |event: &str, n: usize, discharge: &str| {
                adt(
                    "RXX01",
                    event,
                    &format!("C{c}-{n}"),
                    &format!("MRN{c}"),
                    &format!("VC{c}"),
                    &times("20240301100000", discharge),
                )
            };
            for message in [own("A01", 1, ""), own("A08", 2, ""), own("A03", 3, "20240301160000")] {
                codes.push(send(&mut client, &message).await);
            }
            // A visit shared with the next connection: this one admits, that one discharges.
            let shared = if c % 2 == 0 {
                adt("RXX01", "A01", &format!("S{c}"), &format!("MRS{}", c / 2), &format!("VS{}", c / 2), "")
            } else {
                adt("RXX01", "A08", &format!("S{c}"), &format!("MRS{}", c / 2), &format!("VS{}", c / 2), "")
            };
            codes.push(send(&mut client, &shared).await);
            // One connection sends a Patient the record refuses (a control character in PID-5).
            if c == 5 {
                let bad = "MSH|^~\\&|PAS|RXX01|CC|CC|20240301101502||ADT^A01^ADT_A01|BAD1|P|2.5.1\r\
EVN|A01|20240301101500\r\
PID|1||MRNBAD^^^RXX^MR||SM\\X01\\ITH^JOHN||19700101|M\r\
PV1|1|I|WARD1||||||||||||||||VBAD^^^RXX^VN\r";
                codes.push(send(&mut client, bad).await);
            }
            codes
        }));
    }
    let mut answered = Vec::new();
    for task in tasks {
        answered.extend(task.await.unwrap());
    }
    assert_eq!(answered.len(), N_CONNECTIONS * 4 + 1);
    for ack in &answered {
        let expected = if ack.control_id == "BAD1" { AckCode::Error } else { AckCode::Accept };
        assert_eq!(ack.code, expected, "{ack:?}");
    }

    for c in 0..N_CONNECTIONS {
        let found = entries(&get(&server, &token, &format!("Encounter?identifier=VC{c}")).await);
        assert_eq!(found.len(), 1, "visit VC{c}: {found:?}");
        assert_eq!(found[0]["status"], "finished", "the A03 came last on its connection");
        // The A08 says what the A01 said (nothing to write); the A03 writes the second version.
        assert_eq!(found[0]["meta"]["versionId"], "2", "A01 and A03 each wrote one version");
        let patients = entries(&get(&server, &token, &format!("Patient?identifier=MRN{c}")).await);
        assert_eq!(patients.len(), 1, "one Patient for MRN{c}");
    }
    for pair in 0..N_CONNECTIONS / 2 {
        let found = entries(&get(&server, &token, &format!("Encounter?identifier=VS{pair}")).await);
        assert_eq!(found.len(), 1, "one Encounter for the visit sent over two connections: {found:?}");
        let patients = entries(&get(&server, &token, &format!("Patient?identifier=MRS{pair}")).await);
        assert_eq!(patients.len(), 1, "one Patient for MRS{pair}");
    }
    let bad = entries(&get(&server, &token, "Encounter?identifier=VBAD").await);
    assert!(bad.is_empty(), "nothing of the refused message is stored: {bad:?}");
}
