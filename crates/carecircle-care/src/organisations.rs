//! The partnership's organisations as the rules need them: which partner a team belongs to
//! (`Organization.partOf`) and which sector each is in (`Organization.type`).
//!
//! An *agency* in the care-coordination rules is a partner organisation: its teams act for it.
//! A user of the crisis team may therefore edit the mental-health trust's parts of a plan, and
//! a referral owned by the trust may be accepted by its crisis team. Without a directory entry an
//! organisation is its own partner, so the rules fall back to exact id equality.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::codes;
use crate::model::{concept_codes, str_at, OrgId};

/// What the engine knows about one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationInfo {
    /// The organisation it is part of (`Organization.partOf`), for teams.
    pub part_of: Option<OrgId>,
    /// Its sector code in [`codes::SECTOR_SYSTEM`] (`acute`, `mental-health`, `police`...).
    pub sector: Option<String>,
    /// Its name, for notifications.
    pub name: Option<String>,
}

/// The organisations of the partnership, keyed by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgDirectory {
    organisations: BTreeMap<OrgId, OrganisationInfo>,
}

impl OrgDirectory {
    /// An empty directory: every organisation is its own partner and has no known sector.
    pub fn new() -> OrgDirectory {
        OrgDirectory::default()
    }

    /// A directory built from FHIR `Organization` resources (other resources are skipped).
    pub fn from_organizations<'a>(resources: impl IntoIterator<Item = &'a Value>) -> OrgDirectory {
        let mut directory = OrgDirectory::new();
        for resource in resources {
            if str_at(resource, "resourceType") != Some("Organization") {
                continue;
            }
            let Some(id) = str_at(resource, "id") else { continue };
            let sector = resource
                .get("type")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(concept_codes)
                .find(|c| c.system == codes::SECTOR_SYSTEM)
                .map(|c| c.code);
            let info = OrganisationInfo {
                part_of: resource.get("partOf").and_then(OrgId::from_reference_element),
                sector,
                name: str_at(resource, "name").map(str::to_string),
            };
            directory.insert(OrgId::new(id), info);
        }
        directory
    }

    /// Adds or replaces one organisation.
    pub fn insert(&mut self, id: OrgId, info: OrganisationInfo) {
        self.organisations.insert(id, info);
    }

    /// What is known about `org`.
    pub fn get(&self, org: &OrgId) -> Option<&OrganisationInfo> {
        self.organisations.get(org)
    }

    /// The partner `org` belongs to: the top of its `partOf` chain (itself when it is a partner
    /// or unknown). Cycles in `partOf` stop at the first repeat.
    pub fn partner_of(&self, org: &OrgId) -> OrgId {
        let mut current = org.clone();
        let mut seen = vec![current.clone()];
        while let Some(parent) = self.organisations.get(&current).and_then(|i| i.part_of.clone()) {
            if seen.contains(&parent) {
                break;
            }
            seen.push(parent.clone());
            current = parent;
        }
        current
    }

    /// True when `a` and `b` are the same agency (the same partner organisation).
    pub fn same_agency(&self, a: &OrgId, b: &OrgId) -> bool {
        a == b || self.partner_of(a) == self.partner_of(b)
    }

    /// The sector of `org`, or of the nearest organisation above it that has one.
    pub fn sector_of(&self, org: &OrgId) -> Option<&str> {
        let mut current = org.clone();
        for _ in 0..16 {
            let info = self.organisations.get(&current)?;
            if let Some(sector) = &info.sector {
                return Some(sector);
            }
            current = info.part_of.clone()?;
        }
        None
    }

    /// The name of `org`, or its id when unknown.
    pub fn display_name(&self, org: &OrgId) -> String {
        self.organisations.get(org).and_then(|i| i.name.clone()).unwrap_or_else(|| org.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn directory() -> OrgDirectory {
        OrgDirectory::from_organizations(&[
            json!({ "resourceType": "Organization", "id": "trust", "name": "Vale MH Trust",
                    "type": [{ "coding": [{ "system": codes::SECTOR_SYSTEM, "code": "mental-health" }] }] }),
            json!({ "resourceType": "Organization", "id": "crisis", "partOf": { "reference": "Organization/trust" } }),
            json!({ "resourceType": "Organization", "id": "police",
                    "type": [{ "coding": [{ "system": codes::SECTOR_SYSTEM, "code": "police" }] }] }),
            json!({ "resourceType": "Patient", "id": "ignored" }),
        ])
    }

    #[test]
    fn teams_act_for_their_partner() {
        let d = directory();
        assert_eq!(d.partner_of(&OrgId::new("crisis")), OrgId::new("trust"));
        assert!(d.same_agency(&OrgId::new("crisis"), &OrgId::new("trust")));
        assert!(!d.same_agency(&OrgId::new("crisis"), &OrgId::new("police")));
        assert!(d.same_agency(&OrgId::new("unknown"), &OrgId::new("unknown")));
        assert!(!d.same_agency(&OrgId::new("unknown"), &OrgId::new("other")));
    }

    #[test]
    fn sectors_are_inherited_from_the_partner() {
        let d = directory();
        assert_eq!(d.sector_of(&OrgId::new("crisis")), Some("mental-health"));
        assert_eq!(d.sector_of(&OrgId::new("police")), Some("police"));
        assert_eq!(d.sector_of(&OrgId::new("unknown")), None);
        assert_eq!(d.display_name(&OrgId::new("trust")), "Vale MH Trust");
    }

    #[test]
    fn part_of_cycles_terminate() {
        let d = OrgDirectory::from_organizations(&[
            json!({ "resourceType": "Organization", "id": "a", "partOf": { "reference": "Organization/b" } }),
            json!({ "resourceType": "Organization", "id": "b", "partOf": { "reference": "Organization/a" } }),
        ]);
        let partner = d.partner_of(&OrgId::new("a"));
        assert_eq!(partner, OrgId::new("b"));
        assert_eq!(d.sector_of(&OrgId::new("a")), None);
    }
}
