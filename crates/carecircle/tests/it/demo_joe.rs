//! Joe in the demo, end to end (issue 5, item 7): `carecircle demo --mllp`, the hospital's ADT
//! A04 for Joe's emergency department attendance (the same file the demo script sends), and the
//! alerts his shared crisis plan asks for, read by a professional of each agency it names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use carecircle_hl7::{AckCode, AckSummary};
use carecircle_mllp::MllpClient;
use serde_json::Value;

use crate::carecircle;

/// The demo's A04 files, as `scripts/demo-joe.sh` sends them.
const A04: &str = include_str!("../../../../docs/demo/joe-ed-a04.hl7");
const A04_REPEAT: &str = include_str!("../../../../docs/demo/joe-ed-a04-repeat.hl7");

const ALERT_CATEGORY: &str = "https://carecircle.example.org/fhir/CodeSystem/communication-category|care-plan-alert";
const ALERT_STATE: &str = "https://carecircle.example.org/fhir/StructureDefinition/alert-state";

/// The agencies the plan's `ed-attendance` trigger names, each with the professional who reads
/// its alert and the contact the alert goes to first.
const NAMED: [(&str, &str, &str); 4] = [
    ("org-vale-mh-trust", "prac-vale-mh-trust-01", "PractitionerRole/role-vale-mh-trust-01"),
    ("org-vale-mh-crisis-team", "prac-vale-mh-trust-04", "PractitionerRole/role-vale-mh-trust-04"),
    ("org-northvale-police-mh-liaison", "prac-northvale-police-01", "PractitionerRole/role-northvale-police-01"),
    ("org-minsterford-hospital-ed", "prac-minsterford-hospital-01", "PractitionerRole/role-minsterford-hospital-04"),
];

struct Demo {
    child: Child,
    http: String,
    mllp: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_demo(data: &Path) -> Demo {
    let (http, mllp) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let child = carecircle(data)
        .args(["demo", "--people", "300", "--listen", &http, "--mllp", &mllp])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let mut demo = Demo { child, http: format!("http://{http}"), mllp };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(Some(status)) = demo.child.try_wait() {
            panic!("the demo exited with {status}");
        }
        let up = reqwest::get(format!("{}/healthz", demo.http)).await.is_ok_and(|r| r.status().is_success());
        if up && tokio::net::TcpStream::connect(&demo.mllp).await.is_ok() {
            return demo;
        }
        assert!(Instant::now() < deadline, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn token(data: &Path, demo: &Demo, user: &str) -> String {
    let output = carecircle(data).args(["token", "--user", user, "--audience", &demo.http]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn send(demo: &Demo, file: &str) -> AckSummary {
    let mut client = MllpClient::connect(&demo.mllp).await.unwrap();
    let message = file.trim_end().replace("\r\n", "\r").replace('\n', "\r") + "\r";
    tokio::time::timeout(Duration::from_secs(30), client.send_and_read_ack(message.as_bytes()))
        .await
        .expect("an acknowledgement within 30 s")
        .expect("a readable acknowledgement")
}

/// The care-plan alerts addressed to `agency`, searched with `token`.
async fn alerts_for(demo: &Demo, token: &str, agency: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/Communication", demo.http))
        .query(&[("category", ALERT_CATEGORY), ("recipient", &format!("Organization/{agency}"))])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let bundle: Value = response.json().await.unwrap();
    // A search that withheld something says so in an OperationOutcome entry: not an alert.
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .filter(|r| r["resourceType"] == "Communication")
        .collect()
}

fn state(alert: &Value) -> Value {
    let text = alert["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == ALERT_STATE)
        .and_then(|e| e["valueString"].as_str())
        .expect("the alert's state");
    serde_json::from_str(text).unwrap()
}

/// Every alert Communication in the store (read directly: what was raised, for whom).
fn stored_alerts(data: &Path) -> Vec<Value> {
    let db = rusqlite::Connection::open(data.join("carecircle.db")).unwrap();
    let mut statement =
        db.prepare("SELECT body FROM resources WHERE res_type = 'Communication' AND deleted = 0").unwrap();
    let bodies: Vec<String> = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|c| c["category"][0]["coding"][0]["code"] == "care-plan-alert")
        .collect()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ed_attendance_over_mllp_alerts_the_agencies_joes_plan_names() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let demo = start_demo(&data).await;
    let tokens: BTreeMap<&str, String> = NAMED.iter().map(|(_, user, _)| (*user, token(&data, &demo, user))).collect();

    let ack = send(&demo, A04).await;
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "MFH-ED-000001"), "{ack:?}");

    // Each named agency's professional finds their agency's alert, with the plan part attached.
    let mut alert_ids = BTreeMap::new();
    for (agency, user, first_contact) in NAMED {
        let token = &tokens[user];
        wait_for(&format!("the alert for {agency}"), async || !alerts_for(&demo, token, agency).await.is_empty()).await;
        let alerts = alerts_for(&demo, token, agency).await;
        assert_eq!(alerts.len(), 1, "{agency}: {alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert["status"], "in-progress");
        assert_eq!(alert["priority"], "urgent");
        assert_eq!(alert["subject"]["reference"], "Patient/pat-vale-mh-trust-joe");
        assert_eq!(alert["recipient"][0]["reference"], format!("Organization/{agency}"));
        assert_eq!(alert["recipient"][1]["reference"], first_contact, "{agency}: the plan's first contact");
        let about: Vec<&str> =
            alert["about"].as_array().unwrap().iter().filter_map(|a| a["reference"].as_str()).collect();
        assert!(about.contains(&"CarePlan/careplan-joe-crisis"), "{about:?}");
        assert!(about.iter().any(|a| a.starts_with("Encounter/")), "{about:?}");
        let response = alert["payload"][0]["contentString"].as_str().unwrap();
        assert!(!response.is_empty());
        let attachment = &alert["payload"][1]["contentAttachment"];
        assert_eq!(attachment["contentType"], "application/fhir+json");
        let excerpt: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD.decode(attachment["data"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        let trigger = excerpt["extension"][0]["extension"].as_array().unwrap();
        assert!(
            trigger.iter().any(|e| e["url"] == "event" && e["valueCoding"]["code"] == "ed-attendance"),
            "the attached part is the ED trigger: {excerpt}"
        );
        let agreed: Vec<&Value> = trigger
            .iter()
            .filter(|e| e["url"] == "response")
            .filter(|r| r["extension"][0]["valueReference"]["reference"] == format!("Organization/{agency}"))
            .collect();
        assert_eq!(agreed.len(), 1, "{agency} has one agreed response in the attached part");
        assert_eq!(agreed[0]["extension"][1]["valueString"], response);
        alert_ids.insert(agency, alert["id"].as_str().unwrap().to_string());
    }

    // Only the agencies the trigger names were alerted: the ED attendance fires no other response.
    let stored = stored_alerts(&data);
    let alerted: BTreeSet<String> =
        stored.iter().map(|c| c["recipient"][0]["reference"].as_str().unwrap().to_string()).collect();
    let named: BTreeSet<String> = NAMED.iter().map(|(agency, _, _)| format!("Organization/{agency}")).collect();
    assert_eq!(alerted, named);
    assert_eq!(stored.len(), NAMED.len());

    // A professional in Joe's care team whose agency the trigger does not name sees no alert, and
    // one outside his care cannot read an alert at all.
    let housing = token(&data, &demo, "prac-kettlebeck-homes-01");
    for (agency, _, _) in NAMED {
        assert!(alerts_for(&demo, &housing, agency).await.is_empty(), "housing sees {agency}'s alert");
    }
    assert!(alerts_for(&demo, &housing, "org-kettlebeck-homes").await.is_empty());
    let outsider = token(&data, &demo, "prac-gp-riverside-01");
    let crisis_alert = &alert_ids["org-vale-mh-crisis-team"];
    let read = reqwest::Client::new()
        .get(format!("{}/Communication/{crisis_alert}", demo.http))
        .bearer_auth(&outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), reqwest::StatusCode::FORBIDDEN);

    // The police may not acknowledge the crisis team's alert; the crisis worker does.
    let acknowledge = |token: String| {
        let url = format!("{}/Communication/{crisis_alert}/$acknowledge", demo.http);
        async move { reqwest::Client::new().post(url).bearer_auth(token).send().await.unwrap() }
    };
    let refused = acknowledge(tokens["prac-northvale-police-01"].clone()).await;
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    let acknowledged = acknowledge(tokens["prac-vale-mh-trust-04"].clone()).await;
    assert!(acknowledged.status().is_success(), "{}", acknowledged.status());
    let acknowledged: Value = acknowledged.json().await.unwrap();
    assert_eq!(acknowledged["status"], "completed");
    assert_eq!(state(&acknowledged)["acknowledged"]["by"], "Practitioner/prac-vale-mh-trust-04");

    // Joe comes back to the ED three hours later: within the merge window, so each alert counts
    // the repeat and nobody is sent anything new.
    let before: BTreeMap<String, Value> =
        stored_alerts(&data).into_iter().map(|c| (c["id"].as_str().unwrap().to_string(), c)).collect();
    let ack = send(&demo, A04_REPEAT).await;
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "MFH-ED-000002"), "{ack:?}");
    wait_for("the repeat to be merged", async || {
        let alerts = stored_alerts(&data);
        alerts.len() == NAMED.len() && alerts.iter().all(|c| state(c)["occurrences"] == 2)
    })
    .await;
    for after in stored_alerts(&data) {
        let id = after["id"].as_str().unwrap();
        let prior = &before[id];
        assert_eq!(after["sent"], prior["sent"], "{id} was not re-sent");
        assert_eq!(after["recipient"], prior["recipient"], "{id} stays with the same contact");
        assert_eq!(after["status"], prior["status"], "{id}: the acknowledged one stays acknowledged");
        assert_eq!(state(&after)["merged_events"].as_array().unwrap().len(), 1);
    }
}
