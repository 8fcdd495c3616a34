//! SMART on FHIR v2 scopes (`patient/Observation.rs`, `user/*.cruds`, `system/Patient.c`), with the
//! v1 forms (`.read`, `.write`, `.*`) mapped onto them. Scopes narrow what a token may do; they
//! never widen what the access decision allows.

use std::fmt;

/// Whose data a scope is about: the launch patient, anything the user may see, or a backend system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    /// `patient/`: only the patient in context (for a person, themselves).
    Patient,
    /// `user/`: whatever the user is allowed to see.
    User,
    /// `system/`: a backend service acting for its organisation.
    System,
}

/// A RESTful interaction as SMART v2 names it: create, read, update, delete, search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `c`
    Create,
    /// `r` (read, vread, history of an instance)
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `s` (search, type and system history)
    Search,
}

impl Interaction {
    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }

    /// The SMART letter.
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// One resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `patient`, `user` or `system`.
    pub context: ScopeContext,
    /// A resource type, or `None` for `*`.
    pub resource_type: Option<String>,
    interactions: u8,
}

/// Why a scope string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope '{scope}' is not a SMART v2 resource scope: {reason}")]
pub struct ScopeError {
    /// The scope as given.
    pub scope: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Scope {
    /// Parses one resource scope. Scopes with search-parameter restrictions (`?category=…`) are
    /// refused rather than widened to the whole type.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let fail = |reason: &str| ScopeError { scope: text.to_string(), reason: reason.to_string() };
        let (context, rest) =
            text.split_once('/').ok_or_else(|| fail("it has no context ('patient/', 'user/' or 'system/')"))?;
        let context = match context {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return Err(fail("the context must be 'patient', 'user' or 'system'")),
        };
        if rest.contains('?') {
            return Err(fail("scopes restricted by search parameters are not supported"));
        }
        let (resource_type, permissions) = rest.split_once('.').ok_or_else(|| fail("it has no '.permissions'"))?;
        let resource_type = match resource_type {
            "*" => None,
            t if !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphanumeric())
                && t.starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                Some(t.to_string())
            }
            _ => return Err(fail("the resource type must be a FHIR type name or '*'")),
        };
        let interactions = match permissions {
            "read" => Interaction::Read.bit() | Interaction::Search.bit(),
            "write" => Interaction::Create.bit() | Interaction::Update.bit() | Interaction::Delete.bit(),
            "*" => 31,
            letters => {
                // v2: a non-empty subsequence of "cruds", in that order.
                let mut bits = 0u8;
                let mut last = None;
                for c in letters.chars() {
                    let position =
                        "cruds".find(c).ok_or_else(|| fail("permissions must be letters of 'cruds' in that order"))?;
                    if last.is_some_and(|l| l >= position) {
                        return Err(fail("permissions must be letters of 'cruds' in that order"));
                    }
                    last = Some(position);
                    bits |= 1 << position;
                }
                if bits == 0 {
                    return Err(fail("permissions are empty"));
                }
                bits
            }
        };
        Ok(Scope { context, resource_type, interactions })
    }

    /// Whether this scope grants `interaction` on `resource_type`.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.resource_type.as_deref().is_none_or(|t| t == resource_type) && self.interactions & interaction.bit() != 0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        };
        let letters: String =
            [Interaction::Create, Interaction::Read, Interaction::Update, Interaction::Delete, Interaction::Search]
                .into_iter()
                .filter(|i| self.interactions & i.bit() != 0)
                .map(Interaction::letter)
                .collect();
        write!(f, "{context}/{}.{letters}", self.resource_type.as_deref().unwrap_or("*"))
    }
}

/// The resource scopes of a token, plus the other scopes it carries (`openid`, `fhirUser`,
/// `launch/patient`, …) which grant no data access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// The resource scopes.
    pub resource: Vec<Scope>,
    /// Everything else, kept for display.
    pub other: Vec<String>,
}

/// Scopes that are not about resources and are passed through untouched.
fn is_non_resource_scope(scope: &str) -> bool {
    !scope.contains('/') || scope.starts_with("launch/")
}

impl Scopes {
    /// Parses a space-separated `scope` claim. Any malformed resource scope fails the whole set,
    /// so a typo never silently grants less (or more) than the client believed.
    pub fn parse(text: &str) -> Result<Scopes, ScopeError> {
        let mut scopes = Scopes::default();
        for item in text.split_ascii_whitespace() {
            if is_non_resource_scope(item) {
                scopes.other.push(item.to_string());
            } else {
                scopes.resource.push(Scope::parse(item)?);
            }
        }
        Ok(scopes)
    }

    /// Whether any scope of `context` grants `interaction` on `resource_type`.
    pub fn allows(&self, context: ScopeContext, resource_type: &str, interaction: Interaction) -> bool {
        self.resource.iter().any(|s| s.context == context && s.allows(resource_type, interaction))
    }

    /// Whether any scope of any context grants `interaction` on `resource_type`.
    pub fn allows_any_context(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.resource.iter().any(|s| s.allows(resource_type, interaction))
    }

    /// Keeps only the resource scopes of `context` that `granted` also allows (a client never
    /// gets more than it was registered for).
    pub fn intersect(&self, granted: &Scopes) -> Scopes {
        let mut resource: Vec<Scope> = Vec::new();
        for wanted in &self.resource {
            for given in granted.resource.iter().filter(|g| g.context == wanted.context) {
                let resource_type = match (&wanted.resource_type, &given.resource_type) {
                    (None, t) | (t, None) => t.clone(),
                    (Some(a), Some(b)) if a == b => Some(a.clone()),
                    _ => continue,
                };
                let interactions = wanted.interactions & given.interactions;
                if interactions != 0 {
                    let scope = Scope { context: wanted.context, resource_type, interactions };
                    if !resource.contains(&scope) {
                        resource.push(scope);
                    }
                }
            }
        }
        Scopes { resource, other: self.other.clone() }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.other.iter().cloned().chain(self.resource.iter().map(Scope::to_string)).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_scopes_grant_exactly_their_letters() {
        let scope = Scope::parse("patient/Observation.rs").unwrap();
        assert!(scope.allows("Observation", Interaction::Read));
        assert!(scope.allows("Observation", Interaction::Search));
        assert!(!scope.allows("Observation", Interaction::Create));
        assert!(!scope.allows("Condition", Interaction::Read));
        let all = Scope::parse("user/*.cruds").unwrap();
        for i in [Interaction::Create, Interaction::Read, Interaction::Update, Interaction::Delete, Interaction::Search]
        {
            assert!(all.allows("Anything", i));
        }
        assert_eq!(all.to_string(), "user/*.cruds");
    }

    #[test]
    fn v1_scopes_map_onto_v2() {
        assert_eq!(Scope::parse("user/Patient.read").unwrap().to_string(), "user/Patient.rs");
        assert_eq!(Scope::parse("system/*.write").unwrap().to_string(), "system/*.cud");
        assert_eq!(Scope::parse("patient/*.*").unwrap().to_string(), "patient/*.cruds");
    }

    #[test]
    fn malformed_scopes_are_refused() {
        for bad in [
            "user/Patient",
            "nobody/Patient.r",
            "user/patient.r",
            "user/Patient.sr",
            "user/Patient.rr",
            "user/Patient.x",
            "user/Observation.rs?category=vital-signs",
            "user/.r",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Scopes::parse("openid fhirUser user/Patient.zz").is_err());
    }

    #[test]
    fn scope_sets_keep_non_resource_scopes_and_check_context() {
        let scopes = Scopes::parse("openid fhirUser launch/patient patient/*.rs").unwrap();
        assert_eq!(scopes.other, vec!["openid", "fhirUser", "launch/patient"]);
        assert!(scopes.allows(ScopeContext::Patient, "Condition", Interaction::Search));
        assert!(!scopes.allows(ScopeContext::User, "Condition", Interaction::Search));
        assert!(!scopes.allows(ScopeContext::Patient, "Condition", Interaction::Delete));
    }

    #[test]
    fn intersection_never_exceeds_what_was_granted() {
        let wanted = Scopes::parse("system/*.cruds system/Patient.rs").unwrap();
        let granted = Scopes::parse("system/Patient.cruds system/Encounter.c").unwrap();
        let result = wanted.intersect(&granted);
        assert!(result.allows(ScopeContext::System, "Patient", Interaction::Delete));
        assert!(!result.allows(ScopeContext::System, "Observation", Interaction::Read));
        let user = Scopes::parse("user/*.cruds").unwrap().intersect(&granted);
        assert!(user.resource.is_empty());
    }
}
