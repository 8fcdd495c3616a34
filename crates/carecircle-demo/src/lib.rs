//! The carecircle demo partnership: a deterministic, entirely fictional set of FHIR R4 resources.
//!
//! [`generate`] builds, from a seed, what the partners of a health and social care partnership
//! would each hold: their own `Organization` (and teams inside them), their staff
//! (`Practitioner` + `PractitionerRole`), their own `Patient` record for every person they know
//! (under their own local identifier, with the imperfections real records have), and some
//! contacts (`Encounter`), problems (`Condition`) and services (`EpisodeOfCare`); and the
//! governance that decides who may see what: data-sharing agreements (`Contract`) with their
//! DPIAs (`DocumentReference`), people's consents (`Consent`, with scanned forms as evidence),
//! national data opt-outs, sensitivity labels on clinical records, and users in every
//! organisation (see the sections below and `docs/agreements.md`, `docs/consent.md`,
//! `docs/access-decision.md`). It contains no
//! real personal data: names are drawn at random from built-in lists, places and the `MF`
//! postcode area are invented, telephone numbers are in Ofcom's drama ranges, and NHS numbers are
//! in the 999 test range with a valid modulus-11 check digit. Dates are relative to the fixed
//! reference date 2026-11-01, never the wall clock, so one seed always gives byte-identical output.
//!
//! # Partners and teams
//! Eleven partners, one or more per sector (`Organization.type` coded in
//! [`well_known::SECTOR_SYSTEM`]). Three teams are child `Organization`s with `partOf` their
//! partner and the same sector: the hospital's emergency department
//! ([`well_known::ORG_HOSPITAL_ED`]), the mental-health trust's crisis team
//! ([`well_known::ORG_CRISIS_TEAM`]) and the police force's mental-health liaison team
//! ([`well_known::ORG_POLICE_MH_LIAISON`]). A team holds no records of its own: its parent is the
//! custodian, and the team appears as `Encounter.serviceProvider` and `PractitionerRole.organization`.
//! A partner's own Organization has itself as custodian; staff are held by their employer.
//!
//! # People and fragmentation
//! About `n_people` true persons (Joe included). Each is known to one or more partners — most to
//! a GP practice and perhaps one more, a frequent-contact group to four to nine — and each partner
//! holds its own `Patient` (`managingOrganization` = custodian = that partner, identifier system
//! `https://carecircle.example.org/fhir/id/<org-id>/patient`). Copies differ the way real ones
//! do: nicknames, typos, swapped given and family names, missing or day/month-swapped birth dates,
//! old addresses, missing postcodes, "NFA" at the police, NHS numbers mostly only at health
//! partners. About one person in a hundred has a twin (same family name, birth date and home).
//! Nothing in the Patient resources says which records are the same person; [`generate_with_truth`]
//! returns that separately so linkage can measure itself. (Consents do: a person's choice is
//! written onto each of their records, as the partnership's person index would propagate it, so
//! a linkage evaluation must look at Patients only.)
//!
//! # Joe and the shared care plan
//! Joe (from the seed story) has records at eight partners under ids in [`well_known`], a
//! `CareTeam` led by his care coordinator, a `Flag` (risk to self) and a multi-agency `CarePlan`
//! (category `crisis-plan`, intent `plan`, status `active`, author his care coordinator).
//!
//! Each trigger in a care plan is one `CarePlan.activity`: `detail.description` says it in plain
//! words, `detail.performer` lists the agencies, and an extension
//! [`well_known::TRIGGER_EXTENSION_URL`] on the activity carries it as data:
//!
//! ```json
//! { "url": "https://carecircle.example.org/fhir/StructureDefinition/careplan-trigger",
//!   "extension": [
//!     { "url": "kind", "valueCode": "recurring-period" },   // or "event", "situation"
//!     { "url": "month", "valueInteger": 8 },                  // recurring-period: month 1-12
//!     // event:     { "url": "event", "valueCoding": { "system": ".../CodeSystem/careplan-trigger-event", "code": "ed-attendance" } }
//!     //            codes: ed-attendance, police-contact, ambulance-callout
//!     // situation: { "url": "situation", "valueCoding": { "system": ".../CodeSystem/careplan-trigger-situation", "code": "care-coordinator-on-leave" } }
//!     { "url": "response", "extension": [                     // one per agreed response
//!         { "url": "agency", "valueReference": { "reference": "Organization/org-vale-mh-crisis-team" } },
//!         { "url": "text", "valueString": "Proactive contact with Joe at least weekly through August." } ] } ] }
//! ```
//!
//! Joe's plan has five: every August (the anniversary of his wife's death), his care coordinator
//! on leave, a police contact, an emergency department attendance, and an ambulance call-out.
//!
//! # Data-sharing agreements and DPIAs
//! Every agreement is a `Contract` following carecircle's agreement profile (built with
//! `carecircle_access::demo_support`), held by the partnership office's host
//! ([`well_known::GOVERNANCE_HOST_ORG`], the council). There is one per pairing of sectors among
//! the partners (`dsa-<sector>-<sector>`, or `dsa-<sector>-partners` between the three GP
//! practices and between the two voluntary partners), each with a clause per direction of
//! sharing for direct care (`TREAT`) — one `direct-care` clause when both directions share the
//! same — and, where a party answers emergencies (hospital, ambulance, mental-health trust), an
//! `emergency` clause (`ETREAT`, break-glass only; lawful basis vital interests 6(1)(d) and
//! 9(2)(c) first). What each sector receives:
//!
//! | recipient ← discloser | data | labels | lawful basis |
//! |---|---|---|---|
//! | health ← health | the whole record | PSY, ETH (only where consent names them) | 6(1)(e), 9(2)(h) |
//! | social care ← health | conditions, contacts, services, plans, team, flags, allergies | none | 6(1)(e), 9(2)(h) |
//! | health ← social care | contacts, services, plans, team, flags | none | 6(1)(e), 9(2)(h) |
//! | police ← anyone | `Flag` and `CarePlan` only: never clinical detail | none | 6(1)(e), 9(2)(g) |
//! | health ← police | police contacts, flags | none | 6(1)(e), 9(2)(h) |
//! | social care ← police | police contacts, flags (safeguarding) | SDV | 6(1)(e), 9(2)(g) |
//! | housing, voluntary ← police | flags | none | |
//! | housing, voluntary ← health, social care | patient, plan, team, flags | none | 6(1)(e) or, for voluntary, 6(1)(f); 9(2)(h) |
//! | health, social care ← housing, voluntary | contacts, services, flags | none | 6(1)(e), 9(2)(h) |
//! | housing ↔ voluntary | plans, team, services (referrals) | none | |
//!
//! Emergency clauses release PSY, ETH and R (never SDV). Retention is 8 years for health
//! recipients, 6 for social care and housing, 2 for the police and voluntary partners. Each
//! party signs through its information-governance lead. Agreements run 2025-04-01 (police
//! pairings 2025-09-01, voluntary 2026-01-05) to 2029-03-31. Also:
//! [`well_known::AGREEMENT_EXPIRED`] (the 2021 GP and social care agreement, ended
//! 2025-03-31), [`well_known::AGREEMENT_DRAFT`] (police and voluntary partners: a draft only
//! the police have signed, so nothing is shared between them), and
//! [`well_known::AGREEMENT_EVALUATION`] (a secondary use, `HOPERAT`: the mental-health trust
//! evaluates shared crisis plans from crisis contacts, which the national data opt-out
//! excludes). Four DPIAs (`DocumentReference`, type `dpia`) name the agreements they assess,
//! which cite them back in `Contract.supportingInfo`: the shared care record's, the police
//! sharing one, the evaluation's, and the superseded 2021 one.
//!
//! # Consent: an opt-out partnership
//! The partnership runs the **opt-out** scheme (`ConsentModel::OptOut`): unlabelled records are
//! shared under the agreements unless the person objects; sensitive records (PSY, ETH, SDV, R)
//! only where a consent provision names them. Most people have said nothing. About 7% of the
//! population have a `Consent`: some opted out entirely (a few also refusing break-glass, by
//! naming `ETREAT`), some object to a sector (usually the police) or one organisation, some
//! let their mental-health records go to their GP only or to every health partner, and a few
//! withdrew an earlier objection (status `inactive`). About a third were recorded by a member
//! of staff on the person's behalf (the `consent-recorded-by` extension) with the signed form as
//! evidence (`sourceReference` to a scanned `DocumentReference`, LOINC 59284-0); the rest by the
//! person in the portal. The server finds a record's consents by its subject
//! (`Consent?patient=Patient/{id}`), so each choice is written as one `Consent` per partner
//! record of the person (`consent-<record>`), held by that record's custodian. About 3% of
//! people have a national data opt-out: the Patient extension
//! [`well_known::NATIONAL_OPT_OUT_EXTENSION_URL`] (`valueBoolean` true) on their records that
//! carry an NHS number. Joe's consent ([`well_known::JOE_CONSENT`]), recorded by his care
//! coordinator at the meeting that agreed his crisis plan, shares his record as usual and
//! releases his mental-health and substance-use records to the health partners in his care
//! team (his GP, the mental-health trust, the hospital, the ambulance service); the police
//! liaison team sees only his flags and crisis plan, because that is all its agreement allows.
//!
//! # The consent vignettes
//! Four fixed people (person numbers 1–4, the same for every seed, counted in `n_people`) make
//! the choices visible, each with a care team where the story needs a relationship:
//! Daniel Okafor ([`well_known::PERSON_OPTED_OUT`]) opted out of all sharing in the portal, so
//! even the hospital in his care team is refused — until an ED clinician breaks the glass;
//! Margaret Hollingworth ([`well_known::PERSON_PSY_WITHHELD`]) lets only her GP
//! ([`well_known::HOLLINGWORTH_GP`]) see her mental-health records, recorded by her care
//! coordinator with a signed form; Kevin Marsh ([`well_known::PERSON_NO_POLICE`]) objects to the
//! police, so the liaison officer in his care team cannot see his risk flag; Susan Pemberton
//! ([`well_known::PERSON_NATIONAL_OPT_OUT`]) has a national data opt-out, which keeps her out of
//! the evaluation but not out of her direct care.
//!
//! # Sensitivity labels
//! `meta.security` codings: every `Condition`, `Encounter` and `EpisodeOfCare` of the
//! mental-health trust is `PSY` (v3 ActCode), as is a suicide attempt anywhere; alcohol misuse
//! and intoxication contacts are `ETH`; about 4% of adult social care and police contacts are
//! domestic-abuse safeguarding (`SDV`, with a matching reason); about 1% of hospital attendances
//! are restricted (v3 Confidentiality `R`). Crisis plans, flags and care teams are written to be
//! shared and are never labelled. Joe's and the vignettes' records get no random labels.
//!
//! # Users
//! Every `Practitioner` with its one `PractitionerRole` is a user `carecircle token --user
//! <Practitioner id>` can mint a token for; the server takes the role from
//! `PractitionerRole.code[0].coding[0].code` and the organisation from
//! `PractitionerRole.organization` (a team acts for its partner). Every organisation, teams
//! included, has users. Roles in `carecircle_access::engine::DEFAULT_BREAK_GLASS_ROLES`
//! (emergency department, ambulance, crisis team, GPs, psychiatry, care coordinators) carry the
//! extension [`well_known::BREAK_GLASS_EXTENSION_URL`]. Each partner has an
//! information-governance lead (role `information-governance-lead`, ids `prac-<partner>-ig`) who
//! signs its agreements, and the partnership has a governance lead
//! ([`well_known::GOVERNANCE_LEAD`], role `governance-lead`) employed by the host, who holds the
//! agreements and DPIAs as custodian; both roles see the governance reports. The partnership
//! administrator is not a member of staff: it is the subject of `carecircle token --admin`
//! ([`well_known::PARTNERSHIP_ADMIN`]), which registers partners, agreements and DPIAs. Users a
//! demo script needs: a GP ([`well_known::JOE_GP`]), a police liaison officer
//! ([`well_known::POLICE_LIAISON_OFFICER`]), an ED nurse ([`well_known::ED_NURSE`]), the
//! governance lead, and the vignettes' records above.

mod agreements;
mod clinical;
mod consents;
mod dates;
mod fhir;
mod joe;
mod labels;
mod names;
mod nhs;
mod orgs;
mod people;
mod vignettes;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Settings for the demo partnership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoConfig {
    /// Seed of the random generator; the same seed always gives the same partnership.
    pub seed: u64,
    /// Number of true persons, Joe and the four consent vignettes included (they are always
    /// present, so fewer than five still gives those five).
    pub n_people: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { seed: 2017, n_people: 2000 }
    }
}

/// One generated resource and the partner organisation that holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoResource {
    /// Id of the partner `Organization` that is custodian of the resource.
    pub custodian_org_id: String,
    /// The FHIR R4 resource, with its `id` set.
    pub resource: Value,
}

/// The partnership's consent model: opt-out (see "Consent: an opt-out partnership" above).
/// Build the access engine's scheme with `carecircle_access::Scheme::new(CONSENT_MODEL)`.
pub const CONSENT_MODEL: carecircle_access::ConsentModel = carecircle_access::ConsentModel::OptOut;

/// The reference date every generated date is relative to.
pub const REFERENCE_DATE: &str = "2026-11-01";

/// The identifier system a partner uses for its local patient numbers.
pub fn patient_identifier_system(org_id: &str) -> String {
    people::local_system(org_id)
}

/// True when `s` is a ten-digit NHS number with a valid modulus-11 check digit.
pub fn nhs_number_is_valid(s: &str) -> bool {
    nhs::is_valid(s)
}

/// The whole partnership, resources in dependency order (Organizations first, then
/// Practitioners, PractitionerRoles, Contracts, Patients, DocumentReferences, Consents, then
/// the rest).
pub fn generate(config: &DemoConfig) -> Vec<DemoResource> {
    generate_with_truth(config).0
}

/// [`generate`], plus the hidden ground truth: for every Patient id, the number of the true
/// person it describes (Joe is [`well_known::JOE_PERSON`]). Nothing in the resources reveals it.
///
/// Resources come in dependency order: every reference points to a resource earlier in the list,
/// except each agreement's `Contract.supportingInfo`, which cites its DPIA (a
/// `DocumentReference` that names the agreement back, so one of the two links must point
/// forward). The order is Organization, Practitioner, PractitionerRole, Contract, Patient,
/// DocumentReference (DPIAs, then scanned consent forms), Consent, CareTeam, EpisodeOfCare,
/// Encounter, Condition, CarePlan, Flag.
pub fn generate_with_truth(config: &DemoConfig) -> (Vec<DemoResource>, Vec<(String, u32)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Labels and consents draw from their own stream, so they never change which people and
    // records a seed gives.
    let mut governance_rng = ChaCha8Rng::seed_from_u64(config.seed);
    governance_rng.set_stream(1);
    let mut out: Vec<DemoResource> = Vec::new();

    for o in orgs::ORGS {
        out.push(clinical::hold(o.custodian(), orgs::organization_resource(o)));
    }
    let employer = |s: &orgs::StaffDef| orgs::org(s.org).map_or(s.org, orgs::OrgDef::custodian);
    for (i, s) in orgs::STAFF.iter().enumerate() {
        out.push(clinical::hold(employer(s), orgs::practitioner_resource(s, i)));
    }
    for (i, s) in orgs::STAFF.iter().enumerate() {
        out.push(clinical::hold(employer(s), orgs::practitioner_role_resource(s, i)));
    }
    out.extend(agreements::contracts());

    let reserved = vignettes::reserved_nhs_numbers();
    let mut reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    reserved.push(well_known::JOE_NHS_NUMBER);
    let mut nhs_numbers = people::NhsNumbers::new(&reserved);
    let first_random = 1 + vignettes::N_VIGNETTES as usize;
    let mut population: Vec<people::Person> = Vec::with_capacity(config.n_people);
    for number in first_random..config.n_people {
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let person = people::random_person(&mut rng, number, population.last(), &mut nhs_numbers);
        population.push(person);
    }
    let records = people::assign_records(&mut rng, &population);

    let mut patients = Vec::with_capacity(records.len() + 20);
    let mut truth = Vec::with_capacity(records.len() + 20);
    for rec in &records {
        let person = &population[rec.person];
        patients.push(clinical::hold(rec.org.id, people::patient_resource(&mut rng, person, rec)));
        truth.push((rec.patient_id.clone(), person.number));
    }
    let mut sink = clinical::Sink::default();
    joe::add(&mut patients, &mut truth, &mut sink);
    vignettes::add(&mut patients, &mut truth, &mut sink);
    for rec in &records {
        clinical::clinical_content(&mut rng, &mut sink, &population[rec.person], rec);
    }
    labels::apply(&mut governance_rng, &mut sink);
    let consent = consents::generate(&mut governance_rng, &population, &mut patients, &truth);

    out.extend(patients);
    out.extend(agreements::dpias());
    out.extend(consent.forms);
    out.extend(consent.consents);
    out.extend(sink.care_teams);
    out.extend(sink.episodes);
    out.extend(sink.encounters);
    out.extend(sink.conditions);
    out.extend(sink.care_plans);
    out.extend(sink.flags);
    (out, truth)
}

/// Ids of well-known demo resources, code systems and URLs, for the README and tests.
pub mod well_known {
    /// Code system of `Organization.type` saying which sector a partner is in.
    pub const SECTOR_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/partner-sector";
    /// Identifier system of partner codes (`Organization.identifier`).
    pub const PARTNER_CODE_SYSTEM: &str = "https://carecircle.example.org/fhir/id/partner-code";
    /// NHS number identifier system.
    pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
    /// Code system of `Encounter.type` saying what kind of contact it was.
    pub const CONTACT_TYPE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/contact-type";
    /// Extension on `CarePlan.activity` carrying a trigger and the agreed responses.
    pub const TRIGGER_EXTENSION_URL: &str = "https://carecircle.example.org/fhir/StructureDefinition/careplan-trigger";
    /// Code system of trigger events (`ed-attendance`, `police-contact`, `ambulance-callout`).
    pub const TRIGGER_EVENT_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-event";
    /// Code system of trigger situations (`care-coordinator-on-leave`).
    pub const TRIGGER_SITUATION_SYSTEM: &str =
        "https://carecircle.example.org/fhir/CodeSystem/careplan-trigger-situation";
    /// Code system of `Flag.code`.
    pub const FLAG_CODE_SYSTEM: &str = "https://carecircle.example.org/fhir/CodeSystem/flag-code";

    /// Identifier system naming a partner's HL7 v2 sending facility (MSH-4), by which
    /// `carecircle serve --mllp` recognises the sender.
    pub const HL7_FACILITY_SYSTEM: &str = "urn:carecircle:hl7v2:facility";
    /// The hospital's HL7 v2 sending facility (MSH-4 of its patient administration system's ADT feed).
    pub const HOSPITAL_HL7_FACILITY: &str = "MFH";

    /// Acute hospital (sector `acute`).
    pub const ORG_HOSPITAL: &str = "org-minsterford-hospital";
    /// The hospital's emergency department (child Organization, `partOf` the hospital).
    pub const ORG_HOSPITAL_ED: &str = "org-minsterford-hospital-ed";
    /// GP practice (Joe's).
    pub const ORG_GP_ASHGROVE: &str = "org-gp-ashgrove";
    /// GP practice.
    pub const ORG_GP_RIVERSIDE: &str = "org-gp-riverside";
    /// GP practice.
    pub const ORG_GP_MILLFIELD: &str = "org-gp-millfield";
    /// Mental-health trust.
    pub const ORG_MH_TRUST: &str = "org-vale-mh-trust";
    /// The mental-health trust's crisis team (child Organization).
    pub const ORG_CRISIS_TEAM: &str = "org-vale-mh-crisis-team";
    /// Ambulance service.
    pub const ORG_AMBULANCE: &str = "org-northvale-ambulance";
    /// Council adult social care.
    pub const ORG_SOCIAL_CARE: &str = "org-minsterford-council-asc";
    /// Police force.
    pub const ORG_POLICE: &str = "org-northvale-police";
    /// The police force's mental-health liaison team (child Organization).
    pub const ORG_POLICE_MH_LIAISON: &str = "org-northvale-police-mh-liaison";
    /// Housing association.
    pub const ORG_HOUSING: &str = "org-kettlebeck-homes";
    /// Voluntary service for adults in mental distress in frequent contact with emergency services.
    pub const ORG_PATHWAYS: &str = "org-minsterford-pathways";
    /// Voluntary befriending service.
    pub const ORG_BEFRIENDERS: &str = "org-vale-befrienders";
    /// Every partner (custodian) organisation.
    pub const PARTNER_ORGS: [&str; 11] = [
        ORG_HOSPITAL,
        ORG_GP_ASHGROVE,
        ORG_GP_RIVERSIDE,
        ORG_GP_MILLFIELD,
        ORG_MH_TRUST,
        ORG_AMBULANCE,
        ORG_SOCIAL_CARE,
        ORG_POLICE,
        ORG_HOUSING,
        ORG_PATHWAYS,
        ORG_BEFRIENDERS,
    ];

    /// Joe's care coordinator at the mental-health trust (Practitioner).
    pub const JOE_CARE_COORDINATOR: &str = "prac-vale-mh-trust-01";
    /// Crisis team practitioner (Practitioner).
    pub const CRISIS_WORKER: &str = "prac-vale-mh-trust-04";
    /// Police mental-health liaison officer (Practitioner).
    pub const POLICE_LIAISON_OFFICER: &str = "prac-northvale-police-01";
    /// Social worker (Practitioner).
    pub const SOCIAL_WORKER: &str = "prac-minsterford-council-asc-01";
    /// Paramedic (Practitioner).
    pub const PARAMEDIC: &str = "prac-northvale-ambulance-01";
    /// Housing caseworker (Practitioner).
    pub const HOUSING_CASEWORKER: &str = "prac-kettlebeck-homes-01";
    /// Pathways support worker (Practitioner).
    pub const PATHWAYS_WORKER: &str = "prac-minsterford-pathways-01";
    /// Joe's GP (Practitioner).
    pub const JOE_GP: &str = "prac-gp-ashgrove-01";
    /// Emergency department nurse (Practitioner).
    pub const ED_NURSE: &str = "prac-minsterford-hospital-01";
    /// The PractitionerRole of Joe's care coordinator.
    pub const JOE_CARE_COORDINATOR_ROLE: &str = "role-vale-mh-trust-01";

    /// Joe's true person number in the ground truth.
    pub const JOE_PERSON: u32 = 0;
    /// Joe's NHS number (999 test range).
    pub const JOE_NHS_NUMBER: &str = "9991234578";
    /// Joe's record at his GP practice.
    pub const JOE_PATIENT_GP: &str = "pat-gp-ashgrove-joe";
    /// Joe's record at the mental-health trust (subject of his care plan, team and flag).
    pub const JOE_PATIENT_MH_TRUST: &str = "pat-vale-mh-trust-joe";
    /// Joe's record at the hospital.
    pub const JOE_PATIENT_HOSPITAL: &str = "pat-minsterford-hospital-joe";
    /// Joe's record at the ambulance service ("Joe Malory").
    pub const JOE_PATIENT_AMBULANCE: &str = "pat-northvale-ambulance-joe";
    /// Joe's record at the police.
    pub const JOE_PATIENT_POLICE: &str = "pat-northvale-police-joe";
    /// Joe's record at adult social care.
    pub const JOE_PATIENT_SOCIAL_CARE: &str = "pat-minsterford-council-asc-joe";
    /// Joe's record at the housing association.
    pub const JOE_PATIENT_HOUSING: &str = "pat-kettlebeck-homes-joe";
    /// Joe's record at Pathways.
    pub const JOE_PATIENT_PATHWAYS: &str = "pat-minsterford-pathways-joe";
    /// All of Joe's Patient records.
    pub const JOE_PATIENTS: [&str; 8] = [
        JOE_PATIENT_GP,
        JOE_PATIENT_MH_TRUST,
        JOE_PATIENT_HOSPITAL,
        JOE_PATIENT_AMBULANCE,
        JOE_PATIENT_POLICE,
        JOE_PATIENT_SOCIAL_CARE,
        JOE_PATIENT_HOUSING,
        JOE_PATIENT_PATHWAYS,
    ];
    /// Joe's multi-agency care team.
    pub const JOE_CARE_TEAM: &str = "careteam-joe";
    /// Joe's shared crisis plan.
    pub const JOE_CARE_PLAN: &str = "careplan-joe-crisis";
    /// Joe's risk-to-self flag (mental-health trust).
    pub const JOE_FLAG: &str = "flag-joe-risk-to-self";
    /// The police's address flag for Joe.
    pub const JOE_POLICE_ADDRESS_FLAG: &str = "flag-joe-police-address";
    /// Joe's episode of care at the mental-health trust.
    pub const JOE_EPISODE_MH: &str = "eoc-joe-mh-trust";
    /// Joe's episode of care at adult social care.
    pub const JOE_EPISODE_SOCIAL_CARE: &str = "eoc-joe-social-care";
    /// Joe's episode of care at Pathways.
    pub const JOE_EPISODE_PATHWAYS: &str = "eoc-joe-pathways";
    /// Joe's depression, at the mental-health trust.
    pub const JOE_CONDITION_DEPRESSION: &str = "cond-joe-mh-depression";
    /// Joe's emergency department attendance after his suicide attempt (August 2024).
    pub const JOE_ED_ATTENDANCE: &str = "enc-joe-ed-2024-08";
    /// The ambulance call-out that took him there.
    pub const JOE_AMBULANCE_CALLOUT: &str = "enc-joe-ambulance-2024-08";
    /// A police liaison contact (neighbour dispute, August 2025).
    pub const JOE_POLICE_CONTACT: &str = "enc-joe-police-2025-08";
    /// Joe's consent on his mental-health trust record (one copy per record: `consent-<record>`).
    pub const JOE_CONSENT: &str = "consent-vale-mh-trust-joe";
    /// The signed form evidencing Joe's consent, recorded by his care coordinator.
    pub const JOE_CONSENT_FORM: &str = "consent-form-vale-mh-trust-joe";

    /// Extension on `PractitionerRole` (`valueBoolean` true) saying its holder may break the glass.
    pub const BREAK_GLASS_EXTENSION_URL: &str =
        "https://carecircle.example.org/fhir/StructureDefinition/break-glass-allowed";
    /// Extension on `Patient` (`valueBoolean` true) recording a national data opt-out.
    pub const NATIONAL_OPT_OUT_EXTENSION_URL: &str =
        "https://carecircle.example.org/fhir/StructureDefinition/national-opt-out";

    /// The partner hosting the partnership office: custodian of the agreements and DPIAs, and
    /// employer of the partnership's governance lead.
    pub const GOVERNANCE_HOST_ORG: &str = ORG_SOCIAL_CARE;
    /// The partnership's information governance lead (role code `governance-lead`): sees the
    /// governance reports and reviews break-glass.
    pub const GOVERNANCE_LEAD: &str = "prac-partnership-governance-lead";
    /// The subject of a `carecircle token --admin` token: the partnership administrator, who
    /// registers partners, agreements and DPIAs and is not a member of staff of any partner.
    pub const PARTNERSHIP_ADMIN: &str = "carecircle-admin";
    /// The hospital's information-governance lead (role `information-governance-lead`), who
    /// signs its agreements.
    pub const IG_LEAD_HOSPITAL: &str = "prac-minsterford-hospital-ig";
    /// Ashgrove Surgery's information-governance lead.
    pub const IG_LEAD_GP_ASHGROVE: &str = "prac-gp-ashgrove-ig";
    /// Riverside Medical Practice's information-governance lead.
    pub const IG_LEAD_GP_RIVERSIDE: &str = "prac-gp-riverside-ig";
    /// Millfield Health Centre's information-governance lead.
    pub const IG_LEAD_GP_MILLFIELD: &str = "prac-gp-millfield-ig";
    /// The mental-health trust's information-governance lead.
    pub const IG_LEAD_MH_TRUST: &str = "prac-vale-mh-trust-ig";
    /// The ambulance service's information-governance lead.
    pub const IG_LEAD_AMBULANCE: &str = "prac-northvale-ambulance-ig";
    /// Adult social care's information-governance lead.
    pub const IG_LEAD_SOCIAL_CARE: &str = "prac-minsterford-council-asc-ig";
    /// The police force's data protection officer.
    pub const IG_LEAD_POLICE: &str = "prac-northvale-police-ig";
    /// Kettlebeck Homes' information-governance lead.
    pub const IG_LEAD_HOUSING: &str = "prac-kettlebeck-homes-ig";
    /// Minsterford Pathways' information-governance lead.
    pub const IG_LEAD_PATHWAYS: &str = "prac-minsterford-pathways-ig";
    /// Vale Community Befrienders' information-governance lead.
    pub const IG_LEAD_BEFRIENDERS: &str = "prac-vale-befrienders-ig";

    /// Agreement between the acute hospital and the mental-health trust (with an emergency
    /// clause that releases PSY under break-glass).
    pub const AGREEMENT_ACUTE_MH: &str = "dsa-acute-mental-health";
    /// Agreement between the mental-health trust and the police: the police receive only flags
    /// and crisis plans.
    pub const AGREEMENT_MH_POLICE: &str = "dsa-mental-health-police";
    /// The draft agreement between the police and the voluntary partners (not in force).
    pub const AGREEMENT_DRAFT: &str = "dsa-police-voluntary";
    /// The 2021 GP and adult social care agreement, expired on 2025-03-31.
    pub const AGREEMENT_EXPIRED: &str = "dsa-primary-care-social-care-2021";
    /// The secondary-use agreement (HOPERAT) for evaluating shared crisis plans.
    pub const AGREEMENT_EVALUATION: &str = "dsa-crisis-care-evaluation";

    /// Daniel Okafor's GP record: he opted out of all sharing (through the portal).
    pub const PERSON_OPTED_OUT: &str = "pat-gp-riverside-okafor";
    /// Daniel Okafor's hospital record.
    pub const PERSON_OPTED_OUT_HOSPITAL: &str = "pat-minsterford-hospital-okafor";
    /// Margaret Hollingworth's mental-health trust record: her mental-health records (PSY) are
    /// withheld from everyone but her GP; her care coordinator recorded the consent with a form.
    pub const PERSON_PSY_WITHHELD: &str = "pat-vale-mh-trust-hollingworth";
    /// Margaret Hollingworth's GP record.
    pub const PERSON_PSY_WITHHELD_GP: &str = "pat-gp-millfield-hollingworth";
    /// Margaret Hollingworth's GP, the one partner her mental-health records are shared with.
    pub const HOLLINGWORTH_GP: &str = "prac-gp-millfield-01";
    /// Kevin Marsh's mental-health trust record: he objects to sharing with the police.
    pub const PERSON_NO_POLICE: &str = "pat-vale-mh-trust-marsh";
    /// Kevin Marsh's risk flag at the mental-health trust (the police may not see it).
    pub const MARSH_FLAG: &str = "flag-marsh-risk-to-self";
    /// Susan Pemberton's hospital record: she has a national data opt-out.
    pub const PERSON_NATIONAL_OPT_OUT: &str = "pat-minsterford-hospital-pemberton";
}
