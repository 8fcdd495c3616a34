//! Shared fixtures: Joe's demo resources, the partnership's organisation directory, dates.

use carecircle_care::{OrgDirectory, OrgId};
use carecircle_demo::{generate, well_known as wk, DemoConfig};
use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Every demo resource with only Joe as a person, with `meta.source` set to its custodian as
/// the server would.
pub fn demo() -> Vec<Value> {
    generate(&DemoConfig { seed: 2017, n_people: 1 })
        .into_iter()
        .map(|r| {
            let mut resource = r.resource;
            resource["meta"] = serde_json::json!({ "source": format!("Organization/{}", r.custodian_org_id) });
            resource
        })
        .collect()
}

/// The demo resource with this type and id.
pub fn demo_resource(resource_type: &str, id: &str) -> Value {
    demo()
        .into_iter()
        .find(|r| r["resourceType"] == resource_type && r["id"] == id)
        .unwrap_or_else(|| panic!("demo has no {resource_type}/{id}"))
}

/// Joe's shared crisis plan.
pub fn joe_plan() -> Value {
    demo_resource("CarePlan", wk::JOE_CARE_PLAN)
}

/// The demo partnership's organisations.
pub fn directory() -> OrgDirectory {
    OrgDirectory::from_organizations(&demo())
}

/// An organisation id.
pub fn org(id: &str) -> OrgId {
    OrgId::new(id)
}

/// A calendar date.
pub fn date(y: i32, m: u8, d: u8) -> Date {
    Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap()
}

/// A UTC instant.
pub fn at(y: i32, m: u8, d: u8, hour: u8, minute: u8) -> OffsetDateTime {
    PrimitiveDateTime::new(date(y, m, d), Time::from_hms(hour, minute, 0).unwrap()).assume_utc()
}
