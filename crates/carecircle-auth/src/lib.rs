//! Authentication for carecircle: verifying bearer JWTs from the issuers the server trusts
//! (an external OpenID Connect provider, the server's own SMART Backend Services token endpoint,
//! and the development issuer), minting tokens with the server's own keys, and SMART on FHIR v2
//! scopes. Who the verified subject *is* (which Practitioner, Patient or partner system) is
//! resolved against the record by the HTTP layer; what they may see is the access decision's job.

mod assertion;
mod claims;
mod keys;
mod scopes;
mod verify;

pub use assertion::{verify_client_assertion, ClientAssertionError, ClientRegistration, ReplayGuard};
pub use claims::{AccessClaims, TokenRequest};
pub use keys::{KeyError, SigningKey};
pub use scopes::{Interaction, Scope, ScopeContext, ScopeError, Scopes};
pub use verify::{AuthError, IssuerKind, TokenVerifier, TrustedIssuer, VerifiedToken};

/// The issuer name of the built-in development issuer (`carecircle token`).
pub const DEV_ISSUER: &str = "carecircle-dev-issuer";

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
