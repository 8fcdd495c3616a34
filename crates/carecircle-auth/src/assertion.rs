//! SMART Backend Services: verifying the signed JWT a partner system presents
//! (`client_assertion`, RFC 7523) before the token endpoint issues it a `system/…` token.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::Validation;
use serde::Deserialize;

use crate::scopes::Scopes;
use crate::verify::keys_of;

/// A registered partner system: its client id, the organisation it acts for (which becomes the
/// custodian of what it writes), the scopes it may be granted, and its public keys.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// The client id (`iss` and `sub` of its assertions).
    pub client_id: String,
    /// `Organization/{id}`.
    pub organization: String,
    /// The most it may be granted.
    pub scopes: Scopes,
    /// Its JWKS (public keys).
    pub jwks: serde_json::Value,
}

/// Why an assertion was refused (OAuth `invalid_client`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAssertionError {
    /// Not a JWT or missing claims.
    #[error("the client assertion is malformed: {0}")]
    Malformed(String),
    /// `iss`/`sub` is not a registered client.
    #[error("the client '{0}' is not registered")]
    UnknownClient(String),
    /// Signature, audience, expiry or lifetime wrong.
    #[error("the client assertion is not valid: {0}")]
    Invalid(String),
    /// The `jti` was used before.
    #[error("the client assertion was already used (jti replay)")]
    Replayed,
}

/// Remembers assertion ids until they expire, so an intercepted assertion cannot be reused.
/// In-process: with several server processes, each keeps its own (an assertion lives at most
/// five minutes, so the window is bounded).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<String, u64>>,
}

impl ReplayGuard {
    /// Records `jti` (valid until `exp`); false if it was already there.
    fn first_use(&self, jti: &str, exp: u64, now: u64) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, until| *until + 60 >= now);
        seen.insert(jti.to_string(), exp).is_none()
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: u64,
    jti: String,
}

/// Verifies a client assertion addressed to `token_endpoint`, returning the client it proves.
pub fn verify_client_assertion(
    assertion: &str,
    token_endpoint: &str,
    lookup: impl Fn(&str) -> Option<ClientRegistration>,
    guard: &ReplayGuard,
) -> Result<ClientRegistration, ClientAssertionError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| ClientAssertionError::Malformed(e.to_string()))?;
    let (_, iss) = crate::TokenVerifier::peek(assertion)
        .ok_or_else(|| ClientAssertionError::Malformed("it has no readable 'iss'".into()))?;
    let client = lookup(&iss).ok_or_else(|| ClientAssertionError::UnknownClient(iss.clone()))?;
    let keys = keys_of(&client.jwks).map_err(|e| ClientAssertionError::Invalid(e.to_string()))?;
    let mut last = ClientAssertionError::Invalid("no registered key matches its algorithm and kid".into());
    for (kid, algorithm, key) in keys {
        if algorithm != header.alg || (header.kid.is_some() && kid.is_some() && kid != header.kid) {
            continue;
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&client.client_id]);
        validation.set_audience(&[token_endpoint]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = 30;
        match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                let now = crate::now_seconds();
                if claims.sub != claims.iss {
                    return Err(ClientAssertionError::Invalid("'sub' must equal 'iss' (the client id)".into()));
                }
                if claims.exp > now + 300 {
                    return Err(ClientAssertionError::Invalid("'exp' is more than five minutes ahead".into()));
                }
                if claims.jti.is_empty() {
                    return Err(ClientAssertionError::Malformed("it has no 'jti'".into()));
                }
                if !guard.first_use(&format!("{}|{}", claims.iss, claims.jti), claims.exp, now) {
                    return Err(ClientAssertionError::Replayed);
                }
                return Ok(client);
            }
            Err(e) => last = ClientAssertionError::Invalid(e.to_string()),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    const ENDPOINT: &str = "http://127.0.0.1:8080/auth/token";

    fn registration(key: &SigningKey) -> ClientRegistration {
        ClientRegistration {
            client_id: "ed-system".into(),
            organization: "Organization/org-acute".into(),
            scopes: Scopes::parse("system/*.cruds").unwrap(),
            jwks: serde_json::json!({ "keys": [key.public_jwk()] }),
        }
    }

    fn assertion(key: &SigningKey, client: &str, aud: &str, exp_in: u64, jti: &str) -> String {
        let now = crate::now_seconds();
        key.sign(&serde_json::json!({ "iss": client, "sub": client, "aud": aud, "exp": now + exp_in, "jti": jti }))
            .unwrap()
    }

    #[test]
    fn a_registered_client_is_proved_once_per_jti() {
        let key = SigningKey::generate();
        let reg = registration(&key);
        let lookup = |id: &str| (id == "ed-system").then(|| reg.clone());
        let guard = ReplayGuard::default();
        let jwt = assertion(&key, "ed-system", ENDPOINT, 120, "a1");
        assert_eq!(
            verify_client_assertion(&jwt, ENDPOINT, lookup, &guard).unwrap().organization,
            "Organization/org-acute"
        );
        assert_eq!(
            verify_client_assertion(&jwt, ENDPOINT, lookup, &guard).unwrap_err(),
            ClientAssertionError::Replayed
        );
    }

    #[test]
    fn wrong_key_audience_lifetime_or_client_are_refused() {
        let key = SigningKey::generate();
        let reg = registration(&key);
        let lookup = |id: &str| (id == "ed-system").then(|| reg.clone());
        let guard = ReplayGuard::default();
        let other = SigningKey::generate();
        let forged = assertion(&other, "ed-system", ENDPOINT, 120, "b1");
        assert!(matches!(
            verify_client_assertion(&forged, ENDPOINT, lookup, &guard),
            Err(ClientAssertionError::Invalid(_))
        ));
        let misdirected = assertion(&key, "ed-system", "https://elsewhere/token", 120, "b2");
        assert!(matches!(
            verify_client_assertion(&misdirected, ENDPOINT, lookup, &guard),
            Err(ClientAssertionError::Invalid(_))
        ));
        let long = assertion(&key, "ed-system", ENDPOINT, 3600, "b3");
        assert!(matches!(
            verify_client_assertion(&long, ENDPOINT, lookup, &guard),
            Err(ClientAssertionError::Invalid(_))
        ));
        let stranger = assertion(&key, "stranger", ENDPOINT, 120, "b4");
        assert_eq!(
            verify_client_assertion(&stranger, ENDPOINT, lookup, &guard).unwrap_err(),
            ClientAssertionError::UnknownClient("stranger".into())
        );
    }
}
