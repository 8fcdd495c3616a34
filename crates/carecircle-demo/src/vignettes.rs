//! Four fixed people whose consent choices a demo script can show, the same for every seed:
//! one who opted out of sharing entirely, one whose mental-health records only her GP may see,
//! one who objects to sharing with the police, and one with a national data opt-out. Their
//! records are generated like everyone else's (from a fixed seed), plus a care team each where
//! the story needs a legitimate relationship.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::clinical::{self, hold, Sink};
use crate::dates::Date;
use crate::fhir::{cc_concept, concept, reference, reference_display};
use crate::names::GivenName;
use crate::orgs;
use crate::people::{self, Person, Record};
use crate::well_known as wk;
use crate::DemoResource;

/// How many fixed people there are (person numbers 1 to 4, after Joe).
pub const N_VIGNETTES: u32 = 4;

/// What a vignette's consent says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Story {
    /// Opted out of all sharing, through the portal.
    OptedOut,
    /// Mental-health records (PSY) to her GP only; recorded by her care coordinator with a
    /// signed form.
    PsyToGpOnly,
    /// Objects to any sharing with the police.
    NoPolice,
    /// National data opt-out (no local consent).
    NationalOptOut,
}

/// One fixed person.
pub struct Vignette {
    /// Ground-truth person number.
    pub number: u32,
    /// The suffix of their Patient ids (`pat-<partner>-<slug>`).
    pub slug: &'static str,
    /// Their consent story.
    pub story: Story,
    given: GivenName,
    family: &'static str,
    gender: &'static str,
    birth: Date,
    nhs_serial: u32,
    gp: &'static str,
    others: &'static [&'static str],
    mh_condition: Option<(&'static str, &'static str)>,
    ltc: Option<(&'static str, &'static str)>,
}

/// The fixed people, in person-number order.
pub const VIGNETTES: [Vignette; 4] = [
    Vignette {
        number: 1,
        slug: "okafor",
        story: Story::OptedOut,
        given: ("Daniel", &["Dan", "Danny"]),
        family: "Okafor",
        gender: "male",
        birth: Date::from_ymd(1979, 5, 14),
        nhs_serial: 731_205,
        gp: wk::ORG_GP_RIVERSIDE,
        others: &[wk::ORG_HOSPITAL, wk::ORG_AMBULANCE],
        mh_condition: None,
        ltc: Some(("195967001", "Asthma")),
    },
    Vignette {
        number: 2,
        slug: "hollingworth",
        story: Story::PsyToGpOnly,
        given: ("Margaret", &["Maggie", "Peggy"]),
        family: "Hollingworth",
        gender: "female",
        birth: Date::from_ymd(1961, 10, 3),
        nhs_serial: 731_306,
        gp: wk::ORG_GP_MILLFIELD,
        others: &[wk::ORG_MH_TRUST, wk::ORG_HOSPITAL],
        mh_condition: Some(("13746004", "Bipolar disorder")),
        ltc: Some(("38341003", "Hypertension")),
    },
    Vignette {
        number: 3,
        slug: "marsh",
        story: Story::NoPolice,
        given: ("Kevin", &["Kev"]),
        family: "Marsh",
        gender: "male",
        birth: Date::from_ymd(1987, 1, 22),
        nhs_serial: 731_407,
        gp: wk::ORG_GP_ASHGROVE,
        others: &[wk::ORG_MH_TRUST, wk::ORG_HOSPITAL, wk::ORG_POLICE, wk::ORG_AMBULANCE],
        mh_condition: Some(("35489007", "Depressive disorder")),
        ltc: None,
    },
    Vignette {
        number: 4,
        slug: "pemberton",
        story: Story::NationalOptOut,
        given: ("Susan", &["Sue", "Susie"]),
        family: "Pemberton",
        gender: "female",
        birth: Date::from_ymd(1953, 7, 29),
        nhs_serial: 731_508,
        gp: wk::ORG_GP_ASHGROVE,
        others: &[wk::ORG_HOSPITAL, wk::ORG_AMBULANCE],
        mh_condition: None,
        ltc: Some(("13645005", "Chronic obstructive pulmonary disease")),
    },
];

impl Vignette {
    /// The Patient id at `org_id`.
    pub fn patient_id(&self, org_id: &str) -> String {
        let short = org_id.strip_prefix("org-").unwrap_or(org_id);
        format!("pat-{short}-{}", self.slug)
    }

    /// The partners that hold a record of this person, their GP first.
    pub fn partners(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.gp).chain(self.others.iter().copied())
    }

    /// The person's NHS number: the first valid test-range number from a fixed serial.
    pub fn nhs_number(&self) -> String {
        (self.nhs_serial..self.nhs_serial + 20).find_map(crate::nhs::test_range_number).unwrap_or_default()
    }
}

/// The NHS numbers the random population must not be given.
pub fn reserved_nhs_numbers() -> Vec<String> {
    VIGNETTES.iter().map(Vignette::nhs_number).collect()
}

fn person(v: &Vignette, rng: &mut ChaCha8Rng) -> Person {
    Person {
        number: v.number,
        gender: v.gender,
        given: v.given,
        middle: None,
        family: v.family,
        birth: v.birth,
        nhs: Some(v.nhs_number()),
        address: Some(people::random_address(rng)),
        old_address: None,
        mobile: Some(people::random_mobile(rng)),
        tier: 2,
        mental_health: v.mh_condition.is_some(),
        mh_condition: v.mh_condition,
        ltc: v.ltc,
        alcohol: false,
        gp: Some(v.gp),
        old_gp: None,
        others: v.others.to_vec(),
    }
}

/// A care team held by `custodian` about `patient`, led by the first member.
fn care_team(id: &str, custodian: &str, patient: &str, name: &str, members: &[(&str, &str)]) -> Value {
    let participants: Vec<Value> = members
        .iter()
        .enumerate()
        .filter_map(|(i, &(prac, org))| {
            let s = orgs::staff(prac)?;
            let role = if i == 0 {
                cc_concept("care-team-role", "lead", "Lead professional")
            } else {
                cc_concept("care-team-role", "member", "Care team member")
            };
            Some(json!({
                "role": [role, cc_concept("staff-role", s.role.0, s.role.1)],
                "member": reference_display("PractitionerRole", &s.role_id(), &s.display()),
                "onBehalfOf": reference_display("Organization", org, orgs::org(org).map_or("", |o| o.name)),
                "period": { "start": "2025-10-01" },
            }))
        })
        .collect();
    json!({
        "resourceType": "CareTeam",
        "id": id,
        "status": "active",
        "category": [cc_concept("care-team-category", "multi-agency", "Multi-agency care team")],
        "name": name,
        "subject": reference("Patient", patient),
        "period": { "start": "2025-10-01" },
        "participant": participants,
        "managingOrganization": [reference("Organization", custodian)],
    })
}

/// Add the fixed people's Patients (with their truth), records and care teams.
pub fn add(patients: &mut Vec<DemoResource>, truth: &mut Vec<(String, u32)>, sink: &mut Sink) {
    for (index, v) in VIGNETTES.iter().enumerate() {
        // A fixed seed per person: the same records for every seed of the partnership.
        let mut rng = ChaCha8Rng::seed_from_u64(0x00C0_5E47_0000 + u64::from(v.number));
        let p = person(v, &mut rng);
        for org_id in v.partners() {
            let Some(org) = orgs::org(org_id) else { continue };
            let (prefix, digits) = org.local_id;
            // Far above the population's local numbers, which start at 10^(digits-1).
            let local = 10u64.pow(u32::try_from(digits).unwrap_or(6)) - 1 - 7 * u64::from(v.number);
            let rec = Record {
                person: index,
                org,
                stale: false,
                patient_id: v.patient_id(org_id),
                local: format!("{prefix}{local:0digits$}"),
            };
            patients.push(hold(org_id, people::patient_resource(&mut rng, &p, &rec)));
            truth.push((rec.patient_id.clone(), v.number));
            clinical::clinical_content(&mut rng, sink, &p, &rec);
        }
    }

    let mh = wk::ORG_MH_TRUST;
    sink.care_teams.push(hold(
        mh,
        care_team(
            "careteam-hollingworth",
            mh,
            &VIGNETTES[1].patient_id(mh),
            "Margaret Hollingworth: care team",
            &[
                ("prac-vale-mh-trust-02", mh),
                (wk::HOLLINGWORTH_GP, wk::ORG_GP_MILLFIELD),
                ("prac-minsterford-hospital-04", wk::ORG_HOSPITAL),
            ],
        ),
    ));
    sink.care_teams.push(hold(
        wk::ORG_GP_RIVERSIDE,
        care_team(
            "careteam-okafor",
            wk::ORG_GP_RIVERSIDE,
            &VIGNETTES[0].patient_id(wk::ORG_GP_RIVERSIDE),
            "Daniel Okafor: asthma care team",
            &[
                ("prac-gp-riverside-01", wk::ORG_GP_RIVERSIDE),
                ("prac-gp-riverside-03", wk::ORG_GP_RIVERSIDE),
                ("prac-minsterford-hospital-05", wk::ORG_HOSPITAL),
            ],
        ),
    ));
    let marsh = VIGNETTES[2].patient_id(mh);
    sink.care_teams.push(hold(
        mh,
        care_team(
            "careteam-marsh",
            mh,
            &marsh,
            "Kevin Marsh: multi-agency care team",
            &[
                ("prac-vale-mh-trust-02", mh),
                ("prac-vale-mh-trust-05", wk::ORG_CRISIS_TEAM),
                ("prac-northvale-police-02", wk::ORG_POLICE_MH_LIAISON),
                ("prac-gp-ashgrove-02", wk::ORG_GP_ASHGROVE),
            ],
        ),
    ));
    sink.flags.push(hold(
        mh,
        json!({
            "resourceType": "Flag",
            "id": wk::MARSH_FLAG,
            "status": "active",
            "category": [concept("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety")],
            "code": {
                "coding": [{ "system": wk::FLAG_CODE_SYSTEM, "code": "risk-to-self", "display": "Risk to self" }],
                "text": "Risk to self when intoxicated. Contact the crisis team (01632 960141).",
            },
            "subject": reference("Patient", &marsh),
            "period": { "start": "2025-10-01" },
            "author": reference_display("Practitioner", "prac-vale-mh-trust-02", "Mr Stuart Fenwick"),
        }),
    ));
}
