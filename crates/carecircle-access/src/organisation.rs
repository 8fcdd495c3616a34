//! Partner organisations as the engine sees them: id, name, sector, and the partner a team
//! belongs to, read from FHIR `Organization` resources.

use serde_json::Value;

use crate::codes::{Sector, SECTOR_SYSTEM};
use crate::profile::{check_resource_type, finish, resource_label, At, Problem, ProfileError};

/// An organisation: a partner (custodian of records) or a team inside one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    /// `Organization.id`.
    pub id: String,
    /// `Organization.name`.
    pub name: String,
    /// The sector, from the `Organization.type` coding in [`SECTOR_SYSTEM`].
    pub sector: Sector,
    /// The partner this team belongs to (`Organization.partOf`), for teams.
    pub part_of: Option<String>,
}

impl Organisation {
    /// Read a partner or team from an `Organization`. The sector is required and lives in
    /// `Organization.type` as a coding in [`SECTOR_SYSTEM`]; `partOf` names the partner a
    /// team belongs to.
    pub fn from_resource(resource: &Value) -> Result<Organisation, ProfileError> {
        check_resource_type(resource, "Organization")?;
        let root = At::root(resource, "Organization");
        let mut problems = Vec::new();
        let id = root.required_string("id", &mut problems);
        let name = root.string("name", &mut problems).unwrap_or_default();
        let mut sector = None;
        let mut sector_path = root.child_path("type");
        for t in root.items("type") {
            for (coding, system, code) in t.codings() {
                if system != Some(SECTOR_SYSTEM) {
                    continue;
                }
                match code.and_then(Sector::from_code) {
                    Some(s) => sector = Some(s),
                    None => problems.push(Problem::new(
                        coding.child_path("code"),
                        format!("'{}' is not a partner sector", code.unwrap_or("")),
                    )),
                }
                sector_path = coding.path.clone();
            }
        }
        if sector.is_none() && !problems.iter().any(|p| p.expression.starts_with(&sector_path)) {
            problems
                .push(Problem::new(sector_path, format!("a coding in {SECTOR_SYSTEM} saying the sector is required")));
        }
        let part_of = root.field("partOf").and_then(|p| match p.reference(&mut problems) {
            Some(("Organization", id)) => Some(id.to_string()),
            Some((other, _)) => {
                problems.push(Problem::new(
                    p.child_path("reference"),
                    format!("must reference an Organization, not {other}"),
                ));
                None
            }
            None => None,
        });
        let value = match (id, sector) {
            (Some(id), Some(sector)) => {
                Some(Organisation { id: id.to_string(), name: name.to_string(), sector, part_of })
            }
            _ => None,
        };
        finish(resource_label(resource, "Organization"), problems, value)
    }

    /// The partner that is custodian of this organisation's records (itself, or its parent).
    pub fn partner_id(&self) -> &str {
        self.part_of.as_deref().unwrap_or(&self.id)
    }
}
