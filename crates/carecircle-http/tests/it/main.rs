//! Integration tests of the FHIR REST API: each test gets its own app on its own SQLite file and
//! talks to it through the router, as a client would.

mod access;
mod auth;
mod bad_input;
mod break_glass_review;
mod bundles;
mod coordination;
mod examples;
mod identity;
mod interactions;
mod lists;
mod pdqm;
mod search;
mod subscriptions;
mod websocket;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use carecircle_access::engine::Scheme;
use carecircle_access::ConsentModel;
use carecircle_audit_store::{load_or_create_signer, AuditLog, AuditLogConfig, AuditStore};
use carecircle_auth::{SigningKey, TokenRequest, DEV_ISSUER};
use carecircle_http::auth::AuthConfig;
use carecircle_http::{router, HttpConfig, DEFAULT_MAX_BODY_BYTES};
use carecircle_notify::{EventStream, InProcessBus, Notifier, NotifyConfig};
use carecircle_record::{Caller, Guard, PolicyAccess, PublishingStore, Record};
use carecircle_store::Store;
use carecircle_store_sqlite::SqliteStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The base URL the test apps believe they are served at.
pub const BASE: &str = "http://carecircle.test/fhir";

/// The code system of partner sectors.
pub const SECTOR: &str = "https://carecircle.example.org/fhir/CodeSystem/partner-sector";

/// The partner every test app knows and writes as by default.
pub const PARTNERSHIP: &str = "Organization/partnership";

/// A running app, its private data directory, and the development issuer's key it trusts.
pub struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
    /// The record behind the API, for seeding what a test needs without going through it.
    pub record: Record,
    dev_key: SigningKey,
    default_token: String,
}

/// A response, with its body parsed as JSON when it is JSON.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_limit(DEFAULT_MAX_BODY_BYTES).await
    }

    pub async fn with_limit(max_body_bytes: usize) -> TestApp {
        TestApp::build(max_body_bytes, None).await.0
    }

    /// An app whose writes are published on an in-process bus to a running notifier (as `serve`
    /// runs it), with the notifier reachable by the handlers.
    pub async fn with_notifier(config: NotifyConfig) -> (TestApp, Notifier) {
        let (app, notifier) = TestApp::build(DEFAULT_MAX_BODY_BYTES, Some(config)).await;
        (app, notifier.expect("a notifier"))
    }

    async fn build(max_body_bytes: usize, notify: Option<NotifyConfig>) -> (TestApp, Option<Notifier>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_dir(dir.path()).expect("open store");
        store.migrate().await.expect("migrate");
        let store: Arc<dyn Store> = Arc::new(store);
        let (store, events): (Arc<dyn Store>, Option<EventStream>) = match notify {
            Some(_) => {
                let (bus, events) = InProcessBus::new();
                (Arc::new(PublishingStore::new(store, Arc::new(bus))), Some(events))
            }
            None => (store, None),
        };
        let unguarded = Record::new(store.clone());
        let partnership = Caller { custodian: PARTNERSHIP.into() };
        unguarded
            .update(
                &partnership,
                "Organization",
                "partnership",
                serde_json::json!({"resourceType": "Organization", "id": "partnership", "name": "The partnership",
                    "type": [{"coding": [{"system": SECTOR, "code": "acute"}]}]}),
                None,
            )
            .await
            .expect("seed the partnership");
        let audit_store = AuditStore::open_sqlite_dir(dir.path()).await.expect("audit store");
        let signer = load_or_create_signer(&dir.path().join("audit.key"), "carecircle.test/audit").expect("audit key");
        let audit = AuditLog::start(audit_store, signer, AuditLogConfig::default());
        let access = PolicyAccess::load(unguarded.clone(), Scheme::new(ConsentModel::OptOut), true, PARTNERSHIP)
            .await
            .expect("access");
        let record = Record::with_guard(store, Guard { access: Arc::new(access), audit: Arc::new(audit) });
        let config = HttpConfig {
            base_url: BASE.into(),
            max_body_bytes,
            default_custodian: partnership,
            load_person_index_at_start: false,
        };
        carecircle_http::init_metrics();
        let dev_key = SigningKey::generate();
        let auth = AuthConfig::new(BASE, SigningKey::generate(), Some(dev_key.clone()), Vec::new());
        let default_token = TestApp::mint_with(&dev_key, TestApp::system_request(PARTNERSHIP));
        let mut router = router(record.clone(), config, Arc::new(auth));
        let mut running = None;
        if let (Some(notify), Some(events)) = (notify, events) {
            let notifier = Notifier::new(record.clone(), notify).expect("notifier");
            notifier.start(events).await.expect("start the notifier");
            router = router.layer(axum::Extension(notifier.clone()));
            running = Some(notifier);
        }
        (TestApp { router, _dir: dir, record, dev_key, default_token }, running)
    }

    /// Serves the app on a loopback port (for clients that need a real connection, such as
    /// websockets) and answers its address.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        address
    }

    fn mint_with(key: &SigningKey, request: TokenRequest) -> String {
        request.mint(key, DEV_ISSUER, BASE).expect("mint a token")
    }

    /// Stores a resource directly (as the partnership), as set-up data a test needs; the access
    /// decision learns of it as it would of any write.
    pub async fn seed(&self, custodian: &str, body: Value) {
        let resource_type = body["resourceType"].as_str().expect("resourceType").to_string();
        let id = body["id"].as_str().expect("id").to_string();
        self.record
            .update(&Caller { custodian: custodian.into() }, &resource_type, &id, body.clone(), None)
            .await
            .expect("seed");
        if let Some(guard) = self.record.guard() {
            guard.access.after_write(&resource_type, Some(&body)).await;
        }
    }

    /// A registered partner organisation of `sector`.
    pub async fn seed_partner(&self, id: &str, sector: &str) {
        self.seed(
            PARTNERSHIP,
            serde_json::json!({"resourceType": "Organization", "id": id, "name": id,
                               "type": [{"coding": [{"system": SECTOR, "code": sector}]}]}),
        )
        .await;
    }

    /// The data directory of the app's embedded store, for a second process's view of it.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A bearer header value for `token`.
    pub fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// What a partner system's token carries.
    pub fn system_request(organization: &str) -> TokenRequest {
        TokenRequest {
            subject: format!("system-{organization}"),
            organization: Some(organization.into()),
            scope: "system/*.cruds".into(),
            ttl_seconds: 600,
            ..Default::default()
        }
    }

    /// A token from the development issuer this app trusts.
    pub fn token(&self, request: TokenRequest) -> String {
        TestApp::mint_with(&self.dev_key, request)
    }

    /// Any claims, signed by the development issuer's key (for tokens `TokenRequest` cannot make).
    pub fn sign(&self, claims: &Value) -> String {
        self.dev_key.sign(claims).expect("sign")
    }

    /// The administrator's token.
    pub fn admin_token(&self) -> String {
        self.token(TokenRequest {
            subject: "carecircle-admin".into(),
            admin: true,
            scope: "user/*.cruds".into(),
            ttl_seconds: 600,
            ..Default::default()
        })
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        // Requests go as the partnership's system unless the test says otherwise; an empty
        // Authorization header means "send none".
        let bearer = format!("Bearer {}", self.default_token);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization")) {
            builder = builder.header("authorization", bearer.as_str());
        }
        for (name, value) in headers {
            if !(name.eq_ignore_ascii_case("authorization") && value.is_empty()) {
                builder = builder.header(*name, *value);
            }
        }
        if body.is_some() && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
            builder = builder.header("content-type", "application/fhir+json");
        }
        let request = builder.body(body.map(Body::from).unwrap_or_else(Body::empty)).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        TestResponse { status, headers, body, text }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Method::GET, uri, &[], None).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, uri, &[], Some(body.to_string())).await
    }

    pub async fn put(&self, uri: &str, body: &Value) -> TestResponse {
        self.request(Method::PUT, uri, &[], Some(body.to_string())).await
    }

    /// The number of stored resources of a type, through the API.
    pub async fn count(&self, resource_type: &str) -> u64 {
        let response = self.get(&format!("/{resource_type}?_summary=count")).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        response.body["total"].as_u64().expect("total")
    }
}

/// Asserts an `OperationOutcome` error with `status` whose issues mention `expression` (when
/// given) and whose diagnostics contain `words`.
pub fn assert_outcome(response: &TestResponse, status: StatusCode, expression: Option<&str>, words: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.body["resourceType"], "OperationOutcome", "{}", response.text);
    assert!(
        response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/fhir+json")),
        "OperationOutcome must be FHIR JSON"
    );
    let issues = response.body["issue"].as_array().expect("issues");
    assert!(issues.iter().all(|i| i["severity"] == "error" || i["severity"] == "fatal" || i["severity"] == "warning"));
    if let Some(expression) = expression {
        assert!(
            issues.iter().any(|i| i["expression"].as_array().is_some_and(|e| e.iter().any(|x| x == expression))),
            "expected an issue at {expression}: {}",
            response.text
        );
    }
    assert!(
        issues
            .iter()
            .any(|i| i["diagnostics"].as_str().is_some_and(|d| d.to_lowercase().contains(&words.to_lowercase()))),
        "expected '{words}' in the diagnostics: {}",
        response.text
    );
}

/// A small valid Patient.
pub fn patient(family: &str, given: &str, birth_date: &str, nhs_number: &str) -> Value {
    serde_json::json!({
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth_date
    })
}
