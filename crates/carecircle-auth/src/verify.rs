//! Verifying bearer tokens: signature against the issuer's keys, issuer, audience, expiry, and
//! the algorithms allowed (asymmetric only: never `none`, never a shared secret).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use crate::claims::AccessClaims;
use crate::keys::SigningKey;
use crate::scopes::Scopes;

/// Which kind of issuer vouched for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerKind {
    /// The server's own token endpoint (SMART Backend Services).
    Own,
    /// The built-in development issuer (`carecircle token`), trusted only when enabled.
    Development,
    /// An external OpenID Connect provider.
    External,
}

/// Why a token was refused. Each becomes a 401 with an `OperationOutcome`; none carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this request needs a bearer token (Authorization: Bearer ...)")]
    Missing,
    /// Not a compact JWS, or its parts are not JSON.
    #[error("the bearer token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is `none`, a shared-secret algorithm, or otherwise not accepted.
    #[error("the token's algorithm '{0}' is not accepted (signed tokens with EdDSA, RS256/384/512, PS256/384/512 or ES256/384 only)")]
    UnsupportedAlgorithm(String),
    /// The issuer is not one this server trusts.
    #[error("the token's issuer '{0}' is not trusted by this server")]
    UnknownIssuer(String),
    /// No key of the issuer verifies the signature.
    #[error("the token's signature does not verify against its issuer's keys")]
    BadSignature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// `aud` is not this server.
    #[error("the token's audience is not this server")]
    WrongAudience,
    /// Some other claim is missing or invalid.
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// An issuer the server trusts, with the keys that verify its tokens.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// The `iss` value.
    pub issuer: String,
    /// The `aud` value tokens must carry.
    pub audience: String,
    /// What kind of issuer it is.
    pub kind: IssuerKind,
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kind", &self.kind)
            .field("n_keys", &self.keys.len())
            .finish()
    }
}

impl TrustedIssuer {
    /// One of the server's own issuers, verifying with the public half of `key`.
    pub fn own(issuer: &str, audience: &str, kind: IssuerKind, key: &SigningKey) -> TrustedIssuer {
        TrustedIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            kind,
            keys: vec![(Some(key.kid().to_string()), Algorithm::EdDSA, key.decoding_key())],
        }
    }

    /// An external issuer with the keys of its JWKS document.
    pub fn external(issuer: &str, audience: &str, jwks: &serde_json::Value) -> Result<TrustedIssuer, AuthError> {
        Ok(TrustedIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            kind: IssuerKind::External,
            keys: keys_of(jwks)?,
        })
    }

    /// Replaces the keys (after the issuer rotated them).
    pub fn set_keys(&mut self, jwks: &serde_json::Value) -> Result<(), AuthError> {
        self.keys = keys_of(jwks)?;
        Ok(())
    }

    /// Whether a key with this id is known.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _, _)| k.as_deref() == Some(kid))
    }
}

/// The signing keys of a JWKS document (keys for encryption are skipped).
pub(crate) fn keys_of(jwks: &serde_json::Value) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, AuthError> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| AuthError::Invalid(format!("JWKS: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)) {
            continue;
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::RSA(_) => match jwk.common.key_algorithm {
                Some(jsonwebtoken::jwk::KeyAlgorithm::RS384) => Algorithm::RS384,
                Some(jsonwebtoken::jwk::KeyAlgorithm::RS512) => Algorithm::RS512,
                Some(jsonwebtoken::jwk::KeyAlgorithm::PS256) => Algorithm::PS256,
                Some(jsonwebtoken::jwk::KeyAlgorithm::PS384) => Algorithm::PS384,
                Some(jsonwebtoken::jwk::KeyAlgorithm::PS512) => Algorithm::PS512,
                _ => Algorithm::RS256,
            },
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P384 => Algorithm::ES384,
                _ => Algorithm::ES256,
            },
            // Symmetric keys in a JWKS would let anyone holding them forge tokens; unknown kinds are skipped.
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(format!("JWKS key: {e}")))?;
        keys.push((jwk.common.key_id.clone(), algorithm, key));
    }
    Ok(keys)
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Its claims (carecircle's own claims removed when the issuer is external).
    pub claims: AccessClaims,
    /// Who issued it.
    pub issuer_kind: IssuerKind,
    /// Its parsed scopes.
    pub scopes: Scopes,
}

/// Verifies tokens against the trusted issuers.
///
/// A token that verified is remembered (by the SHA-256 of its text) until it expires, so a client
/// that sends the same bearer token with every request pays for one signature check, not one per
/// request. Only successful verifications are remembered; a hit is re-checked for expiry with the
/// same leeway as a full verification; changing the issuers (key rotation) forgets every token.
#[derive(Debug, Default)]
pub struct TokenVerifier {
    issuers: Vec<TrustedIssuer>,
    verified: Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

impl Clone for TokenVerifier {
    fn clone(&self) -> TokenVerifier {
        TokenVerifier::new(self.issuers.clone())
    }
}

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Verified tokens remembered at most; when full, expired ones are dropped, and if that frees
/// nothing the cache starts again (a client minting a token per request gains nothing from it).
const VERIFIED_CAPACITY: usize = 16_384;

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

const ACCEPTED: [&str; 9] = ["EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"];

fn part_json(part: &str, what: &str) -> Result<serde_json::Value, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed(format!("the {what} is not JSON")))
}

impl TokenVerifier {
    /// A verifier trusting `issuers`.
    pub fn new(issuers: Vec<TrustedIssuer>) -> TokenVerifier {
        TokenVerifier { issuers, verified: Mutex::default() }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], VerifiedToken>> {
        // The map holds only complete entries, so a panic elsewhere cannot leave it half-written.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Mutable access, to rotate an external issuer's keys. Forgets every verified token, so a
    /// key that was withdrawn stops being honoured at once.
    pub fn issuers_mut(&mut self) -> &mut Vec<TrustedIssuer> {
        self.remembered().clear();
        &mut self.issuers
    }

    /// The `kid` and `iss` of a token, unverified: to decide whether an issuer's keys need refreshing.
    pub fn peek(token: &str) -> Option<(Option<String>, String)> {
        let mut parts = token.split('.');
        let header = part_json(parts.next()?, "header").ok()?;
        let payload = part_json(parts.next()?, "payload").ok()?;
        Some((
            header.get("kid").and_then(|k| k.as_str()).map(str::to_string),
            payload.get("iss")?.as_str()?.to_string(),
        ))
    }

    /// Verifies `token`.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let digest = token_digest(token);
        let now = now_seconds();
        if let Some(known) = self.remembered().get(&digest) {
            if known.claims.exp + LEEWAY_SECONDS > now {
                return Ok(known.clone());
            }
        }
        let verified = self.verify_signed(token)?;
        let mut remembered = self.remembered();
        if remembered.len() >= VERIFIED_CAPACITY {
            remembered.retain(|_, known| known.claims.exp + LEEWAY_SECONDS > now);
            if remembered.len() >= VERIFIED_CAPACITY {
                remembered.clear();
            }
        }
        remembered.insert(digest, verified.clone());
        Ok(verified)
    }

    /// Verifies `token` in full: header, issuer, key, signature and claims.
    fn verify_signed(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts".into()));
        }
        let header = part_json(parts[0], "header")?;
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or_default().to_string();
        if !ACCEPTED.contains(&alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm(alg));
        }
        let kid = header.get("kid").and_then(|k| k.as_str());
        let payload = part_json(parts[1], "payload")?;
        let iss =
            payload.get("iss").and_then(|i| i.as_str()).ok_or_else(|| AuthError::Invalid("it has no 'iss'".into()))?;
        let issuer =
            self.issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| AuthError::UnknownIssuer(iss.into()))?;
        let candidates: Vec<&(Option<String>, Algorithm, DecodingKey)> = issuer
            .keys
            .iter()
            .filter(|(key_kid, algorithm, _)| {
                format!("{algorithm:?}") == alg && (kid.is_none() || key_kid.is_none() || key_kid.as_deref() == kid)
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::BadSignature);
        }
        let mut last = AuthError::BadSignature;
        for (_, algorithm, key) in candidates {
            let mut validation = Validation::new(*algorithm);
            validation.set_issuer(&[&issuer.issuer]);
            validation.set_audience(&[&issuer.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = LEEWAY_SECONDS;
            match jsonwebtoken::decode::<AccessClaims>(token, key, &validation) {
                Ok(data) => {
                    let mut claims = data.claims;
                    if issuer.kind == IssuerKind::External {
                        // Only the server's own issuers speak for organisations and administrators.
                        claims.organization = None;
                        claims.carecircle_admin = false;
                    }
                    let scopes = Scopes::parse(&claims.scope).map_err(|e| AuthError::Invalid(e.to_string()))?;
                    return Ok(VerifiedToken { claims, issuer_kind: issuer.kind, scopes });
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthError::BadSignature,
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::InvalidAudience => return Err(AuthError::WrongAudience),
                        ErrorKind::InvalidIssuer => return Err(AuthError::UnknownIssuer(iss.into())),
                        ErrorKind::ImmatureSignature => return Err(AuthError::Invalid("it is not valid yet".into())),
                        ErrorKind::MissingRequiredClaim(claim) => {
                            return Err(AuthError::Invalid(format!("it has no '{claim}'")))
                        }
                        ErrorKind::Json(_) => return Err(AuthError::Invalid("its claims are not as expected".into())),
                        _ => AuthError::BadSignature,
                    };
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::TokenRequest;

    const AUD: &str = "http://127.0.0.1:8080";

    fn verifier(key: &SigningKey) -> TokenVerifier {
        TokenVerifier::new(vec![TrustedIssuer::own(crate::DEV_ISSUER, AUD, IssuerKind::Development, key)])
    }

    fn user_token(ttl: u64) -> TokenRequest {
        TokenRequest {
            subject: "Practitioner/p1".into(),
            fhir_user: Some("Practitioner/p1".into()),
            scope: "openid user/*.cruds".into(),
            ttl_seconds: ttl,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_token_verifies_with_its_claims_and_scopes() {
        let key = SigningKey::generate();
        let token = user_token(600).mint(&key, crate::DEV_ISSUER, AUD).unwrap();
        let verified = verifier(&key).verify(&token).unwrap();
        assert_eq!(verified.claims.fhir_user.as_deref(), Some("Practitioner/p1"));
        assert_eq!(verified.issuer_kind, IssuerKind::Development);
        assert_eq!(verified.scopes.resource.len(), 1);
    }

    #[test]
    fn a_remembered_token_is_forgotten_when_the_keys_change_and_is_never_matched_by_another() {
        let key = SigningKey::generate();
        let mut v = verifier(&key);
        let token = user_token(600).mint(&key, crate::DEV_ISSUER, AUD).unwrap();
        assert!(v.verify(&token).is_ok());
        assert!(v.verify(&token).is_ok(), "the second check is served from memory");
        // A token differing in one character of its signature is checked in full, and refused.
        let middle_of_signature = token.len() - 20;
        let mut tampered = token.clone();
        let flipped = if &token[middle_of_signature..=middle_of_signature] == "A" { "B" } else { "A" };
        tampered.replace_range(middle_of_signature..=middle_of_signature, flipped);
        assert!(v.verify(&tampered).is_err());
        // Rotating the issuer's keys: the remembered token is refused at once.
        let other = SigningKey::generate();
        v.issuers_mut()[0] = TrustedIssuer::own(crate::DEV_ISSUER, AUD, IssuerKind::Development, &other);
        assert_eq!(v.verify(&token).unwrap_err(), AuthError::BadSignature);
    }

    #[test]
    fn refusals_name_the_reason() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let v = verifier(&key);
        // Signed by another key under our issuer's name.
        let forged = user_token(600).mint(&other, crate::DEV_ISSUER, AUD).unwrap();
        assert_eq!(v.verify(&forged).unwrap_err(), AuthError::BadSignature);
        // Unknown issuer.
        let foreign = user_token(600).mint(&key, "https://elsewhere.example", AUD).unwrap();
        assert!(matches!(v.verify(&foreign).unwrap_err(), AuthError::UnknownIssuer(_)));
        // Wrong audience.
        let misdirected = user_token(600).mint(&key, crate::DEV_ISSUER, "https://other.example").unwrap();
        assert_eq!(v.verify(&misdirected).unwrap_err(), AuthError::WrongAudience);
        // Expired beyond the leeway.
        let mut expired = user_token(0);
        expired.ttl_seconds = 0;
        let claims = AccessClaims {
            iss: crate::DEV_ISSUER.into(),
            sub: "Practitioner/p1".into(),
            aud: AUD.into(),
            exp: crate::now_seconds() - 120,
            iat: crate::now_seconds() - 200,
            jti: "x".into(),
            scope: String::new(),
            fhir_user: None,
            organization: None,
            purpose_of_use: None,
            purpose_reason: None,
            carecircle_admin: false,
        };
        let stale = key.sign(&claims).unwrap();
        assert_eq!(v.verify(&stale).unwrap_err(), AuthError::Expired);
        // Garbage.
        assert!(matches!(v.verify("abc").unwrap_err(), AuthError::Malformed(_)));
        assert!(matches!(v.verify("a.b.c").unwrap_err(), AuthError::Malformed(_)));
    }

    #[test]
    fn alg_none_and_shared_secrets_are_refused() {
        let key = SigningKey::generate();
        let good = user_token(600).mint(&key, crate::DEV_ISSUER, AUD).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        for alg in ["none", "HS256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let token = format!("{header}.{payload}.");
            assert_eq!(verifier(&key).verify(&token).unwrap_err(), AuthError::UnsupportedAlgorithm(alg.into()));
        }
    }

    #[test]
    fn external_issuers_cannot_claim_organisations_or_admin() {
        let key = SigningKey::generate();
        let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
        let issuer = TrustedIssuer::external("https://idp.example", AUD, &jwks).unwrap();
        let v = TokenVerifier::new(vec![issuer]);
        let mut request = user_token(600);
        request.admin = true;
        request.organization = Some("Organization/x".into());
        let token = request.mint(&key, "https://idp.example", AUD).unwrap();
        let verified = v.verify(&token).unwrap();
        assert!(!verified.claims.carecircle_admin);
        assert_eq!(verified.claims.organization, None);
        assert_eq!(verified.issuer_kind, IssuerKind::External);
    }
}
