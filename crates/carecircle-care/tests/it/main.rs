//! Integration tests of the care-coordination engine, on Joe's demo partnership and on
//! hand-made resources.

mod alerts;
mod care_plan;
mod care_team;
mod flags;
mod referrals;
mod subscriptions;
mod support;
mod triggers;
