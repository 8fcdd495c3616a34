//! Who is asking: the authenticated principal behind a request (a professional acting in a role
//! at a partner organisation, a person looking at their own record, a partner's system, or the
//! partnership's administrator), with the purpose they declared and the scopes their token holds.

use carecircle_auth::Scopes;

/// The kinds of principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A professional: `Practitioner/{id}` acting through a `PractitionerRole`.
    Practitioner,
    /// A person acting for themselves: `Patient/{id}`.
    Patient,
    /// A partner organisation's system (SMART Backend Services client).
    System,
    /// The partnership's administrator (sets up partners, agreements and users).
    Admin,
}

/// The v3 ActReason purpose of use a request is made under, `TREAT` unless the token says otherwise.
pub const DEFAULT_PURPOSE: &str = "TREAT";

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What kind of principal.
    pub kind: PrincipalKind,
    /// `Practitioner/{id}`, `Patient/{id}`, the client id of a system, or the admin subject.
    pub subject: String,
    /// The organisation acted for, `Organization/{id}` (none for a person or the administrator).
    pub organization: Option<String>,
    /// The role code of the PractitionerRole (e.g. `care-coordinator`).
    pub role: Option<String>,
    /// Whether the role allows break-glass (emergency) access.
    pub can_break_glass: bool,
    /// The declared purpose of use.
    pub purpose: String,
    /// The declared reason (break-glass needs one).
    pub reason: Option<String>,
    /// The token's scopes.
    pub scopes: Scopes,
    /// The token id, for the audit trail.
    pub token_id: String,
}

impl Principal {
    /// The custodian this principal's writes are recorded under: its organisation, or `fallback`
    /// (the partnership) for a person or the administrator.
    pub fn custodian(&self, fallback: &str) -> String {
        self.organization.clone().unwrap_or_else(|| fallback.to_string())
    }

    /// Whether this is the partnership's administrator.
    pub fn is_admin(&self) -> bool {
        self.kind == PrincipalKind::Admin
    }
}
