//! The policies evaluated for one request, and in which form.
//!
//! Every policy states its guard first (action, kind of user, same or another organisation,
//! purpose, break-glass; see [`crate::policy::Guard`]), and every clause policy then names its
//! resource types, recipients and disclosers. The engine establishes those facts with an
//! index instead of asking Cedar each time: a request's key ([`RequestKey`]) selects the
//! standing policies whose guard admits it, and across organisations the (recipient partner,
//! custodian partner, resource type) triple selects the clauses covering it. Cedar then
//! evaluates only what remains of the selected policies once those facts hold, their
//! [`PolicyInfo::residual`]: a partial evaluation done once, when the engine is built. A policy
//! the index leaves out cannot match the request, so the decision is the same as Cedar's over
//! every policy in its full form; `engine::tests` checks exactly that.
//!
//! Each residual's Cedar condition (`Policy::condition`: scope, `when` and `unless` as one
//! expression) is built once here too: Cedar's authorizer rebuilds it on every evaluation,
//! which cost more than evaluating it (see `AccessEngine::authorize`).

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{PolicyId, PolicySet, Schema};
use cedar_policy_core::ast;

use crate::agreement::{Agreement, AgreementStatus};
use crate::policy::{clause_policy, validate_policy_set, PolicyBuildError, PolicyInfo, RequestKey};

/// One policy's metadata and the condition of its residual.
pub(crate) struct CompiledPolicy {
    /// Its metadata.
    pub info: PolicyInfo,
    /// The Cedar condition of [`PolicyInfo::residual`]: true exactly when the policy is
    /// satisfied by a request its index selected it for.
    pub condition: ast::Expr,
}

/// The policies for one kind of request, as indexes into [`PolicySets::policy`], in policy
/// id order.
#[derive(Clone)]
pub(crate) struct Selected {
    /// Every policy that can apply.
    pub all: Arc<[usize]>,
    /// Those of `all` to evaluate again for the same read without its labels: all but the
    /// forbids that read neither labels nor consent, which decide the same either way (the
    /// engine re-evaluates only when none of them matched).
    pub without_labels: Arc<[usize]>,
}

/// Selections by [`RequestKey::index`]; `None` where no clause's guard admits the key (the
/// standing policies' selection applies).
type ByKey = Vec<Option<Selected>>;

/// The policy selections of one engine.
pub(crate) struct PolicySets {
    /// The standing policies, then the active clauses.
    policies: Vec<CompiledPolicy>,
    /// Standing policies only, by [`RequestKey::index`]: for the custodian's own data and for
    /// what no clause covers.
    baseline: Vec<Selected>,
    /// Standing policies plus the clauses covering a recipient partner, a custodian partner
    /// and a resource type, in that order of keys.
    clauses: HashMap<String, HashMap<String, HashMap<String, ByKey>>>,
    /// Never selected: the answer should an index be out of range (deny by default).
    empty: Selected,
}

/// Builds selections, sharing identical ones.
struct SetMaker<'a> {
    policies: &'a [CompiledPolicy],
    made: HashMap<Vec<usize>, Arc<[usize]>>,
}

impl SetMaker<'_> {
    fn selected(&mut self, members: Vec<usize>) -> Selected {
        let relabel: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| self.policies.get(*i).is_some_and(|p| p.info.permit || p.info.reads_labels_or_consent))
            .collect();
        Selected { all: self.set(members), without_labels: self.set(relabel) }
    }

    fn set(&mut self, mut members: Vec<usize>) -> Arc<[usize]> {
        // Id order, so that matched policies come out in id order.
        members.sort_by(|a, b| {
            let id = |i: &usize| self.policies.get(*i).map(|p| p.info.id.as_str());
            id(a).cmp(&id(b))
        });
        Arc::clone(self.made.entry(members.clone()).or_insert_with(|| Arc::from(members)))
    }
}

impl PolicySets {
    /// Build the selections from the standing policies and the active agreements' clauses,
    /// parsing every residual and validating them together against the schema.
    pub(crate) fn build(
        schema: &Schema,
        baseline: &[PolicyInfo],
        agreements: &[Agreement],
    ) -> Result<PolicySets, PolicyBuildError> {
        let mut infos: Vec<PolicyInfo> = baseline.to_vec();
        let n_baseline = infos.len();
        // Which clauses cover each (recipient, discloser, resource type).
        let mut covering: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
        for agreement in agreements.iter().filter(|a| a.status == AgreementStatus::Active) {
            for clause in &agreement.clauses {
                let index = infos.len();
                infos.push(clause_policy(agreement, clause));
                for recipient in &clause.recipients {
                    for custodian in clause.disclosers.iter().filter(|d| *d != recipient) {
                        for resource_type in &clause.resource_types {
                            let members = covering
                                .entry((recipient.clone(), custodian.clone(), resource_type.clone()))
                                .or_default();
                            // A clause listing a value twice is selected once.
                            if !members.contains(&index) {
                                members.push(index);
                            }
                        }
                    }
                }
            }
        }

        let mut residuals = PolicySet::new();
        let mut policies = Vec::with_capacity(infos.len());
        for info in infos {
            let parse_error = |message: String| PolicyBuildError::Parse { policy_id: info.id.clone(), message };
            let residual = cedar_policy::Policy::parse(Some(PolicyId::new(&info.id)), &info.residual)
                .map_err(|e| parse_error(e.to_string()))?;
            let condition = AsRef::<ast::Policy>::as_ref(&residual).condition();
            residuals.add(residual).map_err(|e| parse_error(e.to_string()))?;
            policies.push(CompiledPolicy { info, condition });
        }
        validate_policy_set(schema, &residuals)?;

        let keys: Vec<RequestKey> = RequestKey::all().collect();
        let admitted = |members: &mut dyn Iterator<Item = usize>, key: RequestKey| -> Vec<usize> {
            members.filter(|i| policies.get(*i).is_some_and(|p| p.info.guard.admits(key))).collect()
        };
        let mut maker = SetMaker { policies: &policies, made: HashMap::new() };
        let mut baseline_sets = Vec::with_capacity(keys.len());
        for key in &keys {
            baseline_sets.push(maker.selected(admitted(&mut (0..n_baseline), *key)));
        }
        let mut clauses: HashMap<String, HashMap<String, HashMap<String, ByKey>>> = HashMap::new();
        for ((recipient, custodian, resource_type), members) in covering {
            let mut sets: ByKey = Vec::with_capacity(keys.len());
            for key in &keys {
                let clause_members = admitted(&mut members.iter().copied(), *key);
                if clause_members.is_empty() {
                    sets.push(None);
                } else {
                    let mut all = admitted(&mut (0..n_baseline), *key);
                    all.extend(clause_members);
                    sets.push(Some(maker.selected(all)));
                }
            }
            clauses.entry(recipient).or_default().entry(custodian).or_default().insert(resource_type, sets);
        }
        let empty = Selected { all: Arc::from(Vec::new()), without_labels: Arc::from(Vec::new()) };
        Ok(PolicySets { policies, baseline: baseline_sets, clauses, empty })
    }

    /// The policy at `index` of a [`Selected`].
    pub(crate) fn policy(&self, index: usize) -> Option<&CompiledPolicy> {
        self.policies.get(index)
    }

    /// The policies that can apply to a request of `key` by `recipient`'s user about
    /// `custodian`'s data of `resource_type`.
    pub(crate) fn select(&self, recipient: &str, custodian: &str, resource_type: &str, key: RequestKey) -> &Selected {
        let index = key.index();
        let with_clauses = if key.same_partner {
            None
        } else {
            self.clauses
                .get(recipient)
                .and_then(|m| m.get(custodian))
                .and_then(|m| m.get(resource_type))
                .and_then(|sets| sets.get(index))
                .and_then(Option::as_ref)
        };
        match with_clauses.or_else(|| self.baseline.get(index)) {
            Some(set) => set,
            None => &self.empty,
        }
    }
}
