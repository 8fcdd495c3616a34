//! Rendering an audit record as a FHIR R4 `AuditEvent` shaped by the IHE Basic Audit Log
//! Patterns (BALP): RESTful interactions as `rest` events with the restful-interaction subtype,
//! the user agent as the requestor with its purpose of use, the person and the resource as
//! entities, access decisions as AuthZ-Consent security alerts, and break-glass as a DICOM
//! Security Alert (110113) with the Emergency Override Started (110127) subtype.

use serde_json::{json, Map, Value};

use crate::record::{AuditAction, AuditEntry, AuditRecord};

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const AUTHZ_SUBTYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const BALP_PROFILE: &str = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit";
const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const USER_ID_SYSTEM: &str = "urn:carecircle:user";

/// The name carecircle gives itself as the observer and destination of every event.
pub const SERVER_NAME: &str = "carecircle";

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// `Type/id` for a bare id, or the value itself when it is already a reference.
fn reference(resource_type: &str, id: &str) -> String {
    if id.contains('/') {
        id.to_string()
    } else {
        format!("{resource_type}/{id}")
    }
}

/// Milliseconds since the epoch as a FHIR instant (UTC, millisecond precision).
fn instant(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        // Only times beyond year 9999 fail; they cannot come from a real clock.
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

/// The BALP profile, event type, subtypes and FHIR action code of an action.
fn classify(record: &AuditRecord) -> (&'static str, Value, Vec<Value>, &'static str) {
    let rest = coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation");
    let interaction = |code: &str| coding(RESTFUL_INTERACTION, code, code);
    let has_patient = record.patient_id.is_some();
    let pick = |with_patient: &'static str, without: &'static str| if has_patient { with_patient } else { without };
    match record.action {
        AuditAction::Read => (pick("PatientRead", "Read"), rest, vec![interaction("read")], "R"),
        AuditAction::Vread => (pick("PatientRead", "Read"), rest, vec![interaction("vread")], "R"),
        AuditAction::History => (pick("PatientRead", "Read"), rest, vec![interaction("history-instance")], "R"),
        AuditAction::Search => {
            let subtype = if record.entity.is_some() { "search-type" } else { "search-system" };
            (pick("PatientQuery", "Query"), rest, vec![interaction(subtype)], "E")
        }
        AuditAction::Create => (pick("PatientCreate", "Create"), rest, vec![interaction("create")], "C"),
        AuditAction::Update => (pick("PatientUpdate", "Update"), rest, vec![interaction("update")], "U"),
        AuditAction::Patch => (pick("PatientUpdate", "Update"), rest, vec![interaction("patch")], "U"),
        AuditAction::Delete => (pick("PatientDelete", "Delete"), rest, vec![interaction("delete")], "D"),
        AuditAction::Decision => (
            "AuthZconsent",
            coding(DICOM, "110113", "Security Alert"),
            vec![coding(AUTHZ_SUBTYPE, "AuthZ-Consent", "Authorization Decision using Roles and Consent")],
            "E",
        ),
        AuditAction::BreakGlass => (
            "",
            coding(DICOM, "110113", "Security Alert"),
            vec![coding(DICOM, "110127", "Emergency Override Started")],
            "E",
        ),
        AuditAction::Export => ("", coding(DICOM, "110106", "Export"), vec![], "R"),
        AuditAction::Login => {
            ("", coding(DICOM, "110114", "User Authentication"), vec![coding(DICOM, "110122", "Login")], "E")
        }
        AuditAction::Logout => {
            ("", coding(DICOM, "110114", "User Authentication"), vec![coding(DICOM, "110123", "Logout")], "E")
        }
    }
}

fn purpose_concepts(record: &AuditRecord) -> Vec<Value> {
    let mut purposes = Vec::new();
    if let Some(purpose) = &record.purpose_of_use {
        purposes.push(json!({"coding": [{"system": ACT_REASON, "code": purpose}]}));
    }
    if record.break_glass && record.purpose_of_use.as_deref() != Some("BTG") {
        purposes.push(json!({"coding": [coding(ACT_REASON, "BTG", "break the glass")]}));
    }
    purposes
}

impl AuditRecord {
    /// This record as a FHIR R4 `AuditEvent` (no `id`; see [`AuditEntry::to_audit_event`]).
    pub fn to_audit_event(&self) -> Value {
        let (profile, event_type, subtypes, action) = classify(self);
        let mut event = Map::new();
        event.insert("resourceType".into(), json!("AuditEvent"));
        if !profile.is_empty() {
            event.insert("meta".into(), json!({"profile": [format!("{BALP_PROFILE}.{profile}")]}));
        }
        event.insert("type".into(), event_type);
        if !subtypes.is_empty() {
            event.insert("subtype".into(), Value::Array(subtypes));
        }
        event.insert("action".into(), json!(action));
        event.insert("recorded".into(), json!(instant(self.recorded_ms)));
        event.insert("outcome".into(), json!(self.outcome.code().to_string()));
        let outcome_desc = match (&self.decision, &self.break_glass_reason) {
            (Some(d), _) => Some(format!(
                "{} by {}{}",
                if d.permit { "permit" } else { "deny" },
                d.policy_id,
                if d.clause_ids.is_empty() { String::new() } else { format!(" ({})", d.clause_ids.join(", ")) }
            )),
            (None, Some(reason)) if self.break_glass => Some(format!("break-glass: {reason}")),
            _ => None,
        };
        if let Some(desc) = outcome_desc {
            event.insert("outcomeDesc".into(), json!(desc));
        }
        let purposes = purpose_concepts(self);
        if !purposes.is_empty() {
            event.insert("purposeOfEvent".into(), Value::Array(purposes.clone()));
        }
        event.insert("agent".into(), Value::Array(self.agents(purposes)));
        event.insert(
            "source".into(),
            json!({
                "site": SERVER_NAME,
                "observer": {"display": SERVER_NAME},
                "type": [coding(SECURITY_SOURCE_TYPE, "4", "Application Server")],
            }),
        );
        let entities = self.entities();
        if !entities.is_empty() {
            event.insert("entity".into(), Value::Array(entities));
        }
        Value::Object(event)
    }

    fn agents(&self, purposes: Vec<Value>) -> Vec<Value> {
        let mut user = Map::new();
        user.insert("type".into(), json!({"coding": [coding(PARTICIPATION_TYPE, "IRCP", "information recipient")]}));
        if let Some(role) = &self.agent.role {
            user.insert("role".into(), json!([{"text": role}]));
        }
        user.insert(
            "who".into(),
            json!({
                "identifier": {"system": USER_ID_SYSTEM, "value": self.agent.user_id},
                "type": self.agent.kind.resource_type(),
            }),
        );
        user.insert("requestor".into(), json!(true));
        if !purposes.is_empty() {
            user.insert("purposeOfUse".into(), Value::Array(purposes));
        }
        let mut agents = vec![Value::Object(user)];
        if let Some(org) = &self.agent.organisation {
            agents.push(json!({
                "type": {"coding": [coding(ROLE_CLASS, "PROV", "healthcare provider")]},
                "who": {"reference": reference("Organization", org)},
                "requestor": false,
            }));
        }
        let mut client = json!({
            "type": {"coding": [coding(DICOM, "110153", "Source Role ID")]},
            "who": {"display": "client"},
            "requestor": false,
        });
        if let Some(address) = &self.client_address {
            // R4 network type "2" is an IP address.
            client["network"] = json!({"address": address, "type": "2"});
            client["who"] = json!({"display": address});
        }
        agents.push(client);
        agents.push(json!({
            "type": {"coding": [coding(DICOM, "110152", "Destination Role ID")]},
            "who": {"display": SERVER_NAME},
            "requestor": false,
        }));
        agents
    }

    fn entities(&self) -> Vec<Value> {
        let mut entities = Vec::new();
        if let Some(patient) = &self.patient_id {
            entities.push(json!({
                "what": {"reference": reference("Patient", patient)},
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            }));
        }
        if let Some(entity) = &self.entity {
            if self.action != AuditAction::Search {
                let mut what = format!("{}/{}", entity.resource_type, entity.id);
                if let Some(version) = entity.version {
                    what = format!("{what}/_history/{version}");
                }
                let is_consent = self.action == AuditAction::Decision && entity.resource_type == "Consent";
                let entity_type = if is_consent {
                    coding("http://hl7.org/fhir/resource-types", "Consent", "Consent")
                } else {
                    coding(ENTITY_TYPE, "2", "System Object")
                };
                entities.push(json!({
                    "what": {"reference": what},
                    "type": entity_type,
                    "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
                }));
            }
        }
        if let Some(query) = &self.query {
            use base64::Engine as _;
            let mut entity = json!({
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "24", "Query"),
                "query": base64::engine::general_purpose::STANDARD.encode(query.as_bytes()),
                "description": query,
            });
            if let Some(target) = &self.entity {
                entity["name"] = json!(target.resource_type);
            }
            entities.push(entity);
        }
        if let Some(decision) = &self.decision {
            let mut detail = vec![json!({"type": "policy", "valueString": decision.policy_id})];
            detail.extend(decision.clause_ids.iter().map(|c| json!({"type": "clause", "valueString": c})));
            if let Some(consent) = entities.iter_mut().find(|e| e["type"]["code"] == "Consent") {
                consent["detail"] = Value::Array(detail);
            } else {
                entities.push(json!({
                    "what": {"identifier": {"value": decision.policy_id}},
                    "type": coding("http://hl7.org/fhir/resource-types", "Consent", "Consent"),
                    "detail": detail,
                }));
            }
        }
        if let Some(request_id) = &self.request_id {
            entities.push(json!({
                "what": {"identifier": {"value": request_id}},
                "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id"),
            }));
        }
        entities
    }
}

impl AuditEntry {
    /// The entry as a FHIR `AuditEvent` whose `id` is its sequence number.
    pub fn to_audit_event(&self) -> Value {
        let mut event = self.record.to_audit_event();
        if let Value::Object(map) = &mut event {
            // Keep `resourceType` first, then `id`, as FHIR JSON is conventionally written.
            let mut ordered = Map::new();
            ordered.insert("resourceType".into(), json!("AuditEvent"));
            ordered.insert("id".into(), json!(self.seq.to_string()));
            for (k, v) in std::mem::take(map) {
                if k != "resourceType" {
                    ordered.insert(k, v);
                }
            }
            *map = ordered;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_utc_with_milliseconds() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn references_keep_full_references() {
        assert_eq!(reference("Organization", "gp-1"), "Organization/gp-1");
        assert_eq!(reference("Organization", "Organization/gp-1"), "Organization/gp-1");
    }
}
