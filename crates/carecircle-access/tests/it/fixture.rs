//! The test partnership: the demo's organisations and a set of agreements in every state.

use carecircle_access::codes::SensitivityLabel::{MentalHealth as PSY, Restricted as R, SubstanceUse as ETH};
use carecircle_access::demo_support::{AgreementSpec, ClauseSpec};
use carecircle_access::{
    AccessEngine, AccessRequest, Action, Agreement, AgreementStatus, ConsentModel, Organisation, Purpose, Relationship,
    Requester, Scheme, Target, UserKind,
};
use carecircle_demo::well_known as wk;
use carecircle_demo::{generate, DemoConfig};
use time::macros::date;

pub const JOE: &str = "person-joe";

/// Every Organization of the demo partnership, parsed.
pub fn organisations() -> Vec<Organisation> {
    generate(&DemoConfig { seed: 7, n_people: 2 })
        .iter()
        .filter(|r| r.resource["resourceType"] == "Organization")
        .map(|r| Organisation::from_resource(&r.resource).expect("demo organisations follow the profile"))
        .collect()
}

const HEALTH_TYPES: &[&str] = &[
    "Patient",
    "Condition",
    "Encounter",
    "CarePlan",
    "Flag",
    "CareTeam",
    "EpisodeOfCare",
    "Observation",
    "MedicationStatement",
];

/// The agreements, as Contracts.
pub fn agreement_specs() -> Vec<AgreementSpec> {
    let partners = [
        wk::ORG_HOSPITAL,
        wk::ORG_GP_ASHGROVE,
        wk::ORG_MH_TRUST,
        wk::ORG_AMBULANCE,
        wk::ORG_SOCIAL_CARE,
        wk::ORG_POLICE,
        wk::ORG_HOUSING,
        wk::ORG_PATHWAYS,
    ];
    vec![
        AgreementSpec::active(
            "dsa-direct-care",
            "Minsterford and Vale shared care record",
            &partners,
            "2026-01-01",
            Some("2028-12-31"),
            vec![
                ClauseSpec::new(
                    "health-direct-care",
                    Purpose::Treat,
                    &[wk::ORG_HOSPITAL, wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST, wk::ORG_AMBULANCE],
                    HEALTH_TYPES,
                )
                .labels(&[PSY, ETH]),
                ClauseSpec::new(
                    "care-plan-partners",
                    Purpose::Treat,
                    &[wk::ORG_SOCIAL_CARE, wk::ORG_POLICE, wk::ORG_HOUSING, wk::ORG_PATHWAYS],
                    &["Patient", "CarePlan", "CareTeam", "Flag"],
                ),
                ClauseSpec::new(
                    "emergency",
                    Purpose::EmergencyTreat,
                    &[wk::ORG_HOSPITAL, wk::ORG_AMBULANCE, wk::ORG_MH_TRUST, wk::ORG_POLICE],
                    &[
                        "Patient",
                        "Condition",
                        "Encounter",
                        "CarePlan",
                        "Flag",
                        "CareTeam",
                        "MedicationStatement",
                        "AllergyIntolerance",
                    ],
                )
                .labels(&[PSY, ETH, R])
                .lawful_basis(&["6(1)(d)", "6(1)(e)", "9(2)(c)", "9(2)(h)"]),
                ClauseSpec::new(
                    "operations",
                    Purpose::Operations,
                    &[wk::ORG_HOSPITAL],
                    &["Encounter", "EpisodeOfCare"],
                )
                .disclosers(&[wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST]),
            ],
        ),
        AgreementSpec::active(
            "dsa-research",
            "Crisis care research",
            &[wk::ORG_HOSPITAL, wk::ORG_MH_TRUST],
            "2026-01-01",
            None,
            vec![
                ClauseSpec::new("research", Purpose::Research, &[wk::ORG_HOSPITAL], &["Condition", "Encounter"])
                    .disclosers(&[wk::ORG_MH_TRUST])
                    .lawful_basis(&["6(1)(e)", "9(2)(j)"]),
                ClauseSpec::new("public-health", Purpose::PublicHealth, &[wk::ORG_HOSPITAL], &["Condition"])
                    .disclosers(&[wk::ORG_MH_TRUST])
                    .lawful_basis(&["6(1)(e)", "9(2)(i)"]),
            ],
        ),
        AgreementSpec::active(
            "dsa-expired",
            "Riverside and adult social care (ended)",
            &[wk::ORG_GP_RIVERSIDE, wk::ORG_SOCIAL_CARE],
            "2023-01-01",
            Some("2025-12-31"),
            vec![ClauseSpec::new("direct-care", Purpose::Treat, &[wk::ORG_SOCIAL_CARE], &["Condition"])],
        ),
        AgreementSpec::active(
            "dsa-terminated",
            "Befriending referrals (terminated)",
            &[wk::ORG_BEFRIENDERS, wk::ORG_SOCIAL_CARE],
            "2026-01-01",
            None,
            vec![ClauseSpec::new("direct-care", Purpose::Treat, &[wk::ORG_BEFRIENDERS], &["CarePlan"])],
        )
        .status(AgreementStatus::Terminated),
        AgreementSpec::active(
            "dsa-draft",
            "Millfield and Kettlebeck Homes (draft)",
            &[wk::ORG_GP_MILLFIELD, wk::ORG_HOUSING],
            "2026-01-01",
            None,
            vec![ClauseSpec::new("direct-care", Purpose::Treat, &[wk::ORG_HOUSING], &["Condition"])],
        )
        .status(AgreementStatus::Draft)
        .signed_only_by(&[wk::ORG_GP_MILLFIELD]),
        AgreementSpec::active(
            "dsa-future",
            "Millfield and police (from 2027)",
            &[wk::ORG_GP_MILLFIELD, wk::ORG_POLICE],
            "2027-01-01",
            None,
            vec![ClauseSpec::new("direct-care", Purpose::Treat, &[wk::ORG_POLICE], &["Flag"])],
        ),
    ]
}

pub fn agreements() -> Vec<Agreement> {
    agreement_specs()
        .iter()
        .map(|s| Agreement::from_contract(&s.to_contract()).expect("fixture agreements follow the profile"))
        .collect()
}

pub fn engine(model: ConsentModel) -> AccessEngine {
    AccessEngine::new(&agreements(), &organisations(), Scheme::new(model)).expect("the fixture engine builds")
}

/// A user of the partnership.
#[derive(Clone, Copy, Debug)]
pub struct User {
    pub id: &'static str,
    pub org: &'static str,
    pub kind: UserKind,
    pub role: &'static str,
}

pub const ED_NURSE: User =
    User { id: wk::ED_NURSE, org: wk::ORG_HOSPITAL_ED, kind: UserKind::Practitioner, role: "ed-nurse" };
pub const GP: User = User { id: wk::JOE_GP, org: wk::ORG_GP_ASHGROVE, kind: UserKind::Practitioner, role: "gp" };
pub const CARE_COORDINATOR: User = User {
    id: wk::JOE_CARE_COORDINATOR,
    org: wk::ORG_MH_TRUST,
    kind: UserKind::Practitioner,
    role: "care-coordinator",
};
pub const CRISIS_WORKER: User =
    User { id: wk::CRISIS_WORKER, org: wk::ORG_CRISIS_TEAM, kind: UserKind::Practitioner, role: "crisis-worker" };
pub const PARAMEDIC: User =
    User { id: wk::PARAMEDIC, org: wk::ORG_AMBULANCE, kind: UserKind::Practitioner, role: "paramedic" };
pub const CARE_ASSISTANT: User = User {
    id: "prac-northvale-ambulance-03",
    org: wk::ORG_AMBULANCE,
    kind: UserKind::Practitioner,
    role: "emergency-care-assistant",
};
pub const POLICE_OFFICER: User = User {
    id: wk::POLICE_LIAISON_OFFICER,
    org: wk::ORG_POLICE_MH_LIAISON,
    kind: UserKind::Practitioner,
    role: "police-liaison-officer",
};
pub const SOCIAL_WORKER: User =
    User { id: wk::SOCIAL_WORKER, org: wk::ORG_SOCIAL_CARE, kind: UserKind::Practitioner, role: "social-worker" };
pub const HOUSING_WORKER: User =
    User { id: wk::HOUSING_CASEWORKER, org: wk::ORG_HOUSING, kind: UserKind::Practitioner, role: "housing-caseworker" };
pub const PATHWAYS_WORKER: User =
    User { id: wk::PATHWAYS_WORKER, org: wk::ORG_PATHWAYS, kind: UserKind::Practitioner, role: "pathways-worker" };
pub const BEFRIENDER: User =
    User { id: "prac-vale-befrienders-02", org: wk::ORG_BEFRIENDERS, kind: UserKind::Practitioner, role: "befriender" };
pub const HOSPITAL_SYSTEM: User =
    User { id: "client-minsterford-pas", org: wk::ORG_HOSPITAL, kind: UserKind::SystemClient, role: "" };
pub const ADMIN: User =
    User { id: "admin-ig-lead", org: wk::ORG_HOSPITAL, kind: UserKind::Administrator, role: "ig-lead" };
pub const JOE_HIMSELF: User = User { id: "portal-joe", org: wk::ORG_GP_ASHGROVE, kind: UserKind::Person, role: "" };

/// A direct-care read of a Condition about Joe held by the mental-health trust, on
/// 2026-11-01, by `user`, whose organisation is in Joe's care team.
pub fn request(user: User) -> AccessRequest {
    AccessRequest {
        who: Requester {
            user_id: user.id.to_string(),
            organisation_id: user.org.to_string(),
            kind: user.kind,
            role: user.role.to_string(),
            person_id: (user.kind == UserKind::Person).then(|| JOE.to_string()),
        },
        purpose: Purpose::Treat,
        break_glass_reason: None,
        what: Target {
            resource_type: "Condition".to_string(),
            action: Action::Read,
            custodian_id: wk::ORG_MH_TRUST.to_string(),
            subject_person: Some(JOE.to_string()),
            labels: Some(Vec::new()),
        },
        relationship: Relationship { in_care_team: true, on_partner_list: false },
        today: date!(2026 - 11 - 01),
    }
}
