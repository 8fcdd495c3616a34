//! The FHIR R4 REST API of carecircle. Handlers translate HTTP to calls of the record service
//! and back; they never touch storage directly.

pub mod audit;
pub mod auth;
pub mod break_glass_review;
mod bundles;
mod capability;
mod care_team;
pub mod error;
mod explain;
pub mod fhir_json;
pub mod identity;
mod interactions;
mod lists;
mod observability;
mod review;
pub mod subscriptions;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use carecircle_record::{Caller, Record};

pub use observability::init_metrics;

/// Default request body limit: 8 MiB, enough for large transaction Bundles of ordinary records.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The public base URL (no trailing slash), used in `Location`, `fullUrl` and links.
    pub base_url: String,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The custodian recorded for writes that do not name one with `X-Custodian`.
    pub default_custodian: Caller,
    /// Load the person index in the background as the router is built (`serve`), instead of at
    /// the first identity request, so that Patient writes are matched before they are answered
    /// from the start.
    pub load_person_index_at_start: bool,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The record service.
    pub record: Record,
    /// Settings.
    pub config: Arc<HttpConfig>,
    /// The CapabilityStatement, built once.
    pub capability: Arc<serde_json::Value>,
    /// Token verification, keys and the token endpoint's settings.
    pub auth: Arc<auth::AuthConfig>,
    /// The person index (`$match`, `$ihe-pix`), loaded on first use.
    pub identity: Arc<identity::Identity>,
}

impl FromRef<AppState> for Record {
    fn from_ref(state: &AppState) -> Record {
        state.record.clone()
    }
}

/// The application router.
pub fn router(record: Record, config: HttpConfig, auth: Arc<auth::AuthConfig>) -> Router {
    let capability =
        Arc::new(subscriptions::describe(capability::capability_statement(&config.base_url), &config.base_url));
    let state = AppState { record, config: Arc::new(config), capability, auth, identity: Default::default() };
    if state.config.load_person_index_at_start {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = state.identity.index(&state).await {
                tracing::warn!(?error, "loading the person index failed; the first identity request retries");
            }
        });
    }
    Router::new()
        .route("/.well-known/smart-configuration", get(auth::smart_configuration))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/auth/token", axum::routing::post(auth::token))
        .route("/audit/checkpoint", get(audit::checkpoint))
        .route("/audit/proof/{seq}", get(audit::proof))
        .route("/audit/key", get(audit::key))
        .route("/audit/consistency", get(audit::consistency))
        .route("/audit/unusual-access", get(audit::unusual_access))
        .route("/audit/break-glass", get(audit::break_glass))
        .route("/audit/break-glass/queue", get(break_glass_review::queue))
        .route("/audit/break-glass/{seq}/review", axum::routing::post(break_glass_review::review))
        .route("/metadata", get(interactions::metadata))
        .route("/healthz", get(observability::healthz))
        .route("/metrics", get(observability::metrics))
        .route("/", get(interactions::search_system).post(interactions::bundle))
        .route("/_history", get(interactions::history_system))
        .route("/Patient/$match", axum::routing::post(identity::patient_match))
        .route("/Patient/$ihe-pix", get(identity::patient_ihe_pix))
        .route("/Subscription/{id}/$status", get(subscriptions::status))
        .route("/Subscription/{id}/$events", get(subscriptions::events))
        .route(
            "/Subscription/$get-ws-binding-token",
            get(subscriptions::ws_binding_token_type_get).post(subscriptions::ws_binding_token_type_post),
        )
        .route(
            "/Subscription/{id}/$get-ws-binding-token",
            get(subscriptions::ws_binding_token_instance).post(subscriptions::ws_binding_token_instance),
        )
        .route(subscriptions::WEBSOCKET_PATH, get(subscriptions::websocket))
        .route("/Communication/{id}/$acknowledge", axum::routing::post(subscriptions::acknowledge))
        .route("/Patient/$match-review", get(review::queue).post(review::decide))
        .route("/Organization/{id}/$upload-list", axum::routing::post(lists::upload))
        .route("/{resource_type}", get(interactions::search_type).post(interactions::create))
        .route("/{resource_type}/_search", axum::routing::post(interactions::search_type_post))
        .route("/{resource_type}/_history", get(interactions::history_type))
        .route("/{resource_type}/{id}", get(interactions::read).put(interactions::update).delete(interactions::delete))
        .route("/{resource_type}/{id}/_history", get(interactions::history_instance))
        .route("/{resource_type}/{id}/_history/{version}", get(interactions::vread))
        .route(
            "/{resource_type}/{id}/{operation}",
            get(interactions::instance_operation).post(interactions::instance_operation),
        )
        .fallback(interactions::no_route)
        .method_not_allowed_fallback(interactions::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), identity::index_patient_writes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(observability::track))
        .with_state(state)
}
