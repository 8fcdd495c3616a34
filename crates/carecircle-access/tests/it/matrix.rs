//! The decision matrix: one row per situation, `check(case, expected)`.

use carecircle_access::codes::SensitivityLabel::{
    self, Hiv, MentalHealth as PSY, Restricted as R, SexualAndDomesticViolence as SDV, SubstanceUse as ETH,
    VeryRestricted as V,
};
use carecircle_access::demo_support::{ConsentSpec, ProvisionSpec};
use carecircle_access::{
    AccessEngine, AccessRequest, Action, ConsentModel, Effect, PersonConsent, Purpose, ReasonKind, Sector,
};
use carecircle_demo::well_known as wk;
use time::macros::date;
use time::Date;

use crate::fixture::*;

struct Case {
    name: &'static str,
    model: ConsentModel,
    request: AccessRequest,
    consent: PersonConsent,
}

fn case(name: &'static str, user: User) -> Case {
    Case { name, model: ConsentModel::OptOut, request: request(user), consent: PersonConsent::none() }
}

impl Case {
    fn opt_in(mut self) -> Case {
        self.model = ConsentModel::OptIn;
        self
    }
    fn purpose(mut self, p: Purpose) -> Case {
        self.request.purpose = p;
        self
    }
    fn glass(mut self, reason: &str) -> Case {
        self.request.purpose = Purpose::EmergencyTreat;
        self.request.break_glass_reason = Some(reason.to_string());
        self
    }
    fn res(mut self, t: &str) -> Case {
        self.request.what.resource_type = t.to_string();
        self
    }
    fn held_by(mut self, org: &str) -> Case {
        self.request.what.custodian_id = org.to_string();
        self
    }
    fn labels(mut self, labels: &[SensitivityLabel]) -> Case {
        self.request.what.labels = Some(labels.to_vec());
        self
    }
    fn search(mut self) -> Case {
        self.request.what.labels = None;
        self
    }
    fn write(mut self) -> Case {
        self.request.what.action = Action::Write;
        self
    }
    fn no_relationship(mut self) -> Case {
        self.request.relationship.in_care_team = false;
        self.request.relationship.on_partner_list = false;
        self
    }
    fn on_list_only(mut self) -> Case {
        self.request.relationship.in_care_team = false;
        self.request.relationship.on_partner_list = true;
        self
    }
    fn about(mut self, person: Option<&str>) -> Case {
        self.request.what.subject_person = person.map(ToString::to_string);
        self
    }
    fn consents(mut self, specs: Vec<ConsentSpec>) -> Case {
        let resources: Vec<_> = specs.iter().map(ConsentSpec::to_resource).collect();
        self.consent = PersonConsent::from_resources(&resources, self.consent.national_opt_out)
            .expect("consents follow the profile");
        self
    }
    fn national_opt_out(mut self) -> Case {
        self.consent.national_opt_out = true;
        self
    }
    fn on(mut self, day: Date) -> Case {
        self.request.today = day;
        self
    }
}

struct Expect {
    effect: Effect,
    policy: &'static str,
    withheld: Vec<SensitivityLabel>,
    break_glass: bool,
    provision: Option<(&'static str, &'static str)>,
}

fn permit(policy: &'static str) -> Expect {
    Expect { effect: Effect::Permit, policy, withheld: Vec::new(), break_glass: false, provision: None }
}
fn deny(policy: &'static str) -> Expect {
    Expect { effect: Effect::Deny, ..permit(policy) }
}
fn filtered(policy: &'static str, withheld: &[SensitivityLabel]) -> Expect {
    Expect { effect: Effect::PermitWithFiltering, withheld: withheld.to_vec(), ..permit(policy) }
}
impl Expect {
    fn withheld(mut self, labels: &[SensitivityLabel]) -> Expect {
        self.withheld = labels.to_vec();
        self
    }
    fn glass(mut self) -> Expect {
        self.break_glass = true;
        self
    }
    /// A reason must name this consent and provision.
    fn provision(mut self, consent_id: &'static str, path: &'static str) -> Expect {
        self.provision = Some((consent_id, path));
        self
    }
}

fn check(engine: &AccessEngine, case: &Case, expected: &Expect) -> Result<(), String> {
    let d = engine.decide(&case.request, &case.consent);
    let mut problems = Vec::new();
    if d.effect != expected.effect {
        problems.push(format!("effect {:?}, expected {:?}", d.effect, expected.effect));
    }
    if !d.reasons.iter().any(|r| r.policy_id == expected.policy) {
        problems.push(format!("no reason from {}", expected.policy));
    }
    if d.withheld_labels != expected.withheld {
        problems.push(format!("withheld {:?}, expected {:?}", d.withheld_labels, expected.withheld));
    }
    if d.break_glass != expected.break_glass {
        problems.push(format!("break_glass {}, expected {}", d.break_glass, expected.break_glass));
    }
    if let Some((consent_id, path)) = expected.provision {
        let found = d.reasons.iter().any(|r| {
            matches!(&r.kind, ReasonKind::Consent { consent_id: c, provision_path: p } if c == consent_id && p == path)
        });
        if !found {
            problems.push(format!("no reason from Consent/{consent_id} {path}"));
        }
    }
    let explanation = engine.explain(&case.request, &case.consent);
    if !explanation.contains(expected.policy) {
        problems.push(format!("the explanation does not mention {}", expected.policy));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}\n  reasons: {:?}", case.name, problems.join("; "), d.reasons))
    }
}

const JOE_MH: &str = "pat-vale-mh-trust-joe";
const TODAY: &str = "2026-06-01T10:00:00Z";

fn consent(id: &str, root: ProvisionSpec) -> ConsentSpec {
    ConsentSpec::new(id, JOE_MH, wk::ORG_MH_TRUST, TODAY, root)
}

fn permit_all() -> ConsentSpec {
    consent("c-permit-all", ProvisionSpec::permit())
}

fn release_mental_health_to_health() -> ConsentSpec {
    consent(
        "c-release-psy",
        ProvisionSpec::deny().except(ProvisionSpec::permit()).except(
            ProvisionSpec::permit().labels(&[PSY]).sectors(&[
                Sector::Acute,
                Sector::PrimaryCare,
                Sector::MentalHealth,
                Sector::Ambulance,
            ]),
        ),
    )
}

fn cases() -> Vec<(Case, Expect)> {
    use Purpose::*;
    let mh = wk::ORG_MH_TRUST;
    vec![
        // The person's own access.
        (case("Joe reads his own record", JOE_HIMSELF).opt_in(), permit("baseline:person-own-record")),
        (
            case("Joe reads his own mental-health record", JOE_HIMSELF).opt_in().labels(&[PSY, SDV]),
            permit("baseline:person-own-record"),
        ),
        (case("Joe searches his own record", JOE_HIMSELF).search(), permit("baseline:person-own-record")),
        (
            case("Joe reads someone else's record", JOE_HIMSELF).about(Some("person-other")),
            deny("baseline:deny-by-default"),
        ),
        (
            case("Joe records his own consent", JOE_HIMSELF).res("Consent").write(),
            permit("baseline:person-records-own-consent"),
        ),
        (case("Joe cannot write clinical data", JOE_HIMSELF).write(), deny("baseline:deny-by-default")),
        // The custodian's own data.
        (
            case("care coordinator reads the trust's own record (opt-in, no consent)", CARE_COORDINATOR).opt_in(),
            permit("baseline:custodian-own-data"),
        ),
        (
            case("crisis team reads its trust's labelled record", CRISIS_WORKER).opt_in().labels(&[PSY, ETH, R]),
            permit("baseline:custodian-own-data"),
        ),
        (
            case("custodian searches its own data unfiltered", CARE_COORDINATOR).search(),
            permit("baseline:custodian-own-data"),
        ),
        (
            case("care coordinator writes the trust's record", CARE_COORDINATOR).write(),
            permit("baseline:custodian-own-data"),
        ),
        (case("GP cannot write into the trust's record", GP).write(), deny("baseline:write-only-as-own-organisation")),
        // System clients.
        (
            case("hospital system writes as the hospital", HOSPITAL_SYSTEM)
                .res("Encounter")
                .held_by(wk::ORG_HOSPITAL)
                .write(),
            permit("baseline:custodian-own-data"),
        ),
        (
            case("hospital system cannot write as the GP", HOSPITAL_SYSTEM)
                .res("Encounter")
                .held_by(wk::ORG_GP_ASHGROVE)
                .write(),
            deny("baseline:write-only-as-own-organisation"),
        ),
        (
            case("hospital system reads GP encounters for operations", HOSPITAL_SYSTEM)
                .purpose(Operations)
                .res("Encounter")
                .held_by(wk::ORG_GP_ASHGROVE)
                .no_relationship(),
            permit("agreement:dsa-direct-care/operations"),
        ),
        (
            case("operations clause excludes the police as discloser", HOSPITAL_SYSTEM)
                .purpose(Operations)
                .res("Encounter")
                .held_by(wk::ORG_POLICE),
            deny("baseline:deny-by-default"),
        ),
        // Administrators.
        (
            case("admin reads an agreement", ADMIN).res("Contract").held_by(wk::ORG_GP_ASHGROVE).about(None),
            permit("baseline:administrator-governance"),
        ),
        (
            case("admin writes an organisation", ADMIN).res("Organization").about(None).write(),
            permit("baseline:administrator-governance"),
        ),
        (
            case("admin reads the audit log", ADMIN).res("AuditEvent").about(None),
            permit("baseline:administrator-reads-audit"),
        ),
        (
            case("admin cannot read Joe's record, even at their own organisation", ADMIN).held_by(wk::ORG_HOSPITAL),
            deny("baseline:administrator-no-care-record"),
        ),
        (
            case("a practitioner cannot read another partner's agreement", GP).res("Contract").about(None),
            deny("baseline:deny-by-default"),
        ),
        // Direct care across organisations, opt-out scheme, no consent recorded.
        (
            case("GP reads the trust's condition for direct care", GP),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (case("opt-out default is given as a reason", GP), permit("consent:scheme-opt-out")),
        (
            case("ED nurse (a hospital team) reads the trust's condition", ED_NURSE),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (case("no legitimate relationship, no direct care", GP).no_relationship(), deny("relationship:direct-care")),
        (
            case("on the GP's list is a legitimate relationship", GP).on_list_only(),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (
            case("police liaison reads the crisis plan", POLICE_OFFICER).res("CarePlan"),
            permit("agreement:dsa-direct-care/care-plan-partners"),
        ),
        (case("police liaison cannot read conditions", POLICE_OFFICER), deny("baseline:deny-by-default")),
        (
            case("housing reads the risk flag", HOUSING_WORKER).res("Flag"),
            permit("agreement:dsa-direct-care/care-plan-partners"),
        ),
        (
            case("Pathways reads the GP-held care plan", PATHWAYS_WORKER).res("CarePlan").held_by(wk::ORG_GP_ASHGROVE),
            permit("agreement:dsa-direct-care/care-plan-partners"),
        ),
        (
            case("befriender under a terminated agreement", BEFRIENDER).res("CarePlan").held_by(wk::ORG_SOCIAL_CARE),
            deny("baseline:deny-by-default"),
        ),
        (
            case("social care under an expired agreement", SOCIAL_WORKER).held_by(wk::ORG_GP_RIVERSIDE),
            deny("baseline:deny-by-default"),
        ),
        (
            case("the expired agreement applied inside its period", SOCIAL_WORKER)
                .held_by(wk::ORG_GP_RIVERSIDE)
                .on(date!(2025 - 06 - 01)),
            permit("agreement:dsa-expired/direct-care"),
        ),
        (
            case("housing under a draft, partly signed agreement", HOUSING_WORKER).held_by(wk::ORG_GP_MILLFIELD),
            deny("baseline:deny-by-default"),
        ),
        (
            case("police before an agreement starts", POLICE_OFFICER).res("Flag").held_by(wk::ORG_GP_MILLFIELD),
            deny("baseline:deny-by-default"),
        ),
        (
            case("police once that agreement starts", POLICE_OFFICER)
                .res("Flag")
                .held_by(wk::ORG_GP_MILLFIELD)
                .on(date!(2027 - 02 - 01)),
            permit("agreement:dsa-future/direct-care"),
        ),
        (case("GP after the main agreement has ended", GP).on(date!(2029 - 01 - 01)), deny("baseline:deny-by-default")),
        // Sensitivity labels.
        (
            case("mental-health label withheld without a provision", GP).labels(&[PSY]),
            deny("consent:gate").withheld(&[PSY]),
        ),
        (
            case("mental-health label released to health partners", GP)
                .labels(&[PSY])
                .consents(vec![release_mental_health_to_health()]),
            permit("agreement:dsa-direct-care/health-direct-care")
                .provision("c-release-psy", "Consent.provision.provision[0]"),
        ),
        (
            case("mental-health label not released to the police", POLICE_OFFICER)
                .res("CarePlan")
                .labels(&[PSY])
                .consents(vec![release_mental_health_to_health()]),
            deny("consent:gate").withheld(&[PSY]),
        ),
        (
            case("HIV released by consent but not by the agreement", GP).labels(&[Hiv]).consents(vec![consent(
                "c-hiv",
                ProvisionSpec::deny().except(ProvisionSpec::permit()).except(ProvisionSpec::permit().labels(&[Hiv])),
            )]),
            deny("baseline:deny-by-default").withheld(&[Hiv]),
        ),
        (case("restricted confidentiality withheld", GP).labels(&[R]), deny("consent:gate").withheld(&[R])),
        (
            case("search filtered: nothing sensitive released", GP).search(),
            filtered("agreement:dsa-direct-care/health-direct-care", &[PSY, ETH, SDV, Hiv, R, V]),
        ),
        (
            case("search filtered: mental health released", GP)
                .search()
                .consents(vec![release_mental_health_to_health()]),
            filtered("agreement:dsa-direct-care/health-direct-care", &[ETH, SDV, Hiv, R, V]),
        ),
        // Opt-in scheme.
        (case("opt-in, nothing agreed: nothing shared", GP).opt_in(), deny("consent:gate")),
        (case("opt-in, nothing agreed: the scheme says why", GP).opt_in(), deny("consent:scheme-opt-in")),
        (
            case("opt-in, agreed", GP).opt_in().consents(vec![permit_all()]),
            permit("agreement:dsa-direct-care/health-direct-care").provision("c-permit-all", "Consent.provision"),
        ),
        (
            case("opt-in, withdrawn in a newer version", GP)
                .opt_in()
                .consents(vec![permit_all().status("inactive", "2")]),
            deny("consent:gate").provision("c-permit-all", ""),
        ),
        (
            case("opt-in, a newer consent refuses", GP).opt_in().consents(vec![
                ConsentSpec::new("c-old", JOE_MH, mh, "2026-01-10", ProvisionSpec::permit()),
                ConsentSpec::new("c-new", JOE_MH, mh, "2026-09-01", ProvisionSpec::deny()),
            ]),
            deny("consent:gate").provision("c-new", "Consent.provision"),
        ),
        (
            case("opt-in, police sector excluded", POLICE_OFFICER).opt_in().res("CarePlan").consents(vec![consent(
                "c-no-police",
                ProvisionSpec::permit().except(ProvisionSpec::deny().sectors(&[Sector::Police])),
            )]),
            deny("consent:gate").provision("c-no-police", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-in, police excluded but housing not", HOUSING_WORKER).opt_in().res("CarePlan").consents(vec![
                consent(
                    "c-no-police",
                    ProvisionSpec::permit().except(ProvisionSpec::deny().sectors(&[Sector::Police])),
                ),
            ]),
            permit("agreement:dsa-direct-care/care-plan-partners").provision("c-no-police", "Consent.provision"),
        ),
        (
            case("opt-in, one organisation excluded", HOUSING_WORKER).opt_in().res("Flag").consents(vec![consent(
                "c-no-housing",
                ProvisionSpec::permit().except(ProvisionSpec::deny().organisations(&[wk::ORG_HOUSING])),
            )]),
            deny("consent:gate").provision("c-no-housing", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-in, another organisation still allowed", PATHWAYS_WORKER).opt_in().res("Flag").consents(vec![
                consent(
                    "c-no-housing",
                    ProvisionSpec::permit().except(ProvisionSpec::deny().organisations(&[wk::ORG_HOUSING])),
                ),
            ]),
            permit("agreement:dsa-direct-care/care-plan-partners"),
        ),
        (
            case("opt-in, a partner's exclusion covers its teams", CRISIS_WORKER)
                .opt_in()
                .held_by(wk::ORG_GP_ASHGROVE)
                .consents(vec![consent(
                    "c-no-mh",
                    ProvisionSpec::permit().except(ProvisionSpec::deny().organisations(&[wk::ORG_MH_TRUST])),
                )]),
            deny("consent:gate").provision("c-no-mh", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-in, conditions excluded", GP).opt_in().consents(vec![consent(
                "c-no-conditions",
                ProvisionSpec::permit().except(ProvisionSpec::deny().resource_types(&["Condition"])),
            )]),
            deny("consent:gate"),
        ),
        (
            case("opt-in, conditions excluded but encounters shared", GP).opt_in().res("Encounter").consents(vec![
                consent(
                    "c-no-conditions",
                    ProvisionSpec::permit().except(ProvisionSpec::deny().resource_types(&["Condition"])),
                ),
            ]),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (
            case("opt-in, three levels: police see the plan only", POLICE_OFFICER).opt_in().res("CarePlan").consents(
                vec![consent(
                    "c-nested",
                    ProvisionSpec::permit().except(
                        ProvisionSpec::deny()
                            .sectors(&[Sector::Police])
                            .except(ProvisionSpec::permit().resource_types(&["CarePlan"])),
                    ),
                )],
            ),
            permit("agreement:dsa-direct-care/care-plan-partners")
                .provision("c-nested", "Consent.provision.provision[0].provision[0]"),
        ),
        (
            case("opt-in, three levels: police not the flag", POLICE_OFFICER).opt_in().res("Flag").consents(vec![
                consent(
                    "c-nested",
                    ProvisionSpec::permit().except(
                        ProvisionSpec::deny()
                            .sectors(&[Sector::Police])
                            .except(ProvisionSpec::permit().resource_types(&["CarePlan"])),
                    ),
                ),
            ]),
            deny("consent:gate").provision("c-nested", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-in, consent only for the ambulance service: paramedic", PARAMEDIC).opt_in().consents(vec![
                consent(
                    "c-ambulance",
                    ProvisionSpec::deny().except(ProvisionSpec::permit().organisations(&[wk::ORG_AMBULANCE])),
                ),
            ]),
            permit("agreement:dsa-direct-care/health-direct-care")
                .provision("c-ambulance", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-in, consent only for the ambulance service: GP", GP).opt_in().consents(vec![consent(
                "c-ambulance",
                ProvisionSpec::deny().except(ProvisionSpec::permit().organisations(&[wk::ORG_AMBULANCE])),
            )]),
            deny("consent:gate").provision("c-ambulance", "Consent.provision"),
        ),
        (
            case("opt-in, consent for direct care only: research refused", ED_NURSE)
                .opt_in()
                .purpose(Research)
                .no_relationship()
                .consents(vec![consent("c-treat", ProvisionSpec::permit().purposes(&[Treat]))]),
            deny("consent:scheme-opt-in"),
        ),
        (
            case("opt-in, consent period has ended", GP).opt_in().consents(vec![consent(
                "c-until-june",
                ProvisionSpec::permit().period("2026-01-01", Some("2026-06-30")),
            )]),
            deny("consent:gate"),
        ),
        (
            case("opt-in, consent recorded by staff with evidence", GP).opt_in().consents(vec![
                permit_all().recorded_by_staff("PractitionerRole/role-vale-mh-trust-01", "doc-consent-form-joe")
            ]),
            permit("agreement:dsa-direct-care/health-direct-care").provision("c-permit-all", "Consent.provision"),
        ),
        // Opt-out scheme: objections.
        (
            case("opt-out, the person objects", GP).consents(vec![consent("c-object", ProvisionSpec::deny())]),
            deny("consent:gate").provision("c-object", "Consent.provision"),
        ),
        (
            case("opt-out, objects except to the GP", GP).consents(vec![consent(
                "c-object-but-gp",
                ProvisionSpec::deny().except(ProvisionSpec::permit().organisations(&[wk::ORG_GP_ASHGROVE])),
            )]),
            permit("agreement:dsa-direct-care/health-direct-care")
                .provision("c-object-but-gp", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-out, objection withdrawn", GP)
                .consents(vec![consent("c-object", ProvisionSpec::deny()).status("inactive", "3")]),
            permit("consent:gate").provision("c-object", ""),
        ),
        (
            case("opt-out, objects to research only: research refused", ED_NURSE)
                .purpose(Research)
                .no_relationship()
                .consents(vec![consent(
                    "c-no-research",
                    ProvisionSpec::permit().except(ProvisionSpec::deny().purposes(&[Research])),
                )]),
            deny("consent:gate").provision("c-no-research", "Consent.provision.provision[0]"),
        ),
        (
            case("opt-out, objects to research only: care continues", GP).consents(vec![consent(
                "c-no-research",
                ProvisionSpec::permit().except(ProvisionSpec::deny().purposes(&[Research])),
            )]),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (
            case("opt-out, research under the research agreement", ED_NURSE).purpose(Research).no_relationship(),
            permit("agreement:dsa-research/research"),
        ),
        // National data opt-out.
        (
            case("national opt-out refuses research", ED_NURSE).purpose(Research).no_relationship().national_opt_out(),
            deny("consent:national-opt-out"),
        ),
        (
            case("national opt-out refuses public health", ED_NURSE)
                .purpose(PublicHealth)
                .no_relationship()
                .national_opt_out(),
            deny("consent:national-opt-out"),
        ),
        (
            case("national opt-out refuses operations", HOSPITAL_SYSTEM)
                .purpose(Operations)
                .res("Encounter")
                .held_by(wk::ORG_GP_ASHGROVE)
                .national_opt_out(),
            deny("consent:national-opt-out"),
        ),
        (
            case("national opt-out never affects direct care", GP).national_opt_out(),
            permit("agreement:dsa-direct-care/health-direct-care"),
        ),
        (
            case("national opt-out never affects emergency care", PARAMEDIC)
                .glass("unconscious, suspected overdose")
                .no_relationship()
                .national_opt_out(),
            permit("agreement:dsa-direct-care/emergency").glass(),
        ),
        (
            case("national opt-out does not touch the custodian's own use", CARE_COORDINATOR)
                .purpose(Research)
                .national_opt_out(),
            permit("baseline:custodian-own-data"),
        ),
        // Break-glass.
        (
            case("paramedic breaks the glass with no relationship (opt-in, no consent)", PARAMEDIC)
                .opt_in()
                .glass("collapsed in the street, unresponsive")
                .no_relationship(),
            permit("agreement:dsa-direct-care/emergency").glass(),
        ),
        (
            case("break-glass says the consent was overridden", PARAMEDIC)
                .opt_in()
                .glass("collapsed in the street")
                .no_relationship(),
            permit("consent:scheme-opt-in").glass(),
        ),
        (
            case("break-glass reaches labels the emergency clause allows", PARAMEDIC)
                .glass("overdose")
                .labels(&[PSY, ETH])
                .no_relationship(),
            permit("agreement:dsa-direct-care/emergency").glass(),
        ),
        (
            case("break-glass search withholds labels the clause does not allow", PARAMEDIC)
                .glass("overdose")
                .search()
                .no_relationship(),
            filtered("agreement:dsa-direct-care/emergency", &[SDV, Hiv, V]).glass(),
        ),
        (
            case("break-glass does not reach labels the clause excludes", ED_NURSE)
                .glass("self-harm, confused")
                .labels(&[SDV])
                .no_relationship(),
            deny("baseline:deny-by-default").withheld(&[SDV]).glass(),
        ),
        (
            case("emergency care assistant may not break the glass", CARE_ASSISTANT).glass("need history"),
            deny("break-glass:allowed-roles").glass(),
        ),
        (
            case("police officer may not break the glass", POLICE_OFFICER).glass("detained under s136"),
            deny("break-glass:allowed-roles").glass(),
        ),
        (case("break-glass needs a reason", PARAMEDIC).glass("   "), deny("break-glass:allowed-roles").glass()),
        (
            case("ETREAT without break-glass is refused", PARAMEDIC).purpose(EmergencyTreat),
            deny("break-glass:allowed-roles"),
        ),
        (
            case("break-glass is only for emergency care", PARAMEDIC).glass("x").purpose(Treat),
            deny("break-glass:emergency-purpose-only").glass(),
        ),
        (
            case("system clients cannot break the glass", HOSPITAL_SYSTEM).glass("batch"),
            deny("break-glass:allowed-roles").glass(),
        ),
        (
            case("break-glass does not override an explicit refusal of emergency access", PARAMEDIC)
                .glass("unresponsive")
                .consents(vec![consent("c-no-emergency", ProvisionSpec::deny().purposes(&[EmergencyTreat]))]),
            deny("consent:gate").glass().provision("c-no-emergency", "Consent.provision"),
        ),
        (
            case("break-glass only for data the emergency clause covers", PARAMEDIC)
                .glass("unresponsive")
                .res("Observation"),
            deny("baseline:deny-by-default").glass(),
        ),
        (
            case("housing is not party to the emergency clause", HOUSING_WORKER).glass("tenant found unwell"),
            deny("break-glass:allowed-roles").glass(),
        ),
        // Unknown organisations.
        (
            case("a user of an unregistered organisation", User { org: "org-unknown", ..GP }),
            deny("baseline:unknown-organisation"),
        ),
        (
            case("a record held by an unregistered custodian", GP).held_by("org-unknown"),
            deny("baseline:unknown-organisation"),
        ),
    ]
}

#[test]
fn decision_matrix() {
    let opt_out = engine(ConsentModel::OptOut);
    let opt_in = engine(ConsentModel::OptIn);
    let cases = cases();
    assert!(cases.len() >= 60, "the matrix has {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(c, e)| {
            let engine = if c.model == ConsentModel::OptIn { &opt_in } else { &opt_out };
            check(engine, c, e).err()
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn decide_many_answers_as_decide_does() {
    for model in [ConsentModel::OptOut, ConsentModel::OptIn] {
        let engine = engine(model);
        let cases: Vec<(Case, Expect)> = cases().into_iter().filter(|(c, _)| c.model == model).collect();
        let one_by_one: Vec<_> = cases.iter().map(|(c, _)| engine.decide(&c.request, &c.consent)).collect();
        let many = engine.decide_many(cases.iter().map(|(c, _)| (&c.request, &c.consent)));
        assert_eq!(many, one_by_one, "{model:?}");
        // Consecutive requests by one user reuse its entity: the answers still follow each request.
        let mut same_user: Vec<&Case> =
            cases.iter().map(|(c, _)| c).filter(|c| c.request.who.user_id == GP.id).collect();
        same_user.reverse();
        let many = engine.decide_many(same_user.iter().map(|c| (&c.request, &c.consent)));
        let one_by_one: Vec<_> = same_user.iter().map(|c| engine.decide(&c.request, &c.consent)).collect();
        assert_eq!(many, one_by_one, "{model:?}");
    }
}

#[test]
fn a_withdrawal_changes_the_very_next_decision() {
    let engine = engine(ConsentModel::OptIn);
    let req = request(GP);
    let given = vec![permit_all().to_resource()];
    let consent = PersonConsent::from_resources(&given, false).expect("valid");
    assert_eq!(engine.decide(&req, &consent).effect, Effect::Permit);
    let withdrawn = vec![permit_all().status("inactive", "2").to_resource()];
    let consent = PersonConsent::from_resources(&withdrawn, false).expect("valid");
    assert_eq!(engine.decide(&req, &consent).effect, Effect::Deny);
    assert_eq!(consent.versions(), vec![("c-permit-all".to_string(), "2".to_string())]);
}

#[test]
fn explanations_name_policies_clauses_and_provisions() {
    let engine = engine(ConsentModel::OptIn);
    let c = case("police", POLICE_OFFICER).opt_in().res("CarePlan").consents(vec![consent(
        "c-no-police",
        ProvisionSpec::permit().except(ProvisionSpec::deny().sectors(&[Sector::Police])),
    )]);
    let text = engine.explain(&c.request, &c.consent);
    assert!(text.starts_with("Decision: DENY"), "{text}");
    assert!(text.contains("[matched]     forbid consent:gate"), "{text}");
    assert!(
        text.contains("[not matched] permit agreement:dsa-direct-care/care-plan-partners")
            || text.contains("[matched]     permit agreement:dsa-direct-care/care-plan-partners"),
        "{text}"
    );
    assert!(text.contains("Consent.provision.provision[0] of Consent/c-no-police (version 1)"), "{text}");
    // The expired and future agreements between the police and Millfield are reported.
    let c = case("police millfield", POLICE_OFFICER).res("Flag").held_by(wk::ORG_GP_MILLFIELD);
    let text = engine.explain(&c.request, &c.consent);
    assert!(text.contains("dsa-future \"Millfield and police (from 2027)\": NotYetInForce"), "{text}");
}

#[test]
fn every_request_shape_conforms_to_the_schema() {
    let engine = engine(ConsentModel::OptOut);
    for user in [GP, JOE_HIMSELF, HOSPITAL_SYSTEM, ADMIN] {
        engine.request_conforms_to_schema(&request(user)).expect("conforms");
    }
}

#[test]
fn agreement_policies_have_stable_ids_and_validate() {
    let engine = engine(ConsentModel::OptOut);
    let ids: Vec<&str> = engine.policies().map(|p| p.id.as_str()).collect();
    for id in [
        "agreement:dsa-direct-care/health-direct-care",
        "agreement:dsa-direct-care/emergency",
        "agreement:dsa-research/research",
        "agreement:dsa-expired/direct-care",
        "baseline:person-own-record",
        "baseline:custodian-own-data",
        "consent:gate",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    // Terminated and draft agreements compile to nothing.
    assert!(!ids.iter().any(|id| id.starts_with("agreement:dsa-terminated") || id.starts_with("agreement:dsa-draft")));
    // Every policy text carries its id as an annotation.
    for p in engine.policies() {
        assert!(p.text.starts_with(&format!("@id(\"{}\")", p.id)), "{}", p.text);
    }
}
