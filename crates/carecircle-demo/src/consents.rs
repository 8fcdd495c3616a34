//! People's consent choices under the partnership's opt-out scheme (FHIR `Consent`, carecircle's
//! consent profile), the scanned forms that evidence consents staff recorded on someone's
//! behalf (`DocumentReference`), and national data opt-outs (a Patient extension).
//!
//! The server finds the consents that govern a record by its subject
//! (`Consent?patient=Patient/{id}`), so a person's choice is written as one `Consent` on each of
//! their partner records — as the partnership's master person index would propagate it — held by
//! that record's custodian, with the same date, provisions, recorder and evidence.

use std::collections::BTreeMap;

use carecircle_access::codes::SensitivityLabel::{MentalHealth as PSY, SubstanceUse as ETH};
use carecircle_access::demo_support::{ConsentSpec, ProvisionSpec};
use carecircle_access::{Purpose, Sector};
use rand::Rng;
use serde_json::json;

use crate::clinical::hold;
use crate::dates::REFERENCE_DATE;
use crate::fhir::{reference, reference_display};
use crate::names::pick;
use crate::orgs::{self, StaffDef};
use crate::people::Person;
use crate::vignettes::{Story, VIGNETTES};
use crate::well_known as wk;
use crate::DemoResource;

/// What one person chose.
#[derive(Clone, Debug, PartialEq)]
enum Choice {
    /// No sharing with other partners at all; `refuse_emergency` also refuses break-glass.
    OptOut { refuse_emergency: bool },
    /// No sharing with any partner of these sectors.
    NoSector(Sector),
    /// No sharing with this organisation.
    NoOrganisation(&'static str),
    /// Share as usual, and mental-health (PSY) records with this GP practice only.
    PsyToGp(&'static str),
    /// Share as usual, and mental-health records with every health partner.
    PsyToHealth,
    /// Share as usual, and mental-health and substance-use records with these organisations
    /// (Joe's care team).
    SensitiveTo(Vec<&'static str>),
    /// An objection to all sharing, since withdrawn (the scheme's default applies again).
    WithdrawnOptOut,
}

impl Choice {
    fn provision(&self) -> ProvisionSpec {
        let share_as_usual = || ProvisionSpec::deny().except(ProvisionSpec::permit());
        match self {
            Choice::OptOut { refuse_emergency: false } | Choice::WithdrawnOptOut => ProvisionSpec::deny(),
            Choice::OptOut { refuse_emergency: true } => ProvisionSpec::deny().purposes(&Purpose::ALL),
            Choice::NoSector(sector) => ProvisionSpec::deny().sectors(&[*sector]),
            Choice::NoOrganisation(org) => ProvisionSpec::deny().organisations(&[org]),
            Choice::PsyToGp(gp) => share_as_usual().except(ProvisionSpec::permit().labels(&[PSY]).organisations(&[gp])),
            Choice::PsyToHealth => share_as_usual().except(ProvisionSpec::permit().labels(&[PSY]).sectors(&[
                Sector::PrimaryCare,
                Sector::Acute,
                Sector::Ambulance,
                Sector::MentalHealth,
            ])),
            Choice::SensitiveTo(orgs) => {
                share_as_usual().except(ProvisionSpec::permit().labels(&[PSY, ETH]).organisations(orgs))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Choice::OptOut { refuse_emergency: false } => "Objects to sharing their record with other partners".into(),
            Choice::OptOut { refuse_emergency: true } => {
                "Objects to sharing their record with other partners, even in an emergency".into()
            }
            Choice::NoSector(s) => format!("Objects to sharing with {s} partners"),
            Choice::NoOrganisation(o) => {
                format!("Objects to sharing with {}", orgs::org(o).map_or(*o, |o| o.name))
            }
            Choice::PsyToGp(gp) => {
                format!("Mental-health records may be shared with {} only", orgs::org(gp).map_or(*gp, |o| o.name))
            }
            Choice::PsyToHealth => "Mental-health records may be shared with health partners".into(),
            Choice::SensitiveTo(_) => {
                "Mental-health and substance-use records may be shared with the health partners in the care team".into()
            }
            Choice::WithdrawnOptOut => "Withdraws an earlier objection to sharing".into(),
        }
    }
}

/// Who recorded a choice, and where.
struct Recording {
    /// The partner where the person made the choice.
    org: &'static str,
    /// When.
    date_time: String,
    /// The member of staff who recorded it on the person's behalf, if not the person (portal).
    staff: Option<&'static StaffDef>,
}

/// Everything the consents module adds to the partnership.
#[derive(Default)]
pub struct ConsentOutput {
    /// Scanned consent forms (`DocumentReference`), evidence of staff-recorded consents.
    pub forms: Vec<DemoResource>,
    /// One `Consent` per person per partner record.
    pub consents: Vec<DemoResource>,
}

fn patient_id(r: &DemoResource) -> &str {
    r.resource["id"].as_str().unwrap_or_default()
}

fn has_nhs_number(r: &DemoResource) -> bool {
    r.resource["identifier"].as_array().is_some_and(|ids| ids.iter().any(|i| i["system"] == wk::NHS_NUMBER_SYSTEM))
}

fn form(id: &str, patient: &DemoResource, rec: &Recording, staff: &StaffDef, choice: &Choice) -> DemoResource {
    let org_name = orgs::org(rec.org).map_or("", |o| o.name);
    hold(
        rec.org,
        json!({
            "resourceType": "DocumentReference",
            "id": id,
            "status": "current",
            "type": {
                "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }],
                "text": "Shared care record sharing preferences form",
            },
            "subject": reference("Patient", patient_id(patient)),
            "date": rec.date_time,
            "author": [reference_display("Practitioner", staff.id, &staff.display())],
            "custodian": reference_display("Organization", rec.org, org_name),
            "description": format!("Signed sharing preferences form (scanned). {}.", choice.describe()),
            "content": [{
                "attachment": {
                    "contentType": "application/pdf",
                    "url": format!("https://carecircle.example.org/documents/{id}.pdf"),
                    "title": "Sharing preferences form (signed, scanned)",
                    "creation": rec.date_time,
                },
            }],
        }),
    )
}

/// Write `choice` onto each of the person's `records`.
fn record_choice(out: &mut ConsentOutput, records: &[&DemoResource], choice: &Choice, rec: &Recording) {
    let evidence = rec.staff.map(|staff| {
        let at = records.iter().find(|r| r.custodian_org_id == rec.org).or(records.first());
        let id = format!("consent-form-{}", at.map_or("", |r| patient_id(r).trim_start_matches("pat-")));
        if let Some(at) = at {
            out.forms.push(form(&id, at, rec, staff, choice));
        }
        (staff, id)
    });
    for r in records {
        let pid = patient_id(r);
        let id = format!("consent-{}", pid.trim_start_matches("pat-"));
        let mut spec = ConsentSpec::new(&id, pid, &r.custodian_org_id, &rec.date_time, choice.provision());
        if choice == &Choice::WithdrawnOptOut {
            spec = spec.status("inactive", "2");
        }
        if let Some((staff, form_id)) = &evidence {
            spec = spec.recorded_by_staff(&format!("Practitioner/{}", staff.id), form_id);
        }
        let mut consent = spec.to_resource();
        // The profile's meta.versionId is assigned by the server when the consent is stored.
        if let Some(fields) = consent.as_object_mut() {
            fields.retain(|name, _| name != "meta");
        }
        out.consents.push(hold(&r.custodian_org_id, consent));
    }
}

/// The national data opt-out extension, set on a Patient.
fn set_national_opt_out(patient: &mut DemoResource) {
    patient.resource["extension"] = json!([{ "url": wk::NATIONAL_OPT_OUT_EXTENSION_URL, "valueBoolean": true }]);
}

/// Organisations some people object to by name.
const OBJECTED_TO: [&str; 3] = [wk::ORG_HOUSING, wk::ORG_SOCIAL_CARE, wk::ORG_BEFRIENDERS];

fn random_choice<R: Rng>(rng: &mut R, p: &Person, orgs_held: &[&str]) -> Option<Choice> {
    let roll = rng.random_range(0..1000u32);
    let mh_record = orgs_held.contains(&wk::ORG_MH_TRUST);
    Some(match roll {
        0..3 => Choice::OptOut { refuse_emergency: true },
        3..18 => Choice::OptOut { refuse_emergency: false },
        18..48 => Choice::NoSector(Sector::Police),
        48..53 => Choice::NoSector(Sector::Housing),
        53..63 => Choice::NoOrganisation(OBJECTED_TO[rng.random_range(0..OBJECTED_TO.len())]),
        63..68 => Choice::WithdrawnOptOut,
        68..200 if mh_record && p.mental_health => match (p.gp, roll % 3) {
            (Some(gp), 0 | 1) => Choice::PsyToGp(gp),
            _ => Choice::PsyToHealth,
        },
        _ => return None,
    })
}

/// A date-time within the three years before the reference date, in working hours.
fn recent<R: Rng>(rng: &mut R) -> String {
    REFERENCE_DATE.add_days(-rng.random_range(14..1095)).at(rng.random_range(9 * 60..17 * 60))
}

/// Consents for the random population (drawn from `rng`), the fixed people and Joe; national
/// data opt-outs are set on `patients`, whose `truth` (same order) says whose they are.
pub fn generate<R: Rng>(
    rng: &mut R,
    population: &[Person],
    patients: &mut [DemoResource],
    truth: &[(String, u32)],
) -> ConsentOutput {
    let mut by_person: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, person)) in truth.iter().enumerate() {
        by_person.entry(*person).or_default().push(i);
    }
    let mut out = ConsentOutput::default();

    // Joe, at the multi-agency meeting that agreed his crisis plan.
    if let Some(indices) = by_person.get(&wk::JOE_PERSON) {
        let records: Vec<&DemoResource> = indices.iter().map(|i| &patients[*i]).collect();
        let choice =
            Choice::SensitiveTo(vec![wk::ORG_GP_ASHGROVE, wk::ORG_MH_TRUST, wk::ORG_HOSPITAL, wk::ORG_AMBULANCE]);
        let rec = Recording {
            org: wk::ORG_MH_TRUST,
            date_time: "2026-06-18T15:30:00Z".into(),
            staff: orgs::staff(wk::JOE_CARE_COORDINATOR),
        };
        record_choice(&mut out, &records, &choice, &rec);
    }

    for v in &VIGNETTES {
        let Some(indices) = by_person.get(&v.number) else { continue };
        let (choice, rec) = match v.story {
            Story::OptedOut => (
                Choice::OptOut { refuse_emergency: false },
                Recording { org: wk::ORG_GP_RIVERSIDE, date_time: "2025-11-03T19:42:00Z".into(), staff: None },
            ),
            Story::PsyToGpOnly => (
                Choice::PsyToGp(wk::ORG_GP_MILLFIELD),
                Recording {
                    org: wk::ORG_MH_TRUST,
                    date_time: "2026-02-11T11:15:00Z".into(),
                    staff: orgs::staff("prac-vale-mh-trust-02"),
                },
            ),
            Story::NoPolice => (
                Choice::NoSector(Sector::Police),
                Recording { org: wk::ORG_GP_ASHGROVE, date_time: "2026-03-27T09:05:00Z".into(), staff: None },
            ),
            Story::NationalOptOut => {
                for i in indices {
                    if has_nhs_number(&patients[*i]) {
                        set_national_opt_out(&mut patients[*i]);
                    }
                }
                continue;
            }
        };
        let records: Vec<&DemoResource> = indices.iter().map(|i| &patients[*i]).collect();
        record_choice(&mut out, &records, &choice, &rec);
    }

    for p in population {
        let Some(indices) = by_person.get(&p.number) else { continue };
        if rng.random_bool(0.03) {
            for i in indices {
                if has_nhs_number(&patients[*i]) {
                    set_national_opt_out(&mut patients[*i]);
                }
            }
        }
        let held: Vec<&str> = indices.iter().map(|i| patients[*i].custodian_org_id.as_str()).collect();
        let Some(choice) = random_choice(rng, p, &held) else { continue };
        let org = match (&choice, p.gp) {
            (Choice::PsyToGp(_) | Choice::PsyToHealth, _) => wk::ORG_MH_TRUST,
            (_, Some(gp)) => gp,
            _ => orgs::org(held.first().copied().unwrap_or_default()).map_or(wk::ORG_HOSPITAL, |o| o.id),
        };
        let staff = if rng.random_bool(0.35) {
            let team: Vec<&'static StaffDef> = orgs::staff_of(org).collect();
            (!team.is_empty()).then(|| *pick(rng, &team))
        } else {
            None
        };
        let rec = Recording { org, date_time: recent(rng), staff };
        let records: Vec<&DemoResource> = indices.iter().map(|i| &patients[*i]).collect();
        record_choice(&mut out, &records, &choice, &rec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecircle_access::ConsentRecord;

    #[test]
    fn every_choice_writes_a_consent_the_profile_accepts() {
        let choices = [
            Choice::OptOut { refuse_emergency: false },
            Choice::OptOut { refuse_emergency: true },
            Choice::NoSector(Sector::Police),
            Choice::NoOrganisation(wk::ORG_HOUSING),
            Choice::PsyToGp(wk::ORG_GP_ASHGROVE),
            Choice::PsyToHealth,
            Choice::SensitiveTo(vec![wk::ORG_GP_ASHGROVE]),
            Choice::WithdrawnOptOut,
        ];
        let patient = hold(wk::ORG_GP_ASHGROVE, json!({ "resourceType": "Patient", "id": "pat-gp-ashgrove-x" }));
        for (i, choice) in choices.iter().enumerate() {
            let mut out = ConsentOutput::default();
            let staff = (i % 2 == 0).then(|| orgs::staff(wk::JOE_GP)).flatten();
            let rec = Recording { org: wk::ORG_GP_ASHGROVE, date_time: "2026-01-01T10:00:00Z".into(), staff };
            record_choice(&mut out, &[&patient], choice, &rec);
            assert_eq!(out.consents.len(), 1);
            assert_eq!(out.forms.len(), usize::from(staff.is_some()));
            let parsed =
                ConsentRecord::from_resource(&out.consents[0].resource).unwrap_or_else(|e| panic!("{choice:?}: {e}"));
            assert_eq!(parsed.recorded_by.is_some(), staff.is_some());
            assert_eq!(parsed.evidence.is_some(), staff.is_some());
        }
    }
}
