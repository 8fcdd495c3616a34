//! Authentication on the wire: the bearer-token middleware (every route but discovery, metadata
//! and health needs a valid token), resolving a verified token to a [`Principal`] against the
//! record, SMART scope checks, SMART discovery (`/.well-known/smart-configuration`, the JWKS) and
//! the SMART Backend Services token endpoint (`POST /auth/token`).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use carecircle_auth::{
    verify_client_assertion, AuthError, ClientRegistration, Interaction, IssuerKind, ReplayGuard, Scopes, SigningKey,
    TokenRequest, TokenVerifier, VerifiedToken,
};
use carecircle_fhir::search::Handling;
use carecircle_fhir::{Issue, IssueType};
use carecircle_record::{Principal, PrincipalKind, Record, RecordError, DEFAULT_PURPOSE};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// The extension on a `PractitionerRole` that allows its holder to use break-glass (`ETREAT`).
pub const BREAK_GLASS_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/break-glass-allowed";
/// The identifier system of SMART Backend Services client ids on `Device` registrations.
pub const CLIENT_ID_SYSTEM: &str = "https://carecircle.example.org/fhir/NamingSystem/smart-client-id";
/// The extension on a client `Device` holding its JWKS (`jwks`, a JSON string) and the most it
/// may be granted (`scope`).
pub const CLIENT_EXTENSION: &str = "https://carecircle.example.org/fhir/StructureDefinition/smart-client";
/// The purposes of use (v3 ActReason) a token may declare.
pub const PURPOSES: [&str; 5] = ["TREAT", "ETREAT", "HOPERAT", "HRESCH", "PUBHLTH"];

/// Settings and keys of authentication.
pub struct AuthConfig {
    /// The issuers trusted for bearer tokens (own, development when enabled, external OIDC).
    pub verifier: RwLock<TokenVerifier>,
    /// The key the token endpoint signs system tokens with.
    pub own_key: SigningKey,
    /// The key of the development issuer, when enabled (published in the JWKS too).
    pub dev_key: Option<SigningKey>,
    /// Lifetime of tokens from the token endpoint, in seconds.
    pub system_token_ttl_seconds: u64,
    /// The external provider's authorization endpoint, advertised in SMART discovery.
    pub authorization_endpoint: Option<String>,
    /// Assertion ids already used at the token endpoint.
    pub replay_guard: ReplayGuard,
    /// Principals resolved per token (by its SHA-256), each with the store's write generation it
    /// was resolved at: reused only while the store reports no write since (see
    /// `Store::write_generation`; never with a store other processes write).
    principals: Mutex<HashMap<[u8; 32], (u64, Principal)>>,
}

/// Resolved principals remembered at most; when full the memory starts again.
const PRINCIPAL_CAPACITY: usize = 16_384;

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig").field("dev_issuer", &self.dev_key.is_some()).finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// Trusts the server's own issuer (`base_url`, for tokens its token endpoint mints), the
    /// development issuer when `dev_key` is given, and `external` issuers.
    pub fn new(
        base_url: &str,
        own_key: SigningKey,
        dev_key: Option<SigningKey>,
        external: Vec<carecircle_auth::TrustedIssuer>,
    ) -> AuthConfig {
        let mut issuers = vec![carecircle_auth::TrustedIssuer::own(base_url, base_url, IssuerKind::Own, &own_key)];
        if let Some(dev) = &dev_key {
            issuers.push(carecircle_auth::TrustedIssuer::own(
                carecircle_auth::DEV_ISSUER,
                base_url,
                IssuerKind::Development,
                dev,
            ));
        }
        issuers.extend(external);
        AuthConfig {
            verifier: RwLock::new(TokenVerifier::new(issuers)),
            own_key,
            dev_key,
            system_token_ttl_seconds: 300,
            authorization_endpoint: None,
            replay_guard: ReplayGuard::default(),
            principals: Mutex::default(),
        }
    }

    fn remembered_principals(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (u64, Principal)>> {
        self.principals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of a verified token: remembered when nothing was written since it was
    /// resolved, else resolved against the record (and remembered when the store allows).
    /// Also answers the write generation it read (after the request arrived), for the rest of
    /// the request (`carecircle_record::with_request_generation`).
    async fn principal(
        &self,
        record: &Record,
        token: &str,
        verified: &VerifiedToken,
    ) -> Result<(Principal, Option<u64>), Refusal> {
        let generation = record.store().write_generation();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(generation) = generation {
            if let Some((at, principal)) = self.remembered_principals().get(&key) {
                if *at == generation {
                    return Ok((principal.clone(), Some(generation)));
                }
            }
        }
        let principal = resolve_principal(record, verified).await?;
        if let Some(generation) = generation {
            let mut remembered = self.remembered_principals();
            if remembered.len() >= PRINCIPAL_CAPACITY {
                remembered.clear();
            }
            remembered.insert(key, (generation, principal.clone()));
        }
        Ok((principal, generation))
    }

    fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        // A poisoned lock means a key rotation panicked; the previous keys are still valid data.
        self.verifier.read().unwrap_or_else(|e| e.into_inner()).verify(token)
    }
}

/// Paths served without a token: discovery, the CapabilityStatement, health, the token endpoint.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/metadata"
            | "/healthz"
            | "/.well-known/smart-configuration"
            | "/.well-known/jwks.json"
            | "/auth/token"
            | "/audit/checkpoint"
            | "/audit/key"
            | "/audit/consistency"
            // The websocket of the Subscriptions websocket channel: its binding token is its credential.
            | crate::subscriptions::WEBSOCKET_PATH
    )
}

/// A 401 with an `OperationOutcome` and a `WWW-Authenticate` challenge.
pub fn unauthorized(message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, Issue::error(IssueType::Login, message.clone())).into_response();
    let challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        message.replace('"', "'").replace(|c: char| !c.is_ascii() || c.is_ascii_control(), " ")
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The middleware: verifies the bearer token, resolves the principal and hands it to handlers.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let token = match bearer(request.headers()) {
        Ok(token) => token,
        Err(e) => return unauthorized(e.to_string()),
    };
    let verified = match state.auth.verify(&token) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(reason = %e, "token refused");
            return unauthorized(e.to_string());
        }
    };
    match state.auth.principal(&state.record, &token, &verified).await {
        Ok((principal, generation)) => {
            request.extensions_mut().insert(principal);
            carecircle_record::with_request_generation(generation, next.run(request)).await
        }
        Err(Refusal::Unauthenticated(message)) => unauthorized(message),
        Err(Refusal::Api(error)) => error.into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Result<String, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let text = value.to_str().map_err(|_| AuthError::Malformed("the Authorization header is not text".into()))?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim().to_string())
}

enum Refusal {
    Unauthenticated(String),
    Api(ApiError),
}

impl From<RecordError> for Refusal {
    fn from(error: RecordError) -> Refusal {
        match error {
            RecordError::NotFound(_) | RecordError::Gone(_) => {
                Refusal::Unauthenticated("the token's user is not known to this server".into())
            }
            other => Refusal::Api(other.into()),
        }
    }
}

fn id_of<'a>(reference: &'a str, resource_type: &str) -> Option<&'a str> {
    reference.strip_prefix(resource_type)?.strip_prefix('/').filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Maps a verified token to who it speaks for. An unknown, inactive or role-less user is refused.
async fn resolve_principal(record: &Record, verified: &VerifiedToken) -> Result<Principal, Refusal> {
    let claims = &verified.claims;
    let purpose = claims.purpose_of_use.clone().unwrap_or_else(|| DEFAULT_PURPOSE.to_string());
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(Refusal::Unauthenticated(format!(
            "the token's purpose of use '{purpose}' is not one of {}",
            PURPOSES.join(", ")
        )));
    }
    let mut principal = Principal {
        kind: PrincipalKind::Admin,
        subject: claims.sub.clone(),
        organization: None,
        role: None,
        can_break_glass: false,
        purpose,
        reason: claims.purpose_reason.clone().filter(|r| !r.trim().is_empty()),
        scopes: verified.scopes.clone(),
        token_id: claims.jti.clone(),
    };
    if claims.carecircle_admin {
        return Ok(principal);
    }
    if let Some(organization) = &claims.organization {
        let id = id_of(organization, "Organization").ok_or_else(|| {
            Refusal::Unauthenticated("the token's organization is not an Organization reference".into())
        })?;
        record.read("Organization", id).await?;
        principal.kind = PrincipalKind::System;
        principal.organization = Some(organization.clone());
        return Ok(principal);
    }
    let fhir_user = match &claims.fhir_user {
        Some(user) => user.clone(),
        None if verified.issuer_kind == IssuerKind::External => {
            practitioner_by_identifier(record, &claims.iss, &claims.sub).await?
        }
        None => return Err(Refusal::Unauthenticated("the token names no user (fhirUser)".into())),
    };
    resolve_user(record, &fhir_user, principal).await
}

/// Completes `principal` for `fhir_user` (`Practitioner/{id}` or `Patient/{id}`): the person,
/// or the practitioner's active role, organisation (the partner of its team) and role code.
async fn resolve_user(record: &Record, fhir_user: &str, mut principal: Principal) -> Result<Principal, Refusal> {
    let fhir_user = fhir_user.to_string();
    if let Some(id) = id_of(&fhir_user, "Patient") {
        let patient = record.read("Patient", id).await?;
        if inactive(&patient.json().unwrap_or_default()) {
            return Err(Refusal::Unauthenticated("the token's person is not active".into()));
        }
        principal.kind = PrincipalKind::Patient;
        principal.subject = fhir_user.clone();
        return Ok(principal);
    }
    let id = id_of(&fhir_user, "Practitioner")
        .ok_or_else(|| Refusal::Unauthenticated("fhirUser must be Practitioner/{id} or Patient/{id}".into()))?;
    let practitioner = record.read("Practitioner", id).await?;
    if inactive(&practitioner.json().unwrap_or_default()) {
        return Err(Refusal::Unauthenticated("the token's user is not active".into()));
    }
    let roles = record
        .search(
            Some("PractitionerRole"),
            &[("practitioner".into(), fhir_user.clone()), ("_count".into(), "20".into())],
            Handling::Strict,
        )
        .await
        .map_err(|e| Refusal::Api(e.into()))?;
    let role = roles.page.entries.iter().filter_map(|r| r.json()).find(|r| !inactive(r)).ok_or_else(|| {
        Refusal::Unauthenticated("the token's user has no active role at a partner organisation".into())
    })?;
    let team = role.pointer("/organization/reference").and_then(Value::as_str).unwrap_or_default().to_string();
    principal.kind = PrincipalKind::Practitioner;
    principal.subject = fhir_user.clone();
    principal.organization = Some(partner_of(record, &team).await);
    principal.role = role.pointer("/code/0/coding/0/code").and_then(Value::as_str).map(str::to_string);
    principal.can_break_glass = role
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|exts| exts.iter().any(|e| e["url"] == BREAK_GLASS_EXTENSION && e["valueBoolean"] == true));
    Ok(principal)
}

fn inactive(resource: &Value) -> bool {
    resource.get("active").and_then(Value::as_bool) == Some(false)
}

/// The partner an organisation belongs to: teams are `partOf` their partner; walks up a few levels.
async fn partner_of(record: &Record, organization: &str) -> String {
    let mut current = organization.to_string();
    for _ in 0..4 {
        let Some(id) = id_of(&current, "Organization") else { break };
        let Ok(org) = record.read("Organization", id).await else { break };
        match org.json().unwrap_or_default().pointer("/partOf/reference").and_then(Value::as_str) {
            Some(parent) => current = parent.to_string(),
            None => break,
        }
    }
    current
}

/// An external user without `fhirUser`: the Practitioner whose identifier is `issuer|subject`.
async fn practitioner_by_identifier(record: &Record, issuer: &str, subject: &str) -> Result<String, Refusal> {
    let found = record
        .search(Some("Practitioner"), &[("identifier".into(), format!("{issuer}|{subject}"))], Handling::Strict)
        .await
        .map_err(|e| Refusal::Api(e.into()))?;
    match found.page.entries.as_slice() {
        [one] => Ok(format!("Practitioner/{}", one.id)),
        [] => Err(Refusal::Unauthenticated("the token's user is not known to this server".into())),
        _ => Err(Refusal::Unauthenticated("the token's user matches several practitioners".into())),
    }
}

/// The principal a user would be, for explaining decisions about them: `fhir_user` with the
/// purpose and reason given. `Err` with a message when the user is unknown or has no role.
pub async fn principal_for_user(
    record: &Record,
    fhir_user: &str,
    purpose: &str,
    reason: Option<String>,
) -> Result<Principal, ApiError> {
    let base = Principal {
        kind: PrincipalKind::Admin,
        subject: fhir_user.to_string(),
        organization: None,
        role: None,
        can_break_glass: false,
        purpose: purpose.to_string(),
        reason,
        scopes: Scopes::default(),
        token_id: String::new(),
    };
    resolve_user(record, fhir_user, base).await.map_err(|refusal| match refusal {
        Refusal::Unauthenticated(message) => ApiError::bad_request(
            Issue::error(IssueType::Value, message.replace("the token's user", "the user")).at("user"),
        ),
        Refusal::Api(error) => error,
    })
}

/// A 403 unless the principal's scopes allow `interaction` on `resource_type` (`None`: all types).
pub fn require_scope(
    principal: &Principal,
    resource_type: Option<&str>,
    interaction: Interaction,
) -> Result<(), ApiError> {
    let allowed = match resource_type {
        Some(t) => principal.scopes.allows_any_context(t, interaction),
        None => principal.scopes.resource.iter().any(|s| s.resource_type.is_none() && s.allows("*", interaction)),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Issue::error(
                IssueType::Security,
                format!(
                    "the token's scopes do not allow '{}' on {}",
                    interaction.letter(),
                    resource_type.unwrap_or("all resource types")
                ),
            ),
        ))
    }
}

/// `GET /.well-known/smart-configuration`.
pub async fn smart_configuration(State(state): State<AppState>) -> Response {
    let base = &state.config.base_url;
    let mut body = json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/auth/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "RS384", "ES384", "RS256", "ES256"],
        "scopes_supported": ["openid", "fhirUser", "system/*.cruds", "user/*.cruds", "patient/*.rs", "system/*.read", "user/*.read", "patient/*.read"],
        "response_types_supported": ["code"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-user", "permission-patient"],
        "code_challenge_methods_supported": ["S256"],
    });
    if let Some(endpoint) = &state.auth.authorization_endpoint {
        body["authorization_endpoint"] = json!(endpoint);
        if let Some(caps) = body["capabilities"].as_array_mut() {
            caps.extend([json!("launch-standalone"), json!("context-standalone-patient"), json!("sso-openid-connect")]);
        }
    }
    Json(body).into_response()
}

/// `GET /.well-known/jwks.json`: the public keys of the server's own issuers.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut keys = vec![state.auth.own_key.public_jwk()];
    if let Some(dev) = &state.auth.dev_key {
        keys.push(dev.public_jwk());
    }
    Json(json!({ "keys": keys })).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response =
        (status, Json(json!({ "error": error, "error_description": description.into() }))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /auth/token`: SMART Backend Services (`client_credentials` with a `private_key_jwt`
/// assertion). The client's organisation becomes the custodian of what it writes.
pub async fn token(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be client_credentials");
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        );
    }
    let Some(assertion) = form.get("client_assertion") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_assertion is required");
    };
    let requested = match Scopes::parse(form.get("scope").map(String::as_str).unwrap_or_default()) {
        Ok(scopes) => scopes,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", e.to_string()),
    };
    let Some((_, client_id)) = TokenVerifier::peek(assertion) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the client assertion is not a readable JWT");
    };
    let registration = match client_registration(&state.record, &client_id).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(registration) = registration else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("the client '{client_id}' is not registered"),
        );
    };
    let endpoint = format!("{}/auth/token", state.config.base_url);
    let client =
        match verify_client_assertion(assertion, &endpoint, |_| Some(registration.clone()), &state.auth.replay_guard) {
            Ok(client) => client,
            Err(e) => {
                tracing::info!(client = %client_id, reason = %e, "client assertion refused");
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", e.to_string());
            }
        };
    let granted = requested.intersect(&client.scopes);
    if granted.resource.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "none of the requested scopes is granted to this client",
        );
    }
    let request = TokenRequest {
        subject: client.client_id.clone(),
        organization: Some(client.organization.clone()),
        scope: granted.to_string(),
        ttl_seconds: state.auth.system_token_ttl_seconds,
        ..Default::default()
    };
    match request.mint(&state.auth.own_key, &state.config.base_url, &state.config.base_url) {
        Ok(access_token) => {
            let mut response = Json(json!({
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": state.auth.system_token_ttl_seconds,
                "scope": granted.to_string(),
            }))
            .into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "signing a system token failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token could not be signed")
        }
    }
}

/// The registration of `client_id`: an active `Device` with the client-id identifier, owned by a
/// partner Organization, carrying the smart-client extension.
async fn client_registration(record: &Record, client_id: &str) -> Result<Option<ClientRegistration>, RecordError> {
    let found = record
        .search(Some("Device"), &[("identifier".into(), format!("{CLIENT_ID_SYSTEM}|{client_id}"))], Handling::Strict)
        .await?;
    let Some(device) = found.page.entries.first() else { return Ok(None) };
    let Some(resource) = device.json() else { return Ok(None) };
    if resource.get("status").and_then(Value::as_str).is_some_and(|s| s != "active") {
        return Ok(None);
    }
    let Some(organization) = resource.pointer("/owner/reference").and_then(Value::as_str) else { return Ok(None) };
    let extension = resource
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|exts| exts.iter().find(|e| e["url"] == CLIENT_EXTENSION));
    let sub = |name: &str| {
        extension
            .and_then(|e| e.get("extension"))
            .and_then(Value::as_array)
            .and_then(|subs| subs.iter().find(|s| s["url"] == name))
            .and_then(|s| s.get("valueString"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (Some(jwks), Some(scope)) = (sub("jwks"), sub("scope")) else { return Ok(None) };
    let (Ok(jwks), Ok(scopes)) = (serde_json::from_str(&jwks), Scopes::parse(&scope)) else { return Ok(None) };
    Ok(Some(ClientRegistration {
        client_id: client_id.to_string(),
        organization: organization.to_string(),
        scopes,
        jwks,
    }))
}
