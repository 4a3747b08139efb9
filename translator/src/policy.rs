//! Policy attachment, shared by Legate's policy kinds: which policy is in effect on each target
//! (the older of two at one target wins, then namespace/name), the field-by-field merge of the
//! policies along a chain of targets from least to most specific, and the policies' status
//! (`ancestors[]`: one entry per Gateway a policy takes effect through).
//!
//! A policy kind plugs in with its conversion (spec → IR, which says whether a spec is
//! invalid) and its application to a Gateway's IR, which asks [`Attachments::chain`] for the
//! policies in effect along the targets of each route rule and records, with
//! [`Attachments::touch`] and [`Merged::used`], the Gateways each policy reaches and whether
//! any of its fields survives the merge.

use std::collections::{BTreeMap, BTreeSet};

use legate_api::conditions::{legate as lg, reasons, types};
use legate_api::gvk::{CORE_GROUP, GATEWAY_GROUP, KIND_BACKEND, KIND_GATEWAY, KIND_SERVICE, LEGATE_GROUP};
use legate_api::k8s::{ObjectMeta, Time};
use legate_api::kinds::Kind;
use legate_api::{PolicyTargetRef, gvk};
use serde_json::{Map, Value};

use std::sync::Arc;

use crate::conditions::Condition;
use crate::ir::VirtualHostIr;
use crate::resources::{ObjKey, Resources};
use crate::routes::RouteKey;
use crate::status::{ParentRef, PolicyAncestorStatus, PolicyStatus, Statuses};

/// What a policy attaches to: an object in the policy's namespace and, optionally, a section
/// of it (a Gateway listener, a route rule by name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub kind: Kind,
    pub key: ObjKey,
    pub section: Option<String>,
}

impl Target {
    pub fn new(kind: Kind, key: ObjKey, section: Option<String>) -> Self {
        Target { kind, key, section }
    }

    pub fn gateway(key: &ObjKey, listener: Option<&str>) -> Self {
        Target::new(Kind::Gateway, key.clone(), listener.map(str::to_owned))
    }

    pub fn route(key: &RouteKey, rule: Option<&str>) -> Self {
        Target::new(key.kind, key.key.clone(), rule.map(str::to_owned))
    }

    fn from_ref(ns: &str, r: &PolicyTargetRef) -> Option<Self> {
        let kind = match (r.group.as_str(), r.kind.as_str()) {
            (GATEWAY_GROUP, KIND_GATEWAY) => Kind::Gateway,
            (GATEWAY_GROUP, gvk::KIND_HTTP_ROUTE) => Kind::HttpRoute,
            (GATEWAY_GROUP, gvk::KIND_GRPC_ROUTE) => Kind::GrpcRoute,
            (CORE_GROUP, KIND_SERVICE) => Kind::Service,
            (LEGATE_GROUP, KIND_BACKEND) => Kind::Backend,
            _ => return None,
        };
        Some(Target::new(kind, ObjKey::new(ns, &r.name), r.section_name.clone()))
    }

    /// Whether the target exists in `res` (with the listener or rule its section names).
    fn exists(&self, res: &Resources) -> bool {
        let named = |n: Option<&str>| self.section.is_none() || n == self.section.as_deref();
        match self.kind {
            Kind::Gateway => res
                .gateways
                .get(&self.key)
                .is_some_and(|g| self.section.is_none() || g.spec.listeners.iter().any(|l| named(Some(&l.name)))),
            Kind::HttpRoute | Kind::GrpcRoute => res
                .routes
                .get(&RouteKey::new(self.kind, self.key.clone()))
                .is_some_and(|r| self.section.is_none() || r.rule_names().iter().any(|n| named(n.as_deref()))),
            Kind::Service => res.services.contains_key(&self.key),
            Kind::Backend => res.backends.contains_key(&self.key),
            _ => false,
        }
    }

    /// As a status `ancestorRef` (for a target that does not exist).
    fn as_ref(&self) -> ParentRef {
        let info = self.kind.info();
        ParentRef {
            group: info.group.to_owned(),
            kind: info.name.to_owned(),
            namespace: self.key.namespace.to_string(),
            name: self.key.name.to_string(),
            section_name: self.section.clone(),
            port: None,
        }
    }

    fn describe(&self) -> String {
        match &self.section {
            Some(s) => format!("{} {} section {s}", self.kind.name(), self.key),
            None => format!("{} {}", self.kind.name(), self.key),
        }
    }
}

/// A policy of any kind, as its kind's conversion hands it to [`Attachments::resolve`].
pub struct Input<'a> {
    pub key: &'a ObjKey,
    pub meta: &'a ObjectMeta,
    pub target_refs: &'a [PolicyTargetRef],
    /// The spec as JSON (`targetRefs` is ignored).
    pub spec: Value,
    /// Why the spec is invalid beside what its schema checks, found by its conversion.
    pub invalid: Option<String>,
}

impl<'a> Input<'a> {
    /// A policy of `spec` (serialised to JSON for the merge), invalid for `invalid`.
    pub fn new<S: serde::Serialize>(
        key: &'a ObjKey,
        meta: &'a ObjectMeta,
        target_refs: &'a [PolicyTargetRef],
        spec: &S,
        invalid: Option<String>,
    ) -> Self {
        Input { key, meta, target_refs, spec: serde_json::to_value(spec).unwrap_or(Value::Null), invalid }
    }
}

/// One policy as the framework sees it: its spec as JSON (without `targetRefs`), its targets
/// and why it is invalid, if it is.
#[derive(Debug)]
struct Entry {
    generation: i64,
    created: Option<Time>,
    spec: Value,
    targets: Vec<Target>,
    invalid: Option<String>,
    missing: Vec<Target>,
    /// Targets where an older policy is in effect, with that policy.
    lost: BTreeMap<Target, ObjKey>,
}

/// The policies affecting an object through one Gateway, each with the level it is attached at.
type Affecting = BTreeSet<(ObjKey, String)>;

/// The policies of one kind, resolved: which is in effect on each target.
#[derive(Debug)]
pub struct Attachments {
    kind: Kind,
    entries: BTreeMap<ObjKey, Entry>,
    /// The valid policies on each target, the one in effect first.
    by_target: BTreeMap<Target, Vec<ObjKey>>,
    /// Policy → the Gateways it takes effect through.
    ancestors: BTreeMap<ObjKey, BTreeSet<ObjKey>>,
    /// Policies with at least one field in effect somewhere.
    used: BTreeSet<ObjKey>,
    /// Gateway or route → (Gateway, policy, what it targets) for the PolicyAffected condition.
    affected: BTreeMap<(Kind, ObjKey), BTreeMap<ObjKey, Affecting>>,
    /// For kinds that refer to other objects ([`Attachments::refs`]): the policies whose
    /// references do not resolve, with why (the `ResolvedRefs` condition).
    refs: Option<BTreeMap<ObjKey, String>>,
}

impl Attachments {
    /// Resolves the policies of `kind`.
    pub fn resolve<'a>(kind: Kind, res: &Resources, policies: impl IntoIterator<Item = Input<'a>>) -> Self {
        let mut out = Attachments {
            kind,
            entries: BTreeMap::new(),
            by_target: BTreeMap::new(),
            ancestors: BTreeMap::new(),
            used: BTreeSet::new(),
            affected: BTreeMap::new(),
            refs: None,
        };
        for Input { key, meta, target_refs: refs, mut spec, invalid } in policies {
            if let Some(o) = spec.as_object_mut() {
                o.remove("targetRefs");
            }
            let mut targets = vec![];
            let mut invalid = invalid;
            for r in refs {
                match Target::from_ref(&key.namespace, r) {
                    Some(t) => targets.push(t),
                    None => {
                        invalid.get_or_insert(format!(
                            "targetRef {}/{} {} is not a kind it attaches to",
                            r.group, r.kind, r.name
                        ));
                    }
                }
            }
            targets.sort();
            targets.dedup();
            let missing: Vec<Target> = targets.iter().filter(|t| !t.exists(res)).cloned().collect();
            if invalid.is_none() {
                for t in targets.iter().filter(|t| !missing.contains(t)) {
                    out.by_target.entry(t.clone()).or_default().push(key.clone());
                }
            }
            let entry = Entry {
                generation: meta.generation.unwrap_or(0),
                created: meta.creation_timestamp.clone(),
                spec,
                targets,
                invalid,
                missing,
                lost: BTreeMap::new(),
            };
            out.entries.insert(key.clone(), entry);
        }
        for (target, list) in &mut out.by_target {
            let entries = &out.entries;
            list.sort_by(|a, b| {
                crate::precedence::age_order(entries[a].created.as_ref(), entries[b].created.as_ref())
                    .then_with(|| a.cmp(b))
            });
            for loser in &list[1..] {
                out.entries.get_mut(loser).expect("resolved").lost.insert(target.clone(), list[0].clone());
            }
        }
        out
    }

    /// Gives the policies a `ResolvedRefs` condition: false for those listed (with why).
    pub fn refs(&mut self, unresolved: BTreeMap<ObjKey, String>) {
        self.refs = Some(unresolved);
    }

    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// The policy in effect on `t`, with its spec.
    pub fn winner(&self, t: &Target) -> Option<(&ObjKey, &Value)> {
        let k = self.by_target.get(t)?.first()?;
        Some((k, &self.entries[k].spec))
    }

    /// Records that the policies on `t` (in effect or not) take effect through Gateway `gw`.
    pub fn touch(&mut self, t: &Target, gw: &ObjKey) {
        for p in self.by_target.get(t).into_iter().flatten() {
            self.ancestors.entry(p.clone()).or_default().insert(gw.clone());
        }
    }

    /// The policies in effect along `targets` (least specific first), merged field by field
    /// (the later wins); each target is touched for `gw`. `atomic` names the objects replaced
    /// whole rather than merged (JSON pointers).
    pub fn chain(&mut self, targets: &[Target], gw: &ObjKey, atomic: &[&str]) -> Merged {
        let mut merged = Merged::default();
        for t in targets {
            self.touch(t, gw);
            if let Some((k, spec)) = self.winner(t) {
                let k = k.clone();
                merge_into(&mut merged.value, spec, "", atomic, &k, &mut merged.from);
                merged.policies.push((k, t.clone()));
            }
        }
        merged
    }

    /// Records that the policy in effect on Gateway `gw` (or one of its listeners) affects it
    /// (its PolicyAffected condition); returns that target.
    pub fn affect_gateway(&mut self, gw: &ObjKey, listener: Option<&str>, atomic: &[&str]) -> Target {
        let t = Target::gateway(gw, listener);
        let merged = self.chain(std::slice::from_ref(&t), gw, atomic);
        self.affect(&merged, (Kind::Gateway, gw), gw);
        t
    }

    /// The policies in effect on one route rule of Gateway `gw`, merged along Gateway →
    /// listener → route → rule (`gw_target` and `listener`: the first two), recorded as
    /// affecting the route.
    pub fn on_rule(
        &mut self,
        gw: &ObjKey,
        (gw_target, listener): (&Target, &Target),
        route: &RouteKey,
        rule: Option<&str>,
        atomic: &[&str],
    ) -> Merged {
        let mut chain = vec![gw_target.clone(), listener.clone(), Target::route(route, None)];
        chain.extend(rule.map(|n| Target::route(route, Some(n))));
        let merged = self.chain(&chain, gw, atomic);
        self.affect(&merged, (route.kind, &route.key), gw);
        merged
    }

    /// Records that `merged`'s fields (but those under `except`) are in effect.
    pub fn used(&mut self, merged: &Merged, except: &[&str]) {
        for (path, p) in &merged.from {
            if !except.iter().any(|e| path.starts_with(e)) {
                self.used.insert(p.clone());
            }
        }
    }

    /// Records that the policies along `merged`'s chain take effect on `on` (a Gateway or a
    /// route) through Gateway `gw`, for its PolicyAffected condition.
    pub fn affect(&mut self, merged: &Merged, on: (Kind, &ObjKey), gw: &ObjKey) {
        if merged.policies.is_empty() {
            return;
        }
        let slot = self.affected.entry((on.0, on.1.clone())).or_default().entry(gw.clone()).or_default();
        for (p, t) in &merged.policies {
            slot.insert((p.clone(), level(t)));
        }
    }

    /// Every policy's status: an ancestor entry per Gateway it takes effect through, and one
    /// per target that does not exist (a policy that reaches no Gateway of Legate's and names
    /// no missing target gets none).
    pub fn statuses(&self, controller: &str) -> BTreeMap<ObjKey, PolicyStatus> {
        let kind = self.kind.name();
        let mut out = BTreeMap::new();
        for (key, e) in &self.entries {
            let g = e.generation;
            let mut ancestors = vec![];
            let entry = |ancestor_ref: ParentRef, conditions: Vec<Condition>| PolicyAncestorStatus {
                ancestor_ref,
                controller_name: controller.to_owned(),
                conditions,
            };
            for gw in self.ancestors.get(key).into_iter().flatten() {
                let accepted = if let Some(m) = &e.invalid {
                    Condition::new(types::ACCEPTED, false, reasons::INVALID, m.clone(), g)
                } else if let Some((t, winner)) = e.lost.iter().next() {
                    Condition::new(
                        types::ACCEPTED,
                        false,
                        reasons::CONFLICTED,
                        format!(
                            "{kind} {winner} also targets {} and takes precedence (created earlier, or at the same \
                             time and first by namespace/name)",
                            t.describe()
                        ),
                        g,
                    )
                } else if !self.used.contains(key) {
                    Condition::new(
                        types::ACCEPTED,
                        true,
                        reasons::ACCEPTED,
                        "policy is accepted but overridden everywhere: more specific policies (or the routes' own \
                         timeouts) set every field it sets",
                        g,
                    )
                } else {
                    Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "policy is accepted", g)
                };
                let mut conditions = vec![accepted];
                conditions.extend(self.refs.as_ref().map(|r| match r.get(key) {
                    Some(m) => Condition::new(types::RESOLVED_REFS, false, lg::INVALID_REF, m.clone(), g),
                    None => {
                        Condition::new(types::RESOLVED_REFS, true, reasons::RESOLVED_REFS, "all references resolved", g)
                    }
                }));
                ancestors.push(entry(ParentRef::gateway(gw), conditions));
            }
            for t in &e.missing {
                let accepted = Condition::new(
                    types::ACCEPTED,
                    false,
                    reasons::TARGET_NOT_FOUND,
                    format!("target {} does not exist", t.describe()),
                    g,
                );
                ancestors.push(entry(t.as_ref(), vec![accepted]));
            }
            if e.invalid.is_some() && ancestors.is_empty() {
                // An invalid policy reaches no Gateway through the merge; report it against
                // its targets so that the reason is visible.
                for t in &e.targets {
                    let m = e.invalid.clone().unwrap_or_default();
                    let accepted = Condition::new(types::ACCEPTED, false, reasons::INVALID, m, g);
                    ancestors.push(entry(t.as_ref(), vec![accepted]));
                }
            }
            if !ancestors.is_empty() {
                out.insert(key.clone(), PolicyStatus { ancestors });
            }
        }
        out
    }

    /// Adds the `gateway.legate.dev/PolicyAffected` condition to each Gateway and route these
    /// policies take effect on, naming them.
    pub fn annotate(&self, statuses: &mut Statuses, res: &Resources) {
        let kind = self.kind.name();
        for ((on, key), by_gateway) in &self.affected {
            let describe = |ps: &BTreeSet<(ObjKey, String)>| {
                let list: Vec<String> = ps.iter().map(|(p, lvl)| format!("{p} ({lvl})")).collect();
                format!("{kind}: {}", list.join(", "))
            };
            if *on == Kind::Gateway {
                let Some(st) = statuses.gateways.get_mut(key) else { continue };
                let g = res.gateways.get(key).and_then(|g| g.metadata.generation).unwrap_or(0);
                let all: BTreeSet<(ObjKey, String)> = by_gateway
                    .values()
                    .flatten()
                    .filter(|(_, l)| l.starts_with("Gateway") || l.starts_with("listener"))
                    .cloned()
                    .collect();
                if !all.is_empty() {
                    add_condition(&mut st.conditions, describe(&all), g);
                }
                continue;
            }
            let rk = RouteKey::new(*on, key.clone());
            let Some(st) = statuses.routes.get_mut(&rk) else { continue };
            let g = res.routes.get(&rk).and_then(|r| r.metadata().generation).unwrap_or(0);
            let st = std::sync::Arc::make_mut(st);
            for parent in &mut st.parents {
                let gw = ObjKey::new(&parent.parent_ref.namespace, &parent.parent_ref.name);
                if let Some(ps) = by_gateway.get(&gw) {
                    add_condition(&mut parent.conditions, describe(ps), g);
                }
            }
        }
    }
}

/// Adds (or extends) the PolicyAffected condition.
fn add_condition(conditions: &mut Vec<Condition>, message: String, g: i64) {
    match conditions.iter_mut().find(|c| c.type_ == lg::POLICY_AFFECTED) {
        Some(c) => c.message = format!("{}; {message}", c.message).into(),
        None => conditions.push(Condition::new(lg::POLICY_AFFECTED, true, lg::AFFECTED, message, g)),
    }
}

/// The level a target stands for, as the PolicyAffected condition names it.
fn level(t: &Target) -> String {
    match (t.kind, &t.section) {
        (Kind::Gateway, None) => "Gateway".into(),
        (Kind::Gateway, Some(l)) => format!("listener {l}"),
        (Kind::Service | Kind::Backend, _) => format!("{} {}", t.kind.name(), t.key.name),
        (_, None) => format!("{} {}", t.kind.name(), t.key.name),
        (_, Some(r)) => format!("{} {} rule {r}", t.kind.name(), t.key.name),
    }
}

/// Policies merged along a chain of targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    /// The merged spec.
    pub value: Value,
    /// Each field in effect (JSON pointer) → the policy it comes from.
    pub from: BTreeMap<String, ObjKey>,
    /// The policies in effect along the chain, least specific first, with their target.
    pub policies: Vec<(ObjKey, Target)>,
}

impl Merged {
    /// The policies contributing a field, `namespace/name`, least specific first.
    pub fn contributors(&self) -> Vec<String> {
        let fields: BTreeSet<&ObjKey> = self.from.values().collect();
        let mut out: Vec<String> = vec![];
        for (p, _) in &self.policies {
            if fields.contains(p) && !out.contains(&p.to_string()) {
                out.push(p.to_string());
            }
        }
        out
    }
}

/// The settings of listener-level fields for socket `l` and each of its TLS chains, given
/// `merged` (the Gateway's settings merged with a listener's, or the Gateway's alone for None):
/// a chain takes its listener's; the socket takes its listeners' when they all agree (or it
/// has one), else the Gateway's.
pub fn per_socket(l: &crate::ir::ListenerIr, mut merged: impl FnMut(Option<&str>) -> Merged) -> (Merged, Vec<Merged>) {
    let mut members: Vec<&str> = l.virtual_hosts.iter().map(|v| v.listener.as_str()).collect();
    members.extend(l.tls.iter().map(|c| c.listener.as_str()));
    members.extend(l.streams.iter().map(|s| s.listener.as_str()));
    members.sort();
    members.dedup();
    let per_listener: Vec<Merged> = members.iter().map(|m| merged(Some(m))).collect();
    let socket = match per_listener.split_first() {
        Some((first, rest)) if rest.iter().all(|x| x.value == first.value) => first.clone(),
        _ => merged(None),
    };
    let chains = l.tls.iter().map(|c| merged(Some(&c.listener))).collect();
    (socket, chains)
}

/// Virtual hosts a policy kind changed, kept between translations: per (Gateway, virtual
/// host), the virtual host it was made from, the changes (`C`) and the result.
pub type VirtualHosts<C> = crate::xds::cache::Epoched<(ObjKey, String), (Arc<VirtualHostIr>, C, Arc<VirtualHostIr>)>;

/// `vh` with `changes` applied by `apply`: the same `Arc` as last time while `vh` and the
/// changes are; `vh` itself when `none` says there are no changes.
pub fn remake<C: PartialEq + Clone>(
    cache: &mut VirtualHosts<C>,
    gw: &ObjKey,
    vh: &Arc<VirtualHostIr>,
    changes: C,
    none: bool,
    apply: impl FnOnce(&mut VirtualHostIr, &C),
) -> Arc<VirtualHostIr> {
    if none {
        return vh.clone();
    }
    let (_, _, out) = cache.get_or(
        (gw.clone(), vh.name.clone()),
        |(base, was, _)| Arc::ptr_eq(base, vh) && *was == changes,
        || {
            let mut out = VirtualHostIr::clone(vh);
            apply(&mut out, &changes);
            (vh.clone(), changes.clone(), Arc::new(out))
        },
    );
    out.clone()
}

/// `layers` merged in order (least specific first), each as policy `apps/p<i>` (tests).
#[cfg(test)]
pub(crate) fn merged_layers(layers: &[Value], atomic: &[&str]) -> Merged {
    let mut m = Merged::default();
    for (i, v) in layers.iter().enumerate() {
        let key = ObjKey::new("apps", format!("p{i}"));
        merge_into(&mut m.value, v, "", atomic, &key, &mut m.from);
        m.policies.push((key.clone(), Target::gateway(&key, None)));
    }
    m
}

/// Merges `over` into `into` field by field: objects key by key, anything else (and objects
/// at `atomic` paths) replaced whole. Records where each field comes from.
pub fn merge_into(
    into: &mut Value,
    over: &Value,
    at: &str,
    atomic: &[&str],
    from: &ObjKey,
    prov: &mut BTreeMap<String, ObjKey>,
) {
    match over {
        Value::Object(o) if !atomic.contains(&at) => {
            if !into.is_object() {
                prov.remove(at);
                *into = Value::Object(Map::new());
            }
            let map = into.as_object_mut().expect("made an object");
            for (k, v) in o {
                let path = format!("{at}/{k}");
                merge_into(map.entry(k.clone()).or_insert(Value::Null), v, &path, atomic, from, prov);
            }
        }
        Value::Null => {}
        v => {
            let prefix = format!("{at}/");
            prov.retain(|k, _| !k.starts_with(&prefix));
            *into = v.clone();
            prov.insert(at.to_owned(), from.clone());
        }
    }
}

#[cfg(test)]
mod tests;
