//! The audit record: what happened, to what, by whom, why and with what outcome, and its
//! canonical binary encoding (format version 1), which is what the Merkle leaf hashes.
//!
//! The encoding binds the entry to its position: the sequence number is part of the encoded
//! bytes, so a row moved to another position no longer matches it. Layout (all integers
//! big-endian, `str` = varint length + UTF-8, `opt` = varint (length + 1) + UTF-8 with 0 for
//! absent):
//!
//! ```text
//! u8 version (1) | u64 seq | i64 recorded_ms | u8 action | u8 outcome | u8 agent kind | u8 flags
//! str user_id | opt organisation | opt role | opt purpose_of_use | opt break_glass_reason
//! opt patient_id | [entity: str type, str id, varint (version + 1)] | opt query
//! [decision: str policy, varint n, n × str clause] | opt client_address | opt request_id
//! ```
//!
//! Flags: bit 0 break-glass, bit 1 care relationship known, bit 2 in a care relationship,
//! bit 3 entity present, bit 4 decision present, bit 5 decision permits. Other bits are zero.

/// The encoding version written first in every entry.
pub const FORMAT_VERSION: u8 = 1;

/// Where the sequence number sits in an encoded entry (after the version byte).
pub const SEQ_OFFSET: usize = 1;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A FHIR read of the current version.
    Read,
    /// A FHIR read of a given version.
    Vread,
    /// A FHIR search (one record per person in the results).
    Search,
    /// A FHIR history read.
    History,
    /// A FHIR create.
    Create,
    /// A FHIR update.
    Update,
    /// A FHIR patch.
    Patch,
    /// A FHIR delete.
    Delete,
    /// An access decision (permit or deny), rendered as BALP AuthZ-Consent.
    Decision,
    /// The use of break-glass (emergency override), rendered as DICOM 110113 / 110127.
    BreakGlass,
    /// An export of data (e.g. a subject access export or an extract).
    Export,
    /// A sign-in.
    Login,
    /// A sign-out.
    Logout,
}

impl AuditAction {
    /// Every action, for tests and tables.
    pub const ALL: [AuditAction; 13] = [
        AuditAction::Read,
        AuditAction::Vread,
        AuditAction::Search,
        AuditAction::History,
        AuditAction::Create,
        AuditAction::Update,
        AuditAction::Patch,
        AuditAction::Delete,
        AuditAction::Decision,
        AuditAction::BreakGlass,
        AuditAction::Export,
        AuditAction::Login,
        AuditAction::Logout,
    ];

    /// The stable code stored in the encoding and the database.
    pub fn code(self) -> u8 {
        match self {
            AuditAction::Read => 1,
            AuditAction::Vread => 2,
            AuditAction::Search => 3,
            AuditAction::History => 4,
            AuditAction::Create => 5,
            AuditAction::Update => 6,
            AuditAction::Patch => 7,
            AuditAction::Delete => 8,
            AuditAction::Decision => 9,
            AuditAction::BreakGlass => 10,
            AuditAction::Export => 11,
            AuditAction::Login => 12,
            AuditAction::Logout => 13,
        }
    }

    /// The action with this code.
    pub fn from_code(code: u8) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.code() == code)
    }

    /// A lowercase name (`read`, `break-glass`, ...) for logs and the person's access log.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::Read => "read",
            AuditAction::Vread => "vread",
            AuditAction::Search => "search",
            AuditAction::History => "history",
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Patch => "patch",
            AuditAction::Delete => "delete",
            AuditAction::Decision => "decision",
            AuditAction::BreakGlass => "break-glass",
            AuditAction::Export => "export",
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
        }
    }
}

/// How it went, with the FHIR R4 `AuditEvent.outcome` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// `0`: the action succeeded.
    Success,
    /// `4`: the action was not successful (e.g. refused by the access decision).
    MinorFailure,
    /// `8`: the action failed; the request was possibly terminated.
    SeriousFailure,
    /// `12`: the server failed.
    MajorFailure,
}

impl AuditOutcome {
    /// The FHIR code, which is also the stored code.
    pub fn code(self) -> u8 {
        match self {
            AuditOutcome::Success => 0,
            AuditOutcome::MinorFailure => 4,
            AuditOutcome::SeriousFailure => 8,
            AuditOutcome::MajorFailure => 12,
        }
    }

    /// The outcome with this code.
    pub fn from_code(code: u8) -> Option<AuditOutcome> {
        [AuditOutcome::Success, AuditOutcome::MinorFailure, AuditOutcome::SeriousFailure, AuditOutcome::MajorFailure]
            .into_iter()
            .find(|o| o.code() == code)
    }
}

/// Who the acting user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// A professional of a partner organisation.
    Practitioner,
    /// The person the record is about, as themselves.
    Patient,
    /// A carer or representative acting for the person.
    RelatedPerson,
    /// A system client (an integration, a scheduled job).
    System,
    /// An administrator or information-governance lead.
    Admin,
}

impl AgentKind {
    /// Every kind.
    pub const ALL: [AgentKind; 5] =
        [AgentKind::Practitioner, AgentKind::Patient, AgentKind::RelatedPerson, AgentKind::System, AgentKind::Admin];

    /// The stable stored code.
    pub fn code(self) -> u8 {
        match self {
            AgentKind::Practitioner => 1,
            AgentKind::Patient => 2,
            AgentKind::RelatedPerson => 3,
            AgentKind::System => 4,
            AgentKind::Admin => 5,
        }
    }

    /// The kind with this code.
    pub fn from_code(code: u8) -> Option<AgentKind> {
        AgentKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The FHIR resource type naming such a user.
    pub fn resource_type(self) -> &'static str {
        match self {
            AgentKind::Practitioner | AgentKind::Admin => "Practitioner",
            AgentKind::Patient => "Patient",
            AgentKind::RelatedPerson => "RelatedPerson",
            AgentKind::System => "Device",
        }
    }
}

/// The acting user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditAgent {
    /// The authenticated user's id.
    pub user_id: String,
    /// What kind of user.
    pub kind: AgentKind,
    /// The organisation id the user acted for, if any (bare id, e.g. `gp-1`).
    pub organisation: Option<String>,
    /// The role the user acted in (e.g. `social-worker`).
    pub role: Option<String>,
}

/// The resource acted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditEntity {
    /// FHIR resource type.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// The version read or written, if known.
    pub version: Option<u64>,
}

/// An access decision and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditDecision {
    /// Permit (true) or deny (false).
    pub permit: bool,
    /// The policy (agreement, consent) that decided.
    pub policy_id: String,
    /// The clauses of that policy that applied.
    pub clause_ids: Vec<String>,
}

/// One audited event, before it has a place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditRecord {
    /// When, in UTC milliseconds since the epoch.
    pub recorded_ms: i64,
    /// What was done.
    pub action: AuditAction,
    /// How it went.
    pub outcome: AuditOutcome,
    /// Who did it.
    pub agent: AuditAgent,
    /// Why: a v3-ActReason purpose of use code (`TREAT`, `ETREAT`, `PATRQT`, ...).
    pub purpose_of_use: Option<String>,
    /// Whether break-glass was in force.
    pub break_glass: bool,
    /// The reason the user gave for break-glass.
    pub break_glass_reason: Option<String>,
    /// Whether the user was in a care relationship with the person (None: not known or not
    /// applicable), for unusual-access reports.
    pub in_care_relationship: Option<bool>,
    /// The resource acted on.
    pub entity: Option<AuditEntity>,
    /// The id of the person (Patient) the event concerns.
    pub patient_id: Option<String>,
    /// The query string of a search, as received.
    pub query: Option<String>,
    /// The access decision, for decision events.
    pub decision: Option<AuditDecision>,
    /// The client's network address.
    pub client_address: Option<String>,
    /// The request id (`X-Request-Id`), tying the events of one request together.
    pub request_id: Option<String>,
}

/// A record with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its sequence number: the leaf index, from 0.
    pub seq: u64,
    /// What it records.
    pub record: AuditRecord,
}

/// Why bytes are not a valid encoded entry.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end early.
    #[error("the entry ends early")]
    Truncated,
    /// An unknown format version.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// A code that means nothing in this field.
    #[error("invalid {field} code {code}")]
    InvalidCode {
        /// The field.
        field: &'static str,
        /// The code found.
        code: u64,
    },
    /// Text that is not UTF-8.
    #[error("a text field is not UTF-8")]
    NotUtf8,
    /// Bytes left after the last field.
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
    /// A varint written with more bytes than needed or overflowing 64 bits.
    #[error("a non-canonical or overlong varint")]
    BadVarint,
}

const FLAG_BREAK_GLASS: u8 = 1;
const FLAG_CARE_KNOWN: u8 = 1 << 1;
const FLAG_IN_CARE: u8 = 1 << 2;
const FLAG_ENTITY: u8 = 1 << 3;
const FLAG_DECISION: u8 = 1 << 4;
const FLAG_PERMIT: u8 = 1 << 5;
const KNOWN_FLAGS: u8 = (1 << 6) - 1;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            put_varint(out, text.len() as u64 + 1);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

impl AuditRecord {
    /// The canonical encoding of this record at position `seq` (format version 1).
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.query.as_ref().map_or(0, String::len));
        self.encode_into(seq, &mut out);
        out
    }

    /// Appends the canonical encoding of this record at position `seq` to `out`.
    pub fn encode_into(&self, seq: u64, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.recorded_ms.to_be_bytes());
        out.push(self.action.code());
        out.push(self.outcome.code());
        out.push(self.agent.kind.code());
        let mut flags = 0;
        if self.break_glass {
            flags |= FLAG_BREAK_GLASS;
        }
        if let Some(in_care) = self.in_care_relationship {
            flags |= FLAG_CARE_KNOWN;
            if in_care {
                flags |= FLAG_IN_CARE;
            }
        }
        if self.entity.is_some() {
            flags |= FLAG_ENTITY;
        }
        if let Some(decision) = &self.decision {
            flags |= FLAG_DECISION;
            if decision.permit {
                flags |= FLAG_PERMIT;
            }
        }
        out.push(flags);
        put_str(out, &self.agent.user_id);
        put_opt(out, self.agent.organisation.as_deref());
        put_opt(out, self.agent.role.as_deref());
        put_opt(out, self.purpose_of_use.as_deref());
        put_opt(out, self.break_glass_reason.as_deref());
        put_opt(out, self.patient_id.as_deref());
        if let Some(entity) = &self.entity {
            put_str(out, &entity.resource_type);
            put_str(out, &entity.id);
            put_varint(out, entity.version.map_or(0, |v| v.saturating_add(1)));
        }
        put_opt(out, self.query.as_deref());
        if let Some(decision) = &self.decision {
            put_str(out, &decision.policy_id);
            put_varint(out, decision.clause_ids.len() as u64);
            for clause in &decision.clause_ids {
                put_str(out, clause);
            }
        }
        put_opt(out, self.client_address.as_deref());
        put_opt(out, self.request_id.as_deref());
    }

    /// Decodes an entry encoded by [`AuditRecord::encode`], with its sequence number.
    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, DecodeError> {
        RecordView::decode(bytes).map(|view| view.to_entry())
    }
}

/// The sequence number written in an encoded entry, read without decoding the rest.
pub fn encoded_seq(bytes: &[u8]) -> Option<u64> {
    let seq: [u8; 8] = bytes.get(SEQ_OFFSET..SEQ_OFFSET + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(seq))
}

/// A decoded entry borrowing its text from the encoded bytes: what the verifier compares with
/// a store's index columns without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The sequence number bound into the entry.
    pub seq: u64,
    /// See [`AuditRecord::recorded_ms`].
    pub recorded_ms: i64,
    /// See [`AuditRecord::action`].
    pub action: AuditAction,
    /// See [`AuditRecord::outcome`].
    pub outcome: AuditOutcome,
    /// See [`AuditAgent::kind`].
    pub agent_kind: AgentKind,
    /// See [`AuditAgent::user_id`].
    pub user_id: &'a str,
    /// See [`AuditAgent::organisation`].
    pub organisation: Option<&'a str>,
    /// See [`AuditAgent::role`].
    pub role: Option<&'a str>,
    /// See [`AuditRecord::purpose_of_use`].
    pub purpose_of_use: Option<&'a str>,
    /// See [`AuditRecord::break_glass`].
    pub break_glass: bool,
    /// See [`AuditRecord::break_glass_reason`].
    pub break_glass_reason: Option<&'a str>,
    /// See [`AuditRecord::in_care_relationship`].
    pub in_care_relationship: Option<bool>,
    /// See [`AuditRecord::patient_id`].
    pub patient_id: Option<&'a str>,
    /// Resource type, id and version of [`AuditRecord::entity`].
    pub entity: Option<(&'a str, &'a str, Option<u64>)>,
    /// See [`AuditRecord::query`].
    pub query: Option<&'a str>,
    /// Permit, policy and clauses of [`AuditRecord::decision`].
    pub decision: Option<(bool, &'a str, Vec<&'a str>)>,
    /// See [`AuditRecord::client_address`].
    pub client_address: Option<&'a str>,
    /// See [`AuditRecord::request_id`].
    pub request_id: Option<&'a str>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                // A final zero byte after the first would be a longer spelling of the same value.
                if i > 0 && byte == 0 {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    fn text(&mut self, len: u64) -> Result<&'a str, DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::NotUtf8)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.varint()?;
        self.text(len)
    }

    fn opt(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.varint()? {
            0 => Ok(None),
            n => self.text(n - 1).map(Some),
        }
    }
}

impl<'a> RecordView<'a> {
    /// Decodes an encoded entry, refusing anything [`AuditRecord::encode`] would not write.
    pub fn decode(bytes: &'a [u8]) -> Result<RecordView<'a>, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.byte()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let seq = r.u64()?;
        let recorded_ms = r.u64()? as i64;
        let code = r.byte()?;
        let action =
            AuditAction::from_code(code).ok_or(DecodeError::InvalidCode { field: "action", code: code.into() })?;
        let code = r.byte()?;
        let outcome =
            AuditOutcome::from_code(code).ok_or(DecodeError::InvalidCode { field: "outcome", code: code.into() })?;
        let code = r.byte()?;
        let agent_kind =
            AgentKind::from_code(code).ok_or(DecodeError::InvalidCode { field: "agent kind", code: code.into() })?;
        let flags = r.byte()?;
        if flags & !KNOWN_FLAGS != 0
            || (flags & FLAG_IN_CARE != 0 && flags & FLAG_CARE_KNOWN == 0)
            || (flags & FLAG_PERMIT != 0 && flags & FLAG_DECISION == 0)
        {
            return Err(DecodeError::InvalidCode { field: "flags", code: flags.into() });
        }
        let user_id = r.str()?;
        let organisation = r.opt()?;
        let role = r.opt()?;
        let purpose_of_use = r.opt()?;
        let break_glass_reason = r.opt()?;
        let patient_id = r.opt()?;
        let entity = if flags & FLAG_ENTITY != 0 {
            let resource_type = r.str()?;
            let id = r.str()?;
            let version = r.varint()?.checked_sub(1);
            Some((resource_type, id, version))
        } else {
            None
        };
        let query = r.opt()?;
        let decision = if flags & FLAG_DECISION != 0 {
            let policy = r.str()?;
            let n = r.varint()?;
            // Each clause takes at least one byte, which bounds the allocation by the input.
            if n > (bytes.len() - r.at) as u64 {
                return Err(DecodeError::Truncated);
            }
            let clauses = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
            Some((flags & FLAG_PERMIT != 0, policy, clauses))
        } else {
            None
        };
        let client_address = r.opt()?;
        let request_id = r.opt()?;
        if r.at != bytes.len() {
            return Err(DecodeError::TrailingBytes(bytes.len() - r.at));
        }
        Ok(RecordView {
            seq,
            recorded_ms,
            action,
            outcome,
            agent_kind,
            user_id,
            organisation,
            role,
            purpose_of_use,
            break_glass: flags & FLAG_BREAK_GLASS != 0,
            break_glass_reason,
            in_care_relationship: (flags & FLAG_CARE_KNOWN != 0).then_some(flags & FLAG_IN_CARE != 0),
            patient_id,
            entity,
            query,
            decision,
            client_address,
            request_id,
        })
    }

    /// The owned entry.
    pub fn to_entry(&self) -> AuditEntry {
        let owned = |s: Option<&str>| s.map(str::to_string);
        AuditEntry {
            seq: self.seq,
            record: AuditRecord {
                recorded_ms: self.recorded_ms,
                action: self.action,
                outcome: self.outcome,
                agent: AuditAgent {
                    user_id: self.user_id.to_string(),
                    kind: self.agent_kind,
                    organisation: owned(self.organisation),
                    role: owned(self.role),
                },
                purpose_of_use: owned(self.purpose_of_use),
                break_glass: self.break_glass,
                break_glass_reason: owned(self.break_glass_reason),
                in_care_relationship: self.in_care_relationship,
                entity: self.entity.map(|(resource_type, id, version)| AuditEntity {
                    resource_type: resource_type.to_string(),
                    id: id.to_string(),
                    version,
                }),
                patient_id: owned(self.patient_id),
                query: owned(self.query),
                decision: self.decision.as_ref().map(|(permit, policy, clauses)| AuditDecision {
                    permit: *permit,
                    policy_id: policy.to_string(),
                    clause_ids: clauses.iter().map(|c| c.to_string()).collect(),
                }),
                client_address: owned(self.client_address),
                request_id: owned(self.request_id),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> AuditRecord {
        AuditRecord {
            recorded_ms: 1_700_000_000_000,
            action: AuditAction::Read,
            outcome: AuditOutcome::Success,
            agent: AuditAgent { user_id: "u1".into(), kind: AgentKind::Practitioner, organisation: None, role: None },
            purpose_of_use: None,
            break_glass: false,
            break_glass_reason: None,
            in_care_relationship: None,
            entity: None,
            patient_id: None,
            query: None,
            decision: None,
            client_address: None,
            request_id: None,
        }
    }

    #[test]
    fn the_minimal_layout_is_as_documented() {
        let bytes = minimal().encode(7);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0, 7];
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        expected.extend_from_slice(&[1, 0, 1, 0, 2, b'u', b'1', 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes, expected);
        assert_eq!(encoded_seq(&bytes), Some(7));
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        let bytes = minimal().encode(1);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(AuditRecord::decode(&trailing), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(AuditRecord::decode(&bytes[..bytes.len() - 1]), Err(DecodeError::Truncated));
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(AuditRecord::decode(&version), Err(DecodeError::UnknownVersion(2)));
        let mut flags = bytes.clone();
        flags[20] = FLAG_IN_CARE;
        assert!(matches!(AuditRecord::decode(&flags), Err(DecodeError::InvalidCode { field: "flags", .. })));
        // The user id length 2 spelled in two bytes (0x82 0x00) is refused.
        let mut overlong = bytes[..21].to_vec();
        overlong.extend_from_slice(&[0x82, 0x00]);
        overlong.extend_from_slice(&bytes[22..]);
        assert_eq!(AuditRecord::decode(&overlong), Err(DecodeError::BadVarint));
    }
}
