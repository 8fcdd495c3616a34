//! Joe, from the seed story: his records at eight partners, his care team, his multi-agency
//! crisis plan with the August trigger, and his risk flag. Fixed for every seed.

use serde_json::{json, Value};

use crate::clinical::{
    class, condition_resource, contact, encounter_resource, episode, episode_resource, hold, ConditionSpec,
    EncounterSpec, EpisodeSpec, Sink, ALCOHOL,
};
use crate::dates::Date;
use crate::fhir::{cc_concept, concept, period, phone, reference, reference_display};
use crate::orgs::{self, StaffDef};
use crate::people::local_system;
use crate::well_known as wk;
use crate::DemoResource;

const BIRTH: &str = "1968-02-27";
const MOBILE: &str = "07700 900461";
const HOME: (&str, &str, &str) = ("14 Lowther Close", "Minsterford", "MF3 7QN");
const OLD_HOME: (&str, &str, &str) = ("27 Beckside Road", "Kettleby", "MF7 2DH");
const DEPRESSION: (&str, &str) = ("35489007", "Depressive disorder");
const SUICIDE_ATTEMPT: (&str, &str) = ("82313006", "Suicide attempt");

/// How one partner wrote Joe down.
struct JoePatient {
    id: &'static str,
    org: &'static str,
    local: &'static str,
    given: &'static [&'static str],
    family: &'static str,
    prefix: Option<&'static str>,
    nhs: bool,
    birth: bool,
    address: Option<((&'static str, &'static str, &'static str), bool)>,
    mobile: bool,
    widowed: bool,
}

const PATIENTS: &[JoePatient] = &[
    JoePatient {
        id: wk::JOE_PATIENT_GP,
        org: wk::ORG_GP_ASHGROVE,
        local: "094817",
        given: &["Joseph", "Arthur"],
        family: "Mallory",
        prefix: None,
        nhs: true,
        birth: true,
        address: Some((HOME, true)),
        mobile: true,
        widowed: true,
    },
    JoePatient {
        id: wk::JOE_PATIENT_MH_TRUST,
        org: wk::ORG_MH_TRUST,
        local: "VMH048213",
        given: &["Joseph", "Arthur"],
        family: "Mallory",
        prefix: None,
        nhs: true,
        birth: true,
        address: Some((HOME, true)),
        mobile: true,
        widowed: true,
    },
    // The hospital still has the house he lived in with his wife.
    JoePatient {
        id: wk::JOE_PATIENT_HOSPITAL,
        org: wk::ORG_HOSPITAL,
        local: "M0731542",
        given: &["Joseph"],
        family: "Mallory",
        prefix: None,
        nhs: true,
        birth: true,
        address: Some((OLD_HOME, true)),
        mobile: false,
        widowed: false,
    },
    // A typo in the family name, and no postcode, taken down at the scene.
    JoePatient {
        id: wk::JOE_PATIENT_AMBULANCE,
        org: wk::ORG_AMBULANCE,
        local: "NVA0208314",
        given: &["Joe"],
        family: "Malory",
        prefix: None,
        nhs: true,
        birth: true,
        address: Some((HOME, false)),
        mobile: false,
        widowed: false,
    },
    JoePatient {
        id: wk::JOE_PATIENT_POLICE,
        org: wk::ORG_POLICE,
        local: "NVP0193377",
        given: &["Joe"],
        family: "Mallory",
        prefix: None,
        nhs: false,
        birth: true,
        address: Some((HOME, true)),
        mobile: true,
        widowed: false,
    },
    JoePatient {
        id: wk::JOE_PATIENT_SOCIAL_CARE,
        org: wk::ORG_SOCIAL_CARE,
        local: "0308152",
        given: &["Joseph"],
        family: "Mallory",
        prefix: None,
        nhs: true,
        birth: true,
        address: Some((HOME, true)),
        mobile: true,
        widowed: true,
    },
    JoePatient {
        id: wk::JOE_PATIENT_HOUSING,
        org: wk::ORG_HOUSING,
        local: "T041187",
        given: &["Joseph"],
        family: "Mallory",
        prefix: Some("Mr"),
        nhs: false,
        birth: false,
        address: Some((HOME, true)),
        mobile: false,
        widowed: false,
    },
    JoePatient {
        id: wk::JOE_PATIENT_PATHWAYS,
        org: wk::ORG_PATHWAYS,
        local: "PW04120",
        given: &["Joe"],
        family: "Mallory",
        prefix: None,
        nhs: false,
        birth: true,
        address: Some((HOME, false)),
        mobile: true,
        widowed: false,
    },
];

fn patient(j: &JoePatient) -> Value {
    let mut identifiers = vec![json!({ "use": "usual", "system": local_system(j.org), "value": j.local })];
    if j.nhs {
        identifiers.push(json!({ "use": "official", "system": wk::NHS_NUMBER_SYSTEM, "value": wk::JOE_NHS_NUMBER }));
    }
    let mut name = json!({ "use": "official", "family": j.family, "given": j.given });
    if let Some(prefix) = j.prefix {
        name["prefix"] = json!([prefix]);
    }
    let mut r = json!({
        "resourceType": "Patient",
        "id": j.id,
        "identifier": identifiers,
        "active": true,
        "name": [name],
    });
    if j.mobile {
        r["telecom"] = json!([phone(MOBILE, "mobile")]);
    }
    r["gender"] = json!("male");
    if j.birth {
        r["birthDate"] = json!(BIRTH);
    }
    if let Some(((line, city, postcode), with_postcode)) = j.address {
        let mut a = json!({ "use": "home", "line": [line], "city": city, "country": "GB" });
        if with_postcode {
            a["postalCode"] = json!(postcode);
        }
        r["address"] = json!([a]);
    }
    if j.widowed {
        r["maritalStatus"] = concept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "W", "Widowed");
    }
    r["generalPractitioner"] = if j.org == wk::ORG_GP_ASHGROVE {
        json!([reference_display("Practitioner", wk::JOE_GP, "Dr Helen Varley")])
    } else {
        json!([reference("Organization", wk::ORG_GP_ASHGROVE)])
    };
    let org_name = orgs::org(j.org).map_or("", |o| o.name);
    r["managingOrganization"] = reference_display("Organization", j.org, org_name);
    r
}

fn staff(id: &str) -> Option<&'static StaffDef> {
    orgs::staff(id)
}

/// One of Joe's contacts: id, custodian, patient, class, type, provider, staff, date, minute,
/// duration, reason, episode.
type Contact = (
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
    (&'static str, &'static str),
    &'static str,
    Option<&'static str>,
    Date,
    u32,
    u32,
    &'static str,
    Option<&'static str>,
);

fn contacts() -> Vec<Contact> {
    let d = Date::from_ymd;
    let mh = Some(wk::JOE_EPISODE_MH);
    vec![
        (
            "enc-joe-gp-2023-01",
            wk::ORG_GP_ASHGROVE,
            wk::JOE_PATIENT_GP,
            class::AMB,
            contact::GP,
            wk::ORG_GP_ASHGROVE,
            Some(wk::JOE_GP),
            d(2023, 1, 16),
            10 * 60 + 20,
            20,
            "Low mood and poor sleep since his wife died in August",
            None,
        ),
        (
            wk::JOE_AMBULANCE_CALLOUT,
            wk::ORG_AMBULANCE,
            wk::JOE_PATIENT_AMBULANCE,
            class::FLD,
            contact::AMBULANCE,
            wk::ORG_AMBULANCE,
            Some(wk::PARAMEDIC),
            d(2024, 8, 19),
            23 * 60 + 40,
            55,
            "Overdose; found by a neighbour",
            None,
        ),
        (
            wk::JOE_ED_ATTENDANCE,
            wk::ORG_HOSPITAL,
            wk::JOE_PATIENT_HOSPITAL,
            class::EMER,
            contact::ED,
            wk::ORG_HOSPITAL_ED,
            Some(wk::ED_NURSE),
            d(2024, 8, 20),
            35,
            515,
            "Intentional overdose (suicide attempt)",
            None,
        ),
        (
            "enc-joe-crisis-2024-08-20",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::HH,
            contact::CRISIS,
            wk::ORG_CRISIS_TEAM,
            Some(wk::CRISIS_WORKER),
            d(2024, 8, 20),
            14 * 60,
            75,
            "Crisis assessment after discharge from the emergency department",
            mh,
        ),
        (
            "enc-joe-mh-2024-09-05",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::HH,
            contact::CARE_COORDINATOR,
            wk::ORG_MH_TRUST,
            Some(wk::JOE_CARE_COORDINATOR),
            d(2024, 9, 5),
            11 * 60,
            60,
            "First care coordination visit",
            mh,
        ),
        (
            "enc-joe-asc-2024-10-08",
            wk::ORG_SOCIAL_CARE,
            wk::JOE_PATIENT_SOCIAL_CARE,
            class::HH,
            contact::SOCIAL_CARE,
            wk::ORG_SOCIAL_CARE,
            Some(wk::SOCIAL_WORKER),
            d(2024, 10, 8),
            14 * 60,
            90,
            "Care Act needs assessment",
            Some(wk::JOE_EPISODE_SOCIAL_CARE),
        ),
        (
            "enc-joe-police-2025-03-11",
            wk::ORG_POLICE,
            wk::JOE_PATIENT_POLICE,
            class::FLD,
            contact::POLICE,
            wk::ORG_POLICE,
            None,
            d(2025, 3, 11),
            21 * 60 + 15,
            50,
            "Neighbour dispute: noise complaint, Joe intoxicated",
            None,
        ),
        (
            "enc-joe-housing-2025-03-14",
            wk::ORG_HOUSING,
            wk::JOE_PATIENT_HOUSING,
            class::HH,
            contact::HOUSING,
            wk::ORG_HOUSING,
            Some(wk::HOUSING_CASEWORKER),
            d(2025, 3, 14),
            10 * 60,
            45,
            "Neighbour dispute",
            None,
        ),
        (
            "enc-joe-pathways-2025-04-02",
            wk::ORG_PATHWAYS,
            wk::JOE_PATIENT_PATHWAYS,
            class::AMB,
            contact::PATHWAYS,
            wk::ORG_PATHWAYS,
            Some(wk::PATHWAYS_WORKER),
            d(2025, 4, 2),
            13 * 60,
            60,
            "Initial engagement",
            Some(wk::JOE_EPISODE_PATHWAYS),
        ),
        (
            "enc-joe-mh-2025-06-12",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::AMB,
            contact::CARE_COORDINATOR,
            wk::ORG_MH_TRUST,
            Some(wk::JOE_CARE_COORDINATOR),
            d(2025, 6, 12),
            10 * 60,
            60,
            "Care plan review",
            mh,
        ),
        (
            wk::JOE_POLICE_CONTACT,
            wk::ORG_POLICE,
            wk::JOE_PATIENT_POLICE,
            class::FLD,
            contact::POLICE,
            wk::ORG_POLICE_MH_LIAISON,
            Some(wk::POLICE_LIAISON_OFFICER),
            d(2025, 8, 23),
            22 * 60 + 40,
            90,
            "Neighbour dispute; concern for welfare",
            None,
        ),
        (
            "enc-joe-ambulance-2025-08-24",
            wk::ORG_AMBULANCE,
            wk::JOE_PATIENT_AMBULANCE,
            class::FLD,
            contact::AMBULANCE,
            wk::ORG_AMBULANCE,
            Some("prac-northvale-ambulance-02"),
            d(2025, 8, 24),
            2 * 60 + 10,
            70,
            "Intoxicated and injured after a fall",
            None,
        ),
        (
            "enc-joe-pathways-2025-08-26",
            wk::ORG_PATHWAYS,
            wk::JOE_PATIENT_PATHWAYS,
            class::AMB,
            contact::PATHWAYS,
            wk::ORG_PATHWAYS,
            Some(wk::PATHWAYS_WORKER),
            d(2025, 8, 26),
            11 * 60,
            60,
            "Support session",
            Some(wk::JOE_EPISODE_PATHWAYS),
        ),
        (
            "enc-joe-mh-2026-06-18",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::AMB,
            contact::CARE_COORDINATOR,
            wk::ORG_MH_TRUST,
            Some(wk::JOE_CARE_COORDINATOR),
            d(2026, 6, 18),
            14 * 60,
            120,
            "Multi-agency meeting: shared crisis plan agreed with Joe",
            mh,
        ),
        (
            "enc-joe-gp-2026-07-20",
            wk::ORG_GP_ASHGROVE,
            wk::JOE_PATIENT_GP,
            class::AMB,
            contact::GP,
            wk::ORG_GP_ASHGROVE,
            Some(wk::JOE_GP),
            d(2026, 7, 20),
            9 * 60 + 10,
            15,
            "Depression and alcohol review before August",
            None,
        ),
        (
            "enc-joe-crisis-2026-08-04",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::VR,
            contact::CRISIS,
            wk::ORG_CRISIS_TEAM,
            Some(wk::CRISIS_WORKER),
            d(2026, 8, 4),
            10 * 60,
            30,
            "Proactive August contact (shared crisis plan)",
            mh,
        ),
        (
            "enc-joe-crisis-2026-08-11",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::HH,
            contact::CRISIS,
            wk::ORG_CRISIS_TEAM,
            Some("prac-vale-mh-trust-05"),
            d(2026, 8, 11),
            15 * 60,
            60,
            "Proactive August contact; care coordinator on leave",
            mh,
        ),
        (
            "enc-joe-pathways-2026-08-12",
            wk::ORG_PATHWAYS,
            wk::JOE_PATIENT_PATHWAYS,
            class::AMB,
            contact::PATHWAYS,
            wk::ORG_PATHWAYS,
            Some(wk::PATHWAYS_WORKER),
            d(2026, 8, 12),
            10 * 60,
            150,
            "Accompanied to the allotment group (August activities)",
            Some(wk::JOE_EPISODE_PATHWAYS),
        ),
        (
            "enc-joe-crisis-2026-08-18",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::HH,
            contact::CRISIS,
            wk::ORG_CRISIS_TEAM,
            Some(wk::CRISIS_WORKER),
            d(2026, 8, 18),
            16 * 60,
            60,
            "Proactive contact before the anniversary",
            mh,
        ),
        (
            "enc-joe-crisis-2026-08-25",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::VR,
            contact::CRISIS,
            wk::ORG_CRISIS_TEAM,
            Some("prac-vale-mh-trust-05"),
            d(2026, 8, 25),
            10 * 60 + 30,
            30,
            "Proactive August contact",
            mh,
        ),
        (
            "enc-joe-mh-2026-10-15",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            class::HH,
            contact::CARE_COORDINATOR,
            wk::ORG_MH_TRUST,
            Some(wk::JOE_CARE_COORDINATOR),
            d(2026, 10, 15),
            11 * 60,
            60,
            "Review of August under the shared plan",
            mh,
        ),
    ]
}

/// Whom an alert for an agreed response goes to, in escalation order.
#[derive(Clone, Copy)]
enum Reach {
    /// A member of staff (their PractitionerRole), by Practitioner id.
    Staff(&'static str),
    /// A telephone number (a team's duty line).
    Phone(&'static str),
}

/// One agreed response: the agency, what it does, whom to alert (in escalation order) and how
/// soon they must acknowledge.
struct Agreed<'a> {
    agency: &'a str,
    text: &'a str,
    contacts: &'a [Reach],
    acknowledge_minutes: Option<u32>,
}

fn response(agreed: &Agreed<'_>) -> Value {
    let name = orgs::org(agreed.agency).map_or("", |o| o.name);
    let mut ext = vec![
        json!({ "url": "agency", "valueReference": reference_display("Organization", agreed.agency, name) }),
        json!({ "url": "text", "valueString": agreed.text }),
    ];
    for contact in agreed.contacts {
        match *contact {
            Reach::Staff(id) => {
                if let Some(s) = staff(id) {
                    let display = format!("{} ({})", s.display(), s.role.1);
                    ext.push(json!({ "url": "contact",
                                     "valueReference": reference_display("PractitionerRole", &s.role_id(), &display) }));
                }
            }
            Reach::Phone(number) => {
                ext.push(json!({ "url": "contact", "valueContactPoint": { "system": "phone", "value": number, "use": "work" } }));
            }
        }
    }
    if let Some(minutes) = agreed.acknowledge_minutes {
        ext.push(json!({ "url": "acknowledge-within", "valueDuration": {
            "value": minutes, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min" } }));
    }
    json!({ "url": "response", "extension": ext })
}

/// What sets a trigger off.
enum Trigger {
    /// A month that comes round every year (1–12).
    Month(u32),
    /// An event code from the trigger-event CodeSystem.
    Event(&'static str, &'static str),
    /// A situation code from the trigger-situation CodeSystem.
    Situation(&'static str, &'static str),
}

fn activity(trigger: Trigger, description: &str, responses: &[(&str, &str)]) -> Value {
    let agreed: Vec<Agreed<'_>> = responses
        .iter()
        .map(|&(agency, text)| Agreed { agency, text, contacts: &[], acknowledge_minutes: None })
        .collect();
    activity_with(trigger, description, &agreed)
}

fn activity_with(trigger: Trigger, description: &str, responses: &[Agreed<'_>]) -> Value {
    let mut ext = Vec::new();
    match trigger {
        Trigger::Month(m) => {
            ext.push(json!({ "url": "kind", "valueCode": "recurring-period" }));
            ext.push(json!({ "url": "month", "valueInteger": m }));
        }
        Trigger::Event(code, display) => {
            ext.push(json!({ "url": "kind", "valueCode": "event" }));
            ext.push(json!({ "url": "event", "valueCoding": {
                "system": wk::TRIGGER_EVENT_SYSTEM, "code": code, "display": display,
            }}));
        }
        Trigger::Situation(code, display) => {
            ext.push(json!({ "url": "kind", "valueCode": "situation" }));
            ext.push(json!({ "url": "situation", "valueCoding": {
                "system": wk::TRIGGER_SITUATION_SYSTEM, "code": code, "display": display,
            }}));
        }
    }
    let mut performers: Vec<&str> = Vec::new();
    for agreed in responses {
        ext.push(response(agreed));
        if !performers.contains(&agreed.agency) {
            performers.push(agreed.agency);
        }
    }
    let mut detail = json!({
        "status": "in-progress",
        "performer": performers.iter().map(|a| reference("Organization", a)).collect::<Vec<_>>(),
        "description": description,
    });
    if let Trigger::Month(8) = trigger {
        detail["scheduledString"] = json!("Every August");
    }
    json!({
        "extension": [{ "url": wk::TRIGGER_EXTENSION_URL, "extension": ext }],
        "detail": detail,
    })
}

fn care_plan() -> Value {
    let activities = vec![
        activity(
            Trigger::Month(8),
            "August is the anniversary of the death of Joe's wife (19 August). Every August his risk rises: \
             hopelessness, heavier drinking and suicidal thoughts. All agencies work to this plan for the whole month.",
            &[
                (wk::ORG_CRISIS_TEAM, "Proactive contact with Joe at least weekly through August (phone or home visit)."),
                (wk::ORG_POLICE_MH_LIAISON, "Flag Joe's address; before attending, contact the crisis team; the liaison officer attends where possible."),
                (wk::ORG_AMBULANCE, "Inform the crisis team after any call-out to Joe; consider a mental-health paramedic."),
                (wk::ORG_SOCIAL_CARE, "Agree activities with Joe for August (allotment group, day centre) so he is not isolated."),
                (wk::ORG_PATHWAYS, "Weekly support session and accompanied activities through August."),
                (wk::ORG_MH_TRUST, "Care coordinator avoids leave in August where possible and hands over to the crisis team before any leave."),
            ],
        ),
        activity(
            Trigger::Situation("care-coordinator-on-leave", "Care coordinator on leave"),
            "When Joe's care coordinator is on leave, the crisis team is the named contact for Joe and for every agency.",
            &[
                (wk::ORG_CRISIS_TEAM, "Named contact: holds the plan, takes calls from agencies, and makes the weekly contact."),
                (wk::ORG_POLICE_MH_LIAISON, "Contact the crisis team instead of the care coordinator."),
                (wk::ORG_AMBULANCE, "Contact the crisis team instead of the care coordinator."),
                (wk::ORG_SOCIAL_CARE, "Contact the crisis team instead of the care coordinator."),
                (wk::ORG_PATHWAYS, "Contact the crisis team instead of the care coordinator."),
            ],
        ),
        activity(
            Trigger::Event("police-contact", "Police contact"),
            "Police are called to Joe's home or meet Joe (for example a neighbour dispute).",
            &[
                (wk::ORG_POLICE_MH_LIAISON, "Contact the crisis team before attending where possible, and tell them the outcome."),
                (wk::ORG_CRISIS_TEAM, "Contact Joe within 24 hours."),
                (wk::ORG_HOUSING, "Review the neighbour dispute and offer mediation."),
            ],
        ),
        // What the partners agreed at the June 2026 meeting: an emergency department attendance
        // means Joe is in crisis, so his care coordinator, the crisis team and the police
        // liaison team are all told at once, each with a named person to answer.
        activity_with(
            Trigger::Event("ed-attendance", "Emergency department attendance"),
            "Joe attends the emergency department. His care coordinator, the crisis team and the police \
             mental-health liaison team are alerted at once, with this plan.",
            &[
                Agreed {
                    agency: wk::ORG_HOSPITAL_ED,
                    text: "Refer Joe to liaison psychiatry and do not discharge him before the crisis team has \
                           assessed him or agreed the discharge.",
                    contacts: &[Reach::Staff("prac-minsterford-hospital-04"), Reach::Phone("01632 960101")],
                    acknowledge_minutes: Some(30),
                },
                Agreed {
                    agency: wk::ORG_MH_TRUST,
                    text: "Care coordinator calls the emergency department the same day, sees Joe within 72 hours \
                           of discharge and reviews this plan with him within a week.",
                    contacts: &[Reach::Staff(wk::JOE_CARE_COORDINATOR), Reach::Staff("prac-vale-mh-trust-02")],
                    acknowledge_minutes: Some(240),
                },
                Agreed {
                    agency: wk::ORG_CRISIS_TEAM,
                    text: "Assess Joe in the emergency department before discharge; if he has left, contact him \
                           within 24 hours.",
                    contacts: &[
                        Reach::Staff(wk::CRISIS_WORKER),
                        Reach::Staff("prac-vale-mh-trust-06"),
                        Reach::Phone("01632 960141"),
                    ],
                    acknowledge_minutes: Some(30),
                },
                Agreed {
                    agency: wk::ORG_POLICE_MH_LIAISON,
                    text: "Check for a linked police incident and tell the crisis team of any; the liaison \
                           officer attends the emergency department if the police brought Joe in, and reviews the \
                           address flag with the crisis team.",
                    contacts: &[Reach::Staff(wk::POLICE_LIAISON_OFFICER), Reach::Staff("prac-northvale-police-03")],
                    acknowledge_minutes: Some(60),
                },
            ],
        ),
        activity(
            Trigger::Event("ambulance-callout", "Ambulance call-out"),
            "An ambulance is called to Joe.",
            &[
                (wk::ORG_AMBULANCE, "Do not leave Joe alone if he is intoxicated and distressed; inform the crisis team."),
                (wk::ORG_CRISIS_TEAM, "Contact Joe within 24 hours."),
            ],
        ),
    ];
    let contributors: Vec<Value> = [
        wk::CRISIS_WORKER,
        wk::SOCIAL_WORKER,
        wk::POLICE_LIAISON_OFFICER,
        wk::PARAMEDIC,
        wk::PATHWAYS_WORKER,
        wk::HOUSING_CASEWORKER,
        wk::JOE_GP,
    ]
    .iter()
    .map(|id| reference("Practitioner", id))
    .collect();
    json!({
        "resourceType": "CarePlan",
        "id": wk::JOE_CARE_PLAN,
        "status": "active",
        "intent": "plan",
        "category": [cc_concept("careplan-category", "crisis-plan", "Crisis plan")],
        "title": "Joe's shared crisis and contingency plan",
        "description": "Multi-agency plan agreed with Joe on 18 June 2026 by the mental health trust, crisis team, \
                        police, ambulance service, adult social care, housing and Pathways, so that he has continuity \
                        of support in August and whenever his care coordinator is away.",
        "subject": reference_display("Patient", wk::JOE_PATIENT_MH_TRUST, "Joseph Mallory"),
        "period": period("2026-06-18", None),
        "created": "2026-06-18",
        "author": reference_display("Practitioner", wk::JOE_CARE_COORDINATOR, "Ms Ruth Oyelaran"),
        "contributor": contributors,
        "careTeam": [reference("CareTeam", wk::JOE_CARE_TEAM)],
        "addresses": [
            reference("Condition", wk::JOE_CONDITION_DEPRESSION),
            reference("Condition", "cond-joe-mh-alcohol"),
        ],
        "activity": activities,
        "note": [{ "text": "Joe agreed to this plan and to it being shared with every agency named in it." }],
    })
}

fn care_team() -> Value {
    let members: &[(&str, &str, &str, bool)] = &[
        (wk::JOE_CARE_COORDINATOR, wk::ORG_MH_TRUST, "Care coordinator", true),
        (wk::CRISIS_WORKER, wk::ORG_CRISIS_TEAM, "Crisis team", false),
        (wk::SOCIAL_WORKER, wk::ORG_SOCIAL_CARE, "Social worker", false),
        (wk::POLICE_LIAISON_OFFICER, wk::ORG_POLICE_MH_LIAISON, "Police mental health liaison", false),
        (wk::PARAMEDIC, wk::ORG_AMBULANCE, "Ambulance service", false),
        (wk::PATHWAYS_WORKER, wk::ORG_PATHWAYS, "Pathways worker", false),
        (wk::HOUSING_CASEWORKER, wk::ORG_HOUSING, "Housing caseworker", false),
        (wk::JOE_GP, wk::ORG_GP_ASHGROVE, "GP", false),
    ];
    let participants: Vec<Value> = members
        .iter()
        .filter_map(|&(prac, org, text, lead)| {
            let s = staff(prac)?;
            let role = if lead {
                cc_concept("care-team-role", "lead", "Lead professional")
            } else {
                cc_concept("care-team-role", "member", "Care team member")
            };
            Some(json!({
                "role": [role, cc_concept("staff-role", s.role.0, s.role.1)],
                "member": reference_display("PractitionerRole", &s.role_id(), &format!("{} ({text})", s.display())),
                "onBehalfOf": reference_display("Organization", org, orgs::org(org).map_or("", |o| o.name)),
                "period": { "start": "2026-06-18" },
            }))
        })
        .collect();
    json!({
        "resourceType": "CareTeam",
        "id": wk::JOE_CARE_TEAM,
        "status": "active",
        "category": [cc_concept("care-team-category", "multi-agency", "Multi-agency care team")],
        "name": "Joe Mallory: multi-agency care team",
        "subject": reference("Patient", wk::JOE_PATIENT_MH_TRUST),
        "period": { "start": "2026-06-18" },
        "participant": participants,
        "managingOrganization": [reference("Organization", wk::ORG_MH_TRUST)],
        "telecom": [phone("01632 960141", "work")],
        "note": [{ "text": "When the care coordinator is on leave, the crisis team is the named contact." }],
    })
}

/// Add Joe's Patients (with their truth: person 0) and everything else about him.
pub fn add(patients: &mut Vec<DemoResource>, truth: &mut Vec<(String, u32)>, sink: &mut Sink) {
    for j in PATIENTS {
        patients.push(hold(j.org, patient(j)));
        truth.push((j.id.to_string(), wk::JOE_PERSON));
    }

    sink.care_teams.push(hold(wk::ORG_MH_TRUST, care_team()));

    let d = Date::from_ymd;
    for (id, org, patient, kind, start, manager, team) in [
        (
            wk::JOE_EPISODE_MH,
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            episode::CMHT,
            d(2024, 8, 20),
            wk::JOE_CARE_COORDINATOR,
            Some(wk::JOE_CARE_TEAM),
        ),
        (
            wk::JOE_EPISODE_SOCIAL_CARE,
            wk::ORG_SOCIAL_CARE,
            wk::JOE_PATIENT_SOCIAL_CARE,
            episode::ASC,
            d(2024, 10, 1),
            wk::SOCIAL_WORKER,
            None,
        ),
        (
            wk::JOE_EPISODE_PATHWAYS,
            wk::ORG_PATHWAYS,
            wk::JOE_PATIENT_PATHWAYS,
            episode::PATHWAYS,
            d(2025, 4, 2),
            wk::PATHWAYS_WORKER,
            None,
        ),
    ] {
        let spec =
            EpisodeSpec { id: id.to_string(), patient, kind, org, start, end: None, manager: staff(manager), team };
        sink.episodes.push(hold(org, episode_resource(&spec)));
    }

    for (id, custodian, patient, class, kind, provider, who, day, minute, duration, reason, episode) in contacts() {
        let spec = EncounterSpec {
            id: id.to_string(),
            patient,
            class,
            kind,
            provider,
            staff: who.and_then(staff),
            day,
            minute,
            duration,
            reason: Some(reason),
            episode,
        };
        sink.encounters.push(hold(custodian, encounter_resource(&spec)));
    }

    for (id, custodian, patient, code, category, status, onset, encounter, recorder) in [
        (
            "cond-joe-gp-depression",
            wk::ORG_GP_ASHGROVE,
            wk::JOE_PATIENT_GP,
            DEPRESSION,
            "problem-list-item",
            "active",
            d(2023, 1, 16),
            None,
            wk::JOE_GP,
        ),
        (
            "cond-joe-gp-alcohol",
            wk::ORG_GP_ASHGROVE,
            wk::JOE_PATIENT_GP,
            ALCOHOL,
            "problem-list-item",
            "active",
            d(2023, 6, 1),
            None,
            wk::JOE_GP,
        ),
        (
            wk::JOE_CONDITION_DEPRESSION,
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            DEPRESSION,
            "problem-list-item",
            "active",
            d(2023, 1, 16),
            None,
            "prac-vale-mh-trust-03",
        ),
        (
            "cond-joe-mh-alcohol",
            wk::ORG_MH_TRUST,
            wk::JOE_PATIENT_MH_TRUST,
            ALCOHOL,
            "problem-list-item",
            "active",
            d(2023, 6, 1),
            None,
            "prac-vale-mh-trust-03",
        ),
        (
            "cond-joe-hospital-suicide-attempt",
            wk::ORG_HOSPITAL,
            wk::JOE_PATIENT_HOSPITAL,
            SUICIDE_ATTEMPT,
            "encounter-diagnosis",
            "resolved",
            d(2024, 8, 19),
            Some(wk::JOE_ED_ATTENDANCE),
            "prac-minsterford-hospital-02",
        ),
    ] {
        let recorded = match encounter {
            Some(_) => d(2024, 8, 20),
            None if custodian == wk::ORG_MH_TRUST => d(2024, 8, 20),
            None => onset,
        };
        let spec = ConditionSpec {
            id: id.to_string(),
            patient,
            code,
            category,
            clinical_status: status,
            onset,
            recorded,
            encounter,
            recorder: staff(recorder),
        };
        sink.conditions.push(hold(custodian, condition_resource(&spec)));
    }

    sink.care_plans.push(hold(wk::ORG_MH_TRUST, care_plan()));

    sink.flags.push(hold(
        wk::ORG_MH_TRUST,
        json!({
            "resourceType": "Flag",
            "id": wk::JOE_FLAG,
            "status": "active",
            "category": [concept("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety")],
            "code": {
                "coding": [{ "system": wk::FLAG_CODE_SYSTEM, "code": "risk-to-self", "display": "Risk to self" }],
                "text": "Risk to self: previous overdose; risk rises every August. Follow the shared crisis plan.",
            },
            "subject": reference("Patient", wk::JOE_PATIENT_MH_TRUST),
            "period": { "start": "2024-08-20" },
            "author": reference_display("Practitioner", wk::JOE_CARE_COORDINATOR, "Ms Ruth Oyelaran"),
        }),
    ));
    sink.flags.push(hold(
        wk::ORG_POLICE,
        json!({
            "resourceType": "Flag",
            "id": wk::JOE_POLICE_ADDRESS_FLAG,
            "status": "active",
            "category": [concept("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety")],
            "code": {
                "coding": [{ "system": wk::FLAG_CODE_SYSTEM, "code": "address-flag", "display": "Address flag" }],
                "text": "Address flag: vulnerable adult. Contact the Vale crisis team (01632 960141) before attending.",
            },
            "subject": reference("Patient", wk::JOE_PATIENT_POLICE),
            "period": { "start": "2026-06-18" },
            "author": reference_display("Practitioner", wk::POLICE_LIAISON_OFFICER, "PC Martin Holgate"),
        }),
    ));
}
