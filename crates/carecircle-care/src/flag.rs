//! `Flag`s: risk categories (risk to self, to others, to staff, safeguarding) and markers shared
//! across the partnership, validated, and asked whether they are active at a given time. A Flag
//! coded with a trigger situation (a care coordinator's leave, with its period) also feeds the
//! set of active situations the care-plan triggers read.

use std::collections::BTreeSet;

use serde_json::Value;
use time::OffsetDateTime;

use crate::codes;
use crate::model::{concept_codes, fhir_instant_range, str_at, Code, Problem};

/// The codes of [`codes::FLAG_CODE_SYSTEM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlagCode {
    /// Risk to self (self-harm, suicide, self-neglect).
    RiskToSelf,
    /// Risk to others.
    RiskToOthers,
    /// Risk to staff visiting or meeting the person.
    RiskToStaff,
    /// A safeguarding concern is open.
    Safeguarding,
    /// A marker on an address (police, ambulance): not a risk category of its own.
    AddressFlag,
}

impl FlagCode {
    /// Every code, in the code system's order.
    pub const ALL: [FlagCode; 5] = [
        FlagCode::RiskToSelf,
        FlagCode::RiskToOthers,
        FlagCode::RiskToStaff,
        FlagCode::Safeguarding,
        FlagCode::AddressFlag,
    ];

    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            FlagCode::RiskToSelf => "risk-to-self",
            FlagCode::RiskToOthers => "risk-to-others",
            FlagCode::RiskToStaff => "risk-to-staff",
            FlagCode::Safeguarding => "safeguarding",
            FlagCode::AddressFlag => "address-flag",
        }
    }

    /// The display.
    pub fn display(self) -> &'static str {
        match self {
            FlagCode::RiskToSelf => "Risk to self",
            FlagCode::RiskToOthers => "Risk to others",
            FlagCode::RiskToStaff => "Risk to staff",
            FlagCode::Safeguarding => "Safeguarding concern",
            FlagCode::AddressFlag => "Address flag",
        }
    }

    /// The code for `code`, if it is one of this system's.
    pub fn from_code(code: &str) -> Option<FlagCode> {
        FlagCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// True for the four risk categories.
    pub fn is_risk_category(self) -> bool {
        !matches!(self, FlagCode::AddressFlag)
    }
}

/// `Flag.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStatus {
    /// In effect.
    Active,
    /// No longer in effect.
    Inactive,
    /// Recorded by mistake.
    EnteredInError,
}

/// A validated `Flag`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFlag {
    /// `Flag.id`.
    pub id: Option<String>,
    /// `Flag.status`.
    pub status: FlagStatus,
    /// Codes from [`codes::FLAG_CODE_SYSTEM`] in `Flag.code` or `Flag.category`.
    pub flag_codes: Vec<FlagCode>,
    /// Situation codes ([`codes::TRIGGER_SITUATION_SYSTEM`]) in `Flag.code`.
    pub situations: Vec<Code>,
    /// `Flag.subject.reference`.
    pub subject: String,
    /// First instant of `Flag.period.start`, if given.
    pub start: Option<OffsetDateTime>,
    /// Last instant of `Flag.period.end`, if given.
    pub end: Option<OffsetDateTime>,
}

impl ParsedFlag {
    /// The risk categories the flag carries.
    pub fn risk_categories(&self) -> Vec<FlagCode> {
        self.flag_codes.iter().copied().filter(|c| c.is_risk_category()).collect()
    }

    /// True when the flag is in effect at `at`: status `active` and `at` inside its period (the
    /// whole of a date-only start or end day counts).
    pub fn is_active_at(&self, at: OffsetDateTime) -> bool {
        self.status == FlagStatus::Active
            && self.start.is_none_or(|start| start <= at)
            && self.end.is_none_or(|end| at <= end)
    }
}

/// Validates a `Flag`: status, subject and code are required; codes in carecircle's flag-code
/// system must be known ones; the period must be valid dates with the start not after the end.
pub fn parse_flag(flag: &Value) -> Result<ParsedFlag, Vec<Problem>> {
    let mut problems = Vec::new();
    if str_at(flag, "resourceType") != Some("Flag") {
        problems.push(Problem::value("Flag.resourceType", "expected a Flag"));
    }
    let status = match str_at(flag, "status") {
        Some("active") => Some(FlagStatus::Active),
        Some("inactive") => Some(FlagStatus::Inactive),
        Some("entered-in-error") => Some(FlagStatus::EnteredInError),
        Some(other) => {
            problems.push(Problem::value(
                "Flag.status",
                format!("unknown status '{other}' (active, inactive, entered-in-error)"),
            ));
            None
        }
        None => {
            problems.push(Problem::required("Flag.status", "a Flag needs a status"));
            None
        }
    };
    let subject = flag.get("subject").and_then(|s| str_at(s, "reference")).map(str::to_string);
    if subject.is_none() {
        problems.push(Problem::required("Flag.subject", "a Flag needs a subject reference"));
    }
    let mut flag_codes = Vec::new();
    let mut situations = Vec::new();
    match flag.get("code") {
        None => problems.push(Problem::required("Flag.code", "a Flag needs a code")),
        Some(code) => {
            for (i, coding) in code.get("coding").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let Some(c) = Code::from_coding(coding) else { continue };
                if c.system == codes::FLAG_CODE_SYSTEM {
                    match FlagCode::from_code(&c.code) {
                        Some(fc) => flag_codes.push(fc),
                        None => problems.push(Problem::value(
                            format!("Flag.code.coding[{i}].code"),
                            format!(
                                "unknown flag code '{}' (known: {})",
                                c.code,
                                FlagCode::ALL.map(FlagCode::code).join(", ")
                            ),
                        )),
                    }
                } else if c.system == codes::TRIGGER_SITUATION_SYSTEM {
                    situations.push(c);
                }
            }
            if code.get("coding").is_none() && str_at(code, "text").is_none() {
                problems.push(Problem::required("Flag.code", "Flag.code needs a coding or a text"));
            }
        }
    }
    for (i, category) in flag.get("category").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for c in concept_codes(category).into_iter().filter(|c| c.system == codes::FLAG_CODE_SYSTEM) {
            match FlagCode::from_code(&c.code) {
                Some(fc) if !flag_codes.contains(&fc) => flag_codes.push(fc),
                Some(_) => {}
                None => problems.push(Problem::value(
                    format!("Flag.category[{i}]"),
                    format!("unknown flag code '{}' (known: {})", c.code, FlagCode::ALL.map(FlagCode::code).join(", ")),
                )),
            }
        }
    }
    let period = flag.get("period");
    let mut bound = |name: &str, pick_end: bool| {
        let text = period.and_then(|p| str_at(p, name))?;
        match fhir_instant_range(text) {
            Some((first, last)) => Some(if pick_end { last } else { first }),
            None => {
                problems.push(Problem::value(
                    format!("Flag.period.{name}"),
                    format!("'{text}' is not a valid date or dateTime"),
                ));
                None
            }
        }
    };
    let start = bound("start", false);
    let end = bound("end", true);
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            problems.push(Problem::value("Flag.period", "the period starts after it ends"));
        }
    }
    match (status, subject, problems.is_empty()) {
        (Some(status), Some(subject), true) => Ok(ParsedFlag {
            id: str_at(flag, "id").map(str::to_string),
            status,
            flag_codes,
            situations,
            subject,
            start,
            end,
        }),
        _ => Err(problems),
    }
}

/// One situation in effect for a person, with the day it began when known (so a new leave is a
/// new situation, not a repeat of the last one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActiveSituation {
    /// The situation code.
    pub code: Code,
    /// When it began, if known (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// The resource it was read from (`Flag/x`), if any.
    pub source: Option<String>,
}

/// The situations in effect at `at`: every situation code of a Flag active then, plus the
/// situations the caller lists explicitly (for example from a team's leave rota).
pub fn active_situations(
    flags: &[ParsedFlag],
    listed: &[ActiveSituation],
    at: OffsetDateTime,
) -> BTreeSet<ActiveSituation> {
    let mut out: BTreeSet<ActiveSituation> = listed.iter().cloned().collect();
    for flag in flags.iter().filter(|f| f.is_active_at(at)) {
        for code in &flag.situations {
            out.insert(ActiveSituation {
                code: code.clone(),
                since: flag.start.map(|s| crate::model::format_date(s.date())),
                source: flag.id.as_ref().map(|id| format!("Flag/{id}")),
            });
        }
    }
    out
}
