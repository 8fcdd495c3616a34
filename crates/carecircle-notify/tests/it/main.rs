//! Integration tests of the event runtime: a guarded record on its own SQLite directory, the
//! in-process bus (NATS JetStream in `nats`), a notifier with short retry and acknowledgement
//! times, and a local rest-hook receiver on a loopback port that can be told to fail.

mod alerts;
mod nats;
mod subscriptions;
mod websocket;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use carecircle_audit_store::{load_or_create_signer, AuditLog, AuditLogConfig, AuditStore};
use carecircle_auth::Scopes;
use carecircle_care::RetryPolicy;
use carecircle_notify::{InProcessBus, Notifier, NotifyConfig};
use carecircle_record::{
    person_of, AccessAction, AccessControl, Caller, Candidate, Guard, Principal, PrincipalKind, PublishingStore,
    Record, RecordError, RequestMeta, Verdict,
};
use carecircle_store::Store;
use carecircle_store_sqlite::SqliteStore;
use serde_json::Value;

/// The partnership, custodian of alerts.
pub const PARTNERSHIP: &str = "Organization/partnership";

/// An access decision for tests: writes are permitted; a read is permitted to the custodian's own
/// organisation and to organisations granted the person (who are then "in care").
#[derive(Default)]
pub struct GrantAccess {
    grants: Mutex<HashSet<(String, String)>>,
}

impl GrantAccess {
    pub fn grant(&self, organisation: &str, patient_id: &str) {
        self.grants.lock().unwrap().insert((organisation.to_string(), patient_id.to_string()));
    }
}

#[async_trait]
impl AccessControl for GrantAccess {
    async fn decide(
        &self,
        principal: &Principal,
        action: AccessAction,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, RecordError> {
        let grants = self.grants.lock().unwrap();
        Ok(candidates
            .iter()
            .map(|c| {
                let org = principal.organization.clone().unwrap_or_default();
                let person = person_of(c.resource_type, c.id, c.resource);
                let granted = person.as_ref().is_some_and(|p| grants.contains(&(org.clone(), p.clone())));
                let permit = action != AccessAction::Read
                    || principal.is_admin()
                    || c.custodian == Some(org.as_str())
                    || granted;
                Verdict {
                    permit,
                    break_glass: false,
                    in_care_relationship: person.as_ref().map(|_| granted),
                    policy_id: if permit { "test:permit".into() } else { "test:deny".into() },
                    clause_ids: Vec::new(),
                    explanation: if permit { "granted".into() } else { "not granted".into() },
                }
            })
            .collect())
    }
}

/// What the receiver kept: each request's Authorization header and body.
pub type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A rest-hook receiver on a loopback port: keeps what it is sent and answers 500 to the first
/// `fail_first` requests.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub received: Received,
    pub fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let received: Received = Arc::default();
        let fail = Arc::new(AtomicUsize::new(fail_first));
        let (kept, failing) = (received.clone(), fail.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (kept, failing) = (kept.clone(), failing.clone());
                async move {
                    if failing.load(Ordering::SeqCst) > 0 {
                        failing.fetch_sub(1, Ordering::SeqCst);
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                    kept.lock().unwrap().push((auth, serde_json::from_str(&body).unwrap_or(Value::Null)));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{address}/hook"), received, fail_first: fail }
    }

    /// The bundles received so far.
    pub fn bundles(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Waits (at most 10 s) until `n` bundles have arrived, and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        wait_until(|| self.received.lock().unwrap().len() >= n).await;
        self.bundles()
    }
}

/// Polls `condition` every 20 ms for at most 10 s.
pub async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A guarded record over a publishing store, and a running notifier.
pub struct TestRuntime {
    pub record: Record,
    pub notifier: Notifier,
    pub access: Arc<GrantAccess>,
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

/// The notifier settings of the tests: retries after 50, 100, 200 ms (4 attempts), a tick every
/// 50 ms.
pub fn test_config() -> NotifyConfig {
    let mut config = NotifyConfig::new("http://carecircle.test/fhir", PARTNERSHIP);
    config.retry = RetryPolicy {
        initial_delay: time::Duration::milliseconds(50),
        max_delay: time::Duration::milliseconds(400),
        max_attempts: 4,
    };
    config.tick_every = Duration::from_millis(50);
    config.request_timeout = Duration::from_secs(2);
    config
}

impl TestRuntime {
    pub async fn new() -> TestRuntime {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_dir(dir.path()).expect("open store");
        store.migrate().await.expect("migrate");
        let runtime =
            TestRuntime::on(Arc::new(store), dir.path(), Arc::new(GrantAccess::default()), test_config()).await;
        TestRuntime { _dir: Some(dir), ..runtime }
    }

    /// A runtime over an existing store (as a second process would be).
    pub async fn on(
        raw: Arc<dyn Store>,
        dir: &std::path::Path,
        access: Arc<GrantAccess>,
        config: NotifyConfig,
    ) -> TestRuntime {
        let (bus, stream) = InProcessBus::new();
        let store: Arc<dyn Store> = Arc::new(PublishingStore::new(raw, Arc::new(bus)));
        let audit_store = AuditStore::open_sqlite_dir(dir).await.expect("audit store");
        let signer = load_or_create_signer(&dir.join("audit.key"), "carecircle.test/audit").expect("audit key");
        let audit = AuditLog::start(audit_store, signer, AuditLogConfig::default());
        let record = Record::with_guard(store.clone(), Guard { access: access.clone(), audit: Arc::new(audit) });
        let notifier = Notifier::new(record.clone(), config).expect("notifier");
        notifier.start(stream).await.expect("start");
        TestRuntime { record, notifier, access, store, _dir: None }
    }

    /// Writes `body` through `organisation`'s session (its system), as that organisation.
    pub async fn write_as(&self, organisation: &str, body: Value) -> Value {
        let principal = system(organisation);
        let session = self.record.session(&principal, RequestMeta::default()).expect("session");
        let caller = Caller { custodian: organisation.to_string() };
        let resource_type = body["resourceType"].as_str().expect("resourceType").to_string();
        let stored = match body.get("id").and_then(Value::as_str) {
            Some(id) => session.update(&caller, &resource_type, id, body.clone(), None).await.expect("update").stored,
            None => match session.create(&caller, &resource_type, body, None).await.expect("create") {
                carecircle_record::Created::New(s) | carecircle_record::Created::Existing(s) => s,
            },
        };
        stored.json().expect("stored body")
    }
}

/// A partner organisation's system principal.
pub fn system(organisation: &str) -> Principal {
    Principal {
        kind: PrincipalKind::System,
        subject: format!("system-{organisation}"),
        organization: Some(organisation.to_string()),
        role: None,
        can_break_glass: false,
        purpose: "TREAT".into(),
        reason: None,
        scopes: Scopes::parse("system/*.cruds").expect("scopes"),
        token_id: String::new(),
    }
}
