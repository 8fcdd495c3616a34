//! Contacts with services (Encounter), problems (Condition) and episodes of care (EpisodeOfCare)
//! for the generated population, and the shared resource builders Joe's records use too.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{json, Value};

use crate::dates::{Date, REFERENCE_DATE};
use crate::fhir::{cc_concept, concept, period, reference, reference_display};
use crate::names::pick;
use crate::orgs::{self, OrgDef, Sector, StaffDef};
use crate::people::{Person, Record};
use crate::well_known as wk;
use crate::DemoResource;

/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";

/// Mental-health conditions (SNOMED CT code, display), commonest first.
pub const MH_CONDITIONS: &[(&str, &str)] = &[
    ("35489007", "Depressive disorder"),
    ("35489007", "Depressive disorder"),
    ("35489007", "Depressive disorder"),
    ("197480006", "Anxiety disorder"),
    ("197480006", "Anxiety disorder"),
    ("13746004", "Bipolar disorder"),
    ("69322001", "Psychotic disorder"),
    ("47505003", "Posttraumatic stress disorder"),
];

/// Physical long-term conditions (SNOMED CT code, display).
pub const LONG_TERM_CONDITIONS: &[(&str, &str)] = &[
    ("38341003", "Hypertension"),
    ("44054006", "Type 2 diabetes mellitus"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive pulmonary disease"),
];

/// Alcohol abuse (SNOMED CT).
pub const ALCOHOL: (&str, &str) = ("15167005", "Alcohol abuse");

/// Encounter classes (`http://terminology.hl7.org/CodeSystem/v3-ActCode`).
pub mod class {
    /// Emergency.
    pub const EMER: (&str, &str) = ("EMER", "emergency");
    /// Ambulatory (clinic, office).
    pub const AMB: (&str, &str) = ("AMB", "ambulatory");
    /// Home visit.
    pub const HH: (&str, &str) = ("HH", "home health");
    /// In the field (street, scene of an incident).
    pub const FLD: (&str, &str) = ("FLD", "field");
    /// Telephone or video.
    pub const VR: (&str, &str) = ("VR", "virtual");
}

/// Contact types (system [`wk::CONTACT_TYPE_SYSTEM`]).
pub mod contact {
    /// Emergency department attendance.
    pub const ED: (&str, &str) = ("ed-attendance", "Emergency department attendance");
    /// GP consultation.
    pub const GP: (&str, &str) = ("gp-consultation", "GP consultation");
    /// Care coordinator contact.
    pub const CARE_COORDINATOR: (&str, &str) = ("care-coordinator-contact", "Care coordinator contact");
    /// Crisis team contact.
    pub const CRISIS: (&str, &str) = ("crisis-team-contact", "Crisis team contact");
    /// Ambulance call-out.
    pub const AMBULANCE: (&str, &str) = ("ambulance-callout", "Ambulance call-out");
    /// Police contact.
    pub const POLICE: (&str, &str) = ("police-contact", "Police contact");
    /// Social care assessment or review.
    pub const SOCIAL_CARE: (&str, &str) = ("social-care-contact", "Social care assessment or review");
    /// Housing contact.
    pub const HOUSING: (&str, &str) = ("housing-contact", "Housing contact");
    /// Pathways contact.
    pub const PATHWAYS: (&str, &str) = ("pathways-contact", "Pathways support contact");
    /// Befriending contact.
    pub const BEFRIENDING: (&str, &str) = ("befriending-contact", "Befriending contact");
}

/// Episode-of-care types (CodeSystem `episode-type`).
pub mod episode {
    /// Community mental health care coordination.
    pub const CMHT: (&str, &str) =
        ("community-mental-health", "Community mental health care (care programme approach)");
    /// Adult social care support.
    pub const ASC: (&str, &str) = ("adult-social-care", "Adult social care support");
    /// Tenancy sustainment.
    pub const TENANCY: (&str, &str) = ("tenancy-sustainment", "Tenancy sustainment support");
    /// Pathways support.
    pub const PATHWAYS: (&str, &str) = ("pathways-support", "Pathways support for adults in mental distress");
}

/// Generated resources, by kind, in the order they will be emitted.
#[derive(Default)]
pub struct Sink {
    /// CareTeam resources.
    pub care_teams: Vec<DemoResource>,
    /// EpisodeOfCare resources.
    pub episodes: Vec<DemoResource>,
    /// Encounter resources.
    pub encounters: Vec<DemoResource>,
    /// Condition resources.
    pub conditions: Vec<DemoResource>,
    /// CarePlan resources.
    pub care_plans: Vec<DemoResource>,
    /// Flag resources.
    pub flags: Vec<DemoResource>,
    counters: BTreeMap<(&'static str, &'static str), u32>,
}

impl Sink {
    /// The next id of the form `<prefix>-<partner short>-<nnnnnn>`.
    pub fn next_id(&mut self, prefix: &'static str, custodian: &'static OrgDef) -> String {
        let n = self.counters.entry((prefix, custodian.id)).or_insert(0);
        *n += 1;
        format!("{prefix}-{}-{:06}", custodian.short(), n)
    }
}

fn held(custodian: &str, resource: Value) -> DemoResource {
    DemoResource { custodian_org_id: custodian.to_string(), resource }
}

/// A FHIR dateTime `minutes` after midnight starting `day` (may run into later days).
pub fn datetime(day: Date, minutes: u32) -> String {
    day.add_days(i64::from(minutes / (24 * 60))).at(minutes % (24 * 60))
}

/// What an Encounter says.
pub struct EncounterSpec<'a> {
    /// Resource id.
    pub id: String,
    /// Subject Patient id.
    pub patient: &'a str,
    /// v3-ActCode class.
    pub class: (&'static str, &'static str),
    /// Contact type.
    pub kind: (&'static str, &'static str),
    /// The team or partner that provided it.
    pub provider: &'static str,
    /// Who saw the person.
    pub staff: Option<&'static StaffDef>,
    /// Day it started.
    pub day: Date,
    /// Start, minutes after midnight.
    pub minute: u32,
    /// Length in minutes.
    pub duration: u32,
    /// Reason in plain words.
    pub reason: Option<&'a str>,
    /// EpisodeOfCare id.
    pub episode: Option<&'a str>,
}

/// The Encounter resource for `s`.
pub fn encounter_resource(s: &EncounterSpec<'_>) -> Value {
    let mut r = json!({
        "resourceType": "Encounter",
        "id": s.id,
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": s.class.0,
            "display": s.class.1,
        },
        "type": [concept(wk::CONTACT_TYPE_SYSTEM, s.kind.0, s.kind.1)],
        "subject": reference("Patient", s.patient),
    });
    if let Some(e) = s.episode {
        r["episodeOfCare"] = json!([reference("EpisodeOfCare", e)]);
    }
    if let Some(st) = s.staff {
        r["participant"] = json!([{ "individual": reference_display("Practitioner", st.id, &st.display()) }]);
    }
    r["period"] = period(&datetime(s.day, s.minute), Some(&datetime(s.day, s.minute + s.duration)));
    if let Some(reason) = s.reason {
        r["reasonCode"] = json!([{ "text": reason }]);
    }
    let provider_name = orgs::org(s.provider).map_or("", |o| o.name);
    r["serviceProvider"] = reference_display("Organization", s.provider, provider_name);
    r
}

/// What a Condition says.
pub struct ConditionSpec<'a> {
    /// Resource id.
    pub id: String,
    /// Subject Patient id.
    pub patient: &'a str,
    /// SNOMED CT code and display.
    pub code: (&'a str, &'a str),
    /// `problem-list-item` or `encounter-diagnosis`.
    pub category: &'a str,
    /// `active`, `remission` or `resolved`.
    pub clinical_status: &'a str,
    /// Onset date.
    pub onset: Date,
    /// Recorded date.
    pub recorded: Date,
    /// Encounter id, for encounter diagnoses.
    pub encounter: Option<&'a str>,
    /// Who recorded it.
    pub recorder: Option<&'static StaffDef>,
}

/// The Condition resource for `s`.
pub fn condition_resource(s: &ConditionSpec<'_>) -> Value {
    let category_display =
        if s.category == "encounter-diagnosis" { "Encounter Diagnosis" } else { "Problem List Item" };
    let mut r = json!({
        "resourceType": "Condition",
        "id": s.id,
        "clinicalStatus": {
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": s.clinical_status,
            }],
        },
        "verificationStatus": {
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed",
            }],
        },
        "category": [concept(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            s.category,
            category_display,
        )],
        "code": concept(SNOMED, s.code.0, s.code.1),
        "subject": reference("Patient", s.patient),
    });
    if let Some(e) = s.encounter {
        r["encounter"] = reference("Encounter", e);
    }
    r["onsetDateTime"] = json!(s.onset.to_string());
    r["recordedDate"] = json!(s.recorded.to_string());
    if let Some(st) = s.recorder {
        r["recorder"] = reference_display("Practitioner", st.id, &st.display());
    }
    r
}

/// What an EpisodeOfCare says.
pub struct EpisodeSpec<'a> {
    /// Resource id.
    pub id: String,
    /// Patient id.
    pub patient: &'a str,
    /// Episode type.
    pub kind: (&'static str, &'static str),
    /// Managing partner (or team).
    pub org: &'static str,
    /// Start date.
    pub start: Date,
    /// End date, when finished.
    pub end: Option<Date>,
    /// Care manager.
    pub manager: Option<&'static StaffDef>,
    /// CareTeam id.
    pub team: Option<&'a str>,
}

/// The EpisodeOfCare resource for `s`.
pub fn episode_resource(s: &EpisodeSpec<'_>) -> Value {
    let mut r = json!({
        "resourceType": "EpisodeOfCare",
        "id": s.id,
        "status": if s.end.is_some() { "finished" } else { "active" },
        "type": [cc_concept("episode-type", s.kind.0, s.kind.1)],
        "patient": reference("Patient", s.patient),
        "managingOrganization": reference_display(
            "Organization",
            s.org,
            orgs::org(s.org).map_or("", |o| o.name),
        ),
        "period": period(&s.start.to_string(), s.end.map(|e| e.to_string()).as_deref()),
    });
    if let Some(m) = s.manager {
        r["careManager"] = reference_display("Practitioner", m.id, &m.display());
    }
    if let Some(t) = s.team {
        r["team"] = json!([reference("CareTeam", t)]);
    }
    r
}

const ED_REASONS: &[&str] = &[
    "Chest pain",
    "Fall",
    "Abdominal pain",
    "Shortness of breath",
    "Head injury",
    "Laceration to hand",
    "Collapse",
    "Back pain",
];
const ED_MH_REASONS: &[&str] = &["Self-harm", "Overdose", "Alcohol intoxication", "Suicidal thoughts", "Assault"];
const AMBULANCE_REASONS: &[&str] = &["Fall at home", "Breathing difficulty", "Chest pain", "Collapse"];
const AMBULANCE_MH_REASONS: &[&str] =
    &["Overdose", "Intoxicated and injured", "Threatening self-harm", "Concern for welfare"];
const POLICE_MH_REASONS: &[&str] =
    &["Concern for welfare", "Section 136 detention", "Missing person", "Threats of self-harm"];
const POLICE_REASONS: &[&str] = &["Neighbour dispute", "Anti-social behaviour report", "Street intoxication"];
const CRISIS_REASONS: &[&str] = &["Crisis assessment", "Home treatment visit", "Telephone support"];
const CC_REASONS: &[&str] = &["Care coordination review", "Medication review", "Care plan review"];
const ASC_REASONS: &[&str] = &["Care Act needs assessment", "Review of care and support plan"];
const HOUSING_REASONS: &[&str] =
    &["Rent arrears", "Tenancy sustainment visit", "Neighbour dispute", "Repairs and condition of home"];
const PATHWAYS_REASONS: &[&str] = &["Initial engagement", "Support session", "Accompanied appointment"];
const BEFRIENDING_REASONS: &[&str] = &["Befriending visit", "Telephone befriending call"];
const GP_REASONS: &[&str] = &["Review", "Medication review", "Chronic disease review", "New problem"];

fn staff_pick<R: Rng>(rng: &mut R, org: &str, roles: &[&str]) -> Option<&'static StaffDef> {
    let s = orgs::staff_with(org, roles);
    (!s.is_empty()).then(|| *pick(rng, &s))
}

/// A day within the last `within` days (at least one day before the reference date).
fn recent_day<R: Rng>(rng: &mut R, within: i64) -> Date {
    REFERENCE_DATE.add_days(-rng.random_range(1..within.max(2)))
}

/// Contacts, conditions and episodes that the record's partner holds for the person.
pub fn clinical_content<R: Rng>(rng: &mut R, sink: &mut Sink, p: &Person, rec: &Record) {
    if rec.stale {
        return;
    }
    let org = rec.org;
    let pid = rec.patient_id.as_str();
    let frequent = p.tier == 3;
    let mh_reason = |rng: &mut R| p.mental_health && rng.random_bool(if frequent { 0.8 } else { 0.4 });

    match org.sector {
        Sector::Acute => {
            let n = if frequent { rng.random_range(2..=5) } else { rng.random_range(1..=2) };
            for _ in 0..n {
                let reason = if mh_reason(rng) { *pick(rng, ED_MH_REASONS) } else { *pick(rng, ED_REASONS) };
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: class::EMER,
                    kind: contact::ED,
                    provider: wk::ORG_HOSPITAL_ED,
                    staff: staff_pick(rng, wk::ORG_HOSPITAL_ED, &["ed-nurse", "ed-consultant"]),
                    day: recent_day(rng, 1095),
                    minute: rng.random_range(0..1440),
                    duration: rng.random_range(90..480),
                    reason: Some(reason),
                    episode: None,
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
        }
        Sector::PrimaryCare => {
            if rng.random_bool(0.3) {
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: if rng.random_bool(0.3) { class::VR } else { class::AMB },
                    kind: contact::GP,
                    provider: org.id,
                    staff: staff_pick(rng, org.id, &["gp", "practice-nurse"]),
                    day: recent_day(rng, 720),
                    minute: rng.random_range(8 * 60..18 * 60),
                    duration: rng.random_range(10..20),
                    reason: Some(*pick(rng, GP_REASONS)),
                    episode: None,
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
            let recorder = staff_pick(rng, org.id, &["gp"]);
            for (code, status) in [
                (p.ltc, "active"),
                (p.mh_condition, if rng.random_bool(0.2) { "remission" } else { "active" }),
                (p.alcohol.then_some(ALCOHOL), "active"),
            ] {
                if let Some(code) = code {
                    let onset = p.birth.max(REFERENCE_DATE.add_days(-rng.random_range(200..7000)));
                    let spec = ConditionSpec {
                        id: sink.next_id("cond", org),
                        patient: pid,
                        code,
                        category: "problem-list-item",
                        clinical_status: status,
                        onset,
                        recorded: onset.add_days(rng.random_range(0..60)).min(REFERENCE_DATE),
                        encounter: None,
                        recorder,
                    };
                    sink.conditions.push(held(org.id, condition_resource(&spec)));
                }
            }
        }
        Sector::MentalHealth => {
            let start = REFERENCE_DATE.add_days(-rng.random_range(60..1500));
            let finished = rng.random_bool(0.3);
            let end = finished.then(|| start.add_days(rng.random_range(30..REFERENCE_DATE.days_since(start).max(31))));
            let manager = staff_pick(rng, org.id, &["care-coordinator"]);
            let eoc = sink.next_id("eoc", org);
            sink.episodes.push(held(
                org.id,
                episode_resource(&EpisodeSpec {
                    id: eoc.clone(),
                    patient: pid,
                    kind: episode::CMHT,
                    org: org.id,
                    start,
                    end,
                    manager,
                    team: None,
                }),
            ));
            let last = end.unwrap_or(REFERENCE_DATE);
            let span = last.days_since(start).max(2);
            for _ in 0..rng.random_range(1..=2) {
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: if rng.random_bool(0.5) { class::HH } else { class::AMB },
                    kind: contact::CARE_COORDINATOR,
                    provider: org.id,
                    staff: manager,
                    day: start.add_days(rng.random_range(1..span)),
                    minute: rng.random_range(9 * 60..17 * 60),
                    duration: rng.random_range(30..90),
                    reason: Some(*pick(rng, CC_REASONS)),
                    episode: Some(&eoc),
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
            if p.tier >= 2 && rng.random_bool(0.6) {
                for _ in 0..rng.random_range(1..=3) {
                    let spec = EncounterSpec {
                        id: sink.next_id("enc", org),
                        patient: pid,
                        class: if rng.random_bool(0.3) { class::VR } else { class::HH },
                        kind: contact::CRISIS,
                        provider: wk::ORG_CRISIS_TEAM,
                        staff: staff_pick(rng, wk::ORG_CRISIS_TEAM, &["crisis-worker"]),
                        day: start.add_days(rng.random_range(1..span)),
                        minute: rng.random_range(0..1440),
                        duration: rng.random_range(20..120),
                        reason: Some(*pick(rng, CRISIS_REASONS)),
                        episode: Some(&eoc),
                    };
                    sink.encounters.push(held(org.id, encounter_resource(&spec)));
                }
            }
            if let Some(code) = p.mh_condition {
                let onset = start.add_days(-rng.random_range(0..400)).max(p.birth);
                let spec = ConditionSpec {
                    id: sink.next_id("cond", org),
                    patient: pid,
                    code,
                    category: "problem-list-item",
                    clinical_status: "active",
                    onset,
                    recorded: start,
                    encounter: None,
                    recorder: staff_pick(rng, org.id, &["consultant-psychiatrist"]),
                };
                sink.conditions.push(held(org.id, condition_resource(&spec)));
            }
        }
        Sector::Ambulance => {
            let n = if frequent { rng.random_range(2..=4) } else { rng.random_range(1..=2) };
            for _ in 0..n {
                let mh = mh_reason(rng);
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: class::FLD,
                    kind: contact::AMBULANCE,
                    provider: org.id,
                    staff: staff_pick(
                        rng,
                        org.id,
                        if mh {
                            &["mental-health-paramedic", "paramedic"]
                        } else {
                            &["paramedic", "emergency-care-assistant"]
                        },
                    ),
                    day: recent_day(rng, 1095),
                    minute: rng.random_range(0..1440),
                    duration: rng.random_range(30..120),
                    reason: Some(if mh { *pick(rng, AMBULANCE_MH_REASONS) } else { *pick(rng, AMBULANCE_REASONS) }),
                    episode: None,
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
        }
        Sector::Police => {
            let n = if frequent { rng.random_range(2..=4) } else { rng.random_range(1..=2) };
            for _ in 0..n {
                let mh = mh_reason(rng);
                let (provider, staff, reason) = if mh {
                    (
                        wk::ORG_POLICE_MH_LIAISON,
                        staff_pick(rng, wk::ORG_POLICE_MH_LIAISON, &["police-liaison-officer"]),
                        *pick(rng, POLICE_MH_REASONS),
                    )
                } else {
                    (wk::ORG_POLICE, None, *pick(rng, POLICE_REASONS))
                };
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: class::FLD,
                    kind: contact::POLICE,
                    provider,
                    staff,
                    day: recent_day(rng, 1095),
                    minute: rng.random_range(0..1440),
                    duration: rng.random_range(20..240),
                    reason: Some(reason),
                    episode: None,
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
        }
        Sector::SocialCare | Sector::Housing | Sector::Voluntary => {
            let (kind, ep_kind, reasons, class_) = match org.id {
                wk::ORG_SOCIAL_CARE => (contact::SOCIAL_CARE, Some(episode::ASC), ASC_REASONS, class::HH),
                wk::ORG_HOUSING => {
                    (contact::HOUSING, rng.random_bool(0.4).then_some(episode::TENANCY), HOUSING_REASONS, class::HH)
                }
                wk::ORG_PATHWAYS => (contact::PATHWAYS, Some(episode::PATHWAYS), PATHWAYS_REASONS, class::AMB),
                _ => (contact::BEFRIENDING, None, BEFRIENDING_REASONS, class::HH),
            };
            let team: Vec<&'static StaffDef> = orgs::staff_of(org.id).collect();
            let staff = (!team.is_empty()).then(|| *pick(rng, &team));
            let start = REFERENCE_DATE.add_days(-rng.random_range(30..1000));
            let eoc = ep_kind.map(|ep_kind| {
                let id = sink.next_id("eoc", org);
                let end = rng
                    .random_bool(0.35)
                    .then(|| start.add_days(rng.random_range(14..REFERENCE_DATE.days_since(start).max(15))));
                sink.episodes.push(held(
                    org.id,
                    episode_resource(&EpisodeSpec {
                        id: id.clone(),
                        patient: pid,
                        kind: ep_kind,
                        org: org.id,
                        start,
                        end,
                        manager: staff,
                        team: None,
                    }),
                ));
                id
            });
            let n = if org.id == wk::ORG_PATHWAYS { rng.random_range(1..=3) } else { 1 };
            let span = REFERENCE_DATE.days_since(start).max(2);
            for _ in 0..n {
                let spec = EncounterSpec {
                    id: sink.next_id("enc", org),
                    patient: pid,
                    class: class_,
                    kind,
                    provider: org.id,
                    staff,
                    day: start.add_days(rng.random_range(0..span - 1)),
                    minute: rng.random_range(9 * 60..17 * 60),
                    duration: rng.random_range(30..90),
                    reason: Some(*pick(rng, reasons)),
                    episode: eoc.as_deref(),
                };
                sink.encounters.push(held(org.id, encounter_resource(&spec)));
            }
        }
    }
}

/// Wrap a resource with its custodian.
pub fn hold(custodian: &str, resource: Value) -> DemoResource {
    held(custodian, resource)
}
