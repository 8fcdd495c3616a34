//! The carecircle access decision engine: partner organisations, data-sharing agreements
//! (FHIR `Contract`), DPIAs, the person's consent (FHIR `Consent`), and one decision for every
//! read and write, with reasons and an explanation.
//!
//! Agreements and the partnership's standing rules are compiled into Cedar policies with
//! stable ids (`agreement:{contract}/{clause}`, `baseline:…`, `consent:…`) validated against
//! a Cedar schema ([`policy::CEDAR_SCHEMA`]); the person's consent is evaluated in Rust per
//! request, recording the deciding provision, and its answer enters Cedar through the
//! `consent:gate` policy. Pure: no I/O, no async. See `docs/access-decision.md`.

pub mod agreement;
mod cedar_request;
pub mod codes;
pub mod consent;
pub mod demo_support;
pub mod dpia;
pub mod engine;
pub mod organisation;
pub mod policy;
mod policy_sets;
pub mod profile;

pub use agreement::{check_transition, Agreement, AgreementState, AgreementStatus, Clause};
pub use codes::{LabelSet, Purpose, Sector, SensitivityLabel};
pub use consent::{ConsentModel, ConsentRecord, PersonConsent};
pub use dpia::{Dpia, DpiaRegister};
pub use engine::{
    AccessEngine, AccessRequest, Action, Decision, Effect, EngineError, Reason, ReasonKind, Relationship, Requester,
    Scheme, Target, UserKind,
};
pub use organisation::Organisation;
pub use profile::{Problem, ProfileError};
