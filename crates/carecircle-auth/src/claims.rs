//! The claims of the access tokens carecircle accepts and mints.

use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, SigningKey};

/// The claims of an access token. Standard JWT claims plus SMART's `scope` and `fhirUser`, and
/// carecircle's own: the partner organisation a system client acts for, the purpose of use the
/// user declared (v3 ActReason, default `TREAT`) with a free-text reason (break-glass), and the
/// administrator flag. Only tokens from the server's own issuers may carry `organization` or
/// `carecircle_admin`; the verifier ignores them from external issuers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user at the issuer, or the client id of a system client.
    pub sub: String,
    /// Audience: the FHIR base URL the token is for.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Token id.
    #[serde(default)]
    pub jti: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// `Practitioner/{id}` or `Patient/{id}` (SMART `fhirUser`).
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// For system clients: the partner organisation, `Organization/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The declared purpose of use (v3 ActReason code such as `TREAT` or `ETREAT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
    /// Free-text reason, required for break-glass (`ETREAT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_reason: Option<String>,
    /// The partnership's administrator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carecircle_admin: bool,
}

/// What to put in a token minted by one of the server's own issuers.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Subject.
    pub subject: String,
    /// SMART `fhirUser`.
    pub fhir_user: Option<String>,
    /// Organisation of a system client.
    pub organization: Option<String>,
    /// Scopes, space separated.
    pub scope: String,
    /// Purpose of use.
    pub purpose_of_use: Option<String>,
    /// Reason for the purpose (break-glass).
    pub purpose_reason: Option<String>,
    /// Administrator token.
    pub admin: bool,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
}

impl TokenRequest {
    /// Signs the token for `audience` as `issuer`.
    pub fn mint(&self, key: &SigningKey, issuer: &str, audience: &str) -> Result<String, KeyError> {
        let now = crate::now_seconds();
        let claims = AccessClaims {
            iss: issuer.to_string(),
            sub: self.subject.clone(),
            aud: audience.to_string(),
            exp: now + self.ttl_seconds,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: self.scope.clone(),
            fhir_user: self.fhir_user.clone(),
            organization: self.organization.clone(),
            purpose_of_use: self.purpose_of_use.clone(),
            purpose_reason: self.purpose_reason.clone(),
            carecircle_admin: self.admin,
        };
        key.sign(&claims)
    }
}
