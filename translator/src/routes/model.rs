//! The route model every kind converts into, and the steps of that conversion the kinds share:
//! the loop over rules (defaults, rules dropped at decode time, indexes as written) and the
//! resolution of weighted backendRefs.

use std::sync::Arc;

use legate_api::conditions::reasons;

use super::backends::{self, BackendRefView, Referrer};
use crate::conditions::Problem;
use crate::ir::{ClusterIr, Filters, MatchIr, Mirror, PathRewrite, SharedFilters, WeightedBackend};
use crate::resources::{Reads, RejectedRule};

/// What a rule does once matched, before the listener is known (redirect ports depend on it).
#[derive(Clone, Debug, PartialEq)]
pub enum RuleAction {
    Forward {
        backends: Arc<[WeightedBackend]>,
        filters: SharedFilters,
        timeout: Option<Duration>,
        mirrors: Vec<Mirror>,
    },
    Redirect(RedirectSpec),
    /// Answer with this status (an unresolvable ExtensionRef, say).
    Respond(u32, String),
}

/// A route timeout; `None` inside means disabled (`0s`).
pub type Duration = Option<std::time::Duration>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectSpec {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathRewrite>,
    pub status: u16,
}

/// One valid rule of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its index in `spec.rules` as written.
    pub index: usize,
    /// `spec.rules[].name`, if given.
    pub name: Option<String>,
    pub matches: Vec<MatchIr>,
    pub action: RuleAction,
}

/// Everything a route of any kind contributes, independent of where it attaches.
#[derive(Clone, Debug, Default)]
pub struct RouteRules {
    pub rules: Vec<Rule>,
    /// Rules dropped as invalid, by index as written.
    pub invalid: Vec<(usize, Problem)>,
    /// Invalid references (backendRefs, ExtensionRefs).
    pub unresolved: Vec<Problem>,
    pub clusters: Vec<Arc<ClusterIr>>,
}

/// The loop over a route's rules shared by every kind: no rules means one default rule (as the
/// CRDs default it), rules removed at decode time are reported under their index as written,
/// and `rule` converts each remaining rule (given its index as written) or says why not.
pub(crate) fn build_rules<R: Default>(
    rules: Option<&[R]>,
    rejected: &[RejectedRule],
    mut rule: impl FnMut(usize, &R, &mut RouteRules) -> Result<Rule, Problem>,
) -> RouteRules {
    let mut out = RouteRules::default();
    for r in rejected {
        out.invalid.push((r.index, Problem::new(reasons::UNSUPPORTED_VALUE, r.message.clone())));
    }
    let default_rule = [R::default()];
    let rules = rules.filter(|r| !r.is_empty()).unwrap_or(&default_rule);
    // Rules removed at decode time shift the indexes of those after them.
    let mut original = (0..).filter(|i| !rejected.iter().any(|r| r.index == *i));
    for r in rules {
        let index = original.next().unwrap_or_default();
        match rule(index, r, &mut out) {
            Ok(mut r) => {
                // `collect` into a Result starts with room for four matches.
                r.matches.shrink_to_fit();
                out.rules.push(r)
            }
            Err(p) => out.invalid.push((index, p.at(format_args!("spec.rules[{index}]")))),
        }
    }
    out.invalid.sort_by_key(|i| i.0);
    out.clusters.sort();
    out.clusters.dedup();
    // Kept for as long as the route is unchanged: no spare capacity.
    out.rules.shrink_to_fit();
    out.invalid.shrink_to_fit();
    out.unresolved.shrink_to_fit();
    out.clusters.shrink_to_fit();
    out
}

/// Resolves a rule's weighted backendRefs (each with its own filters) into destinations
/// (cluster `None` for an invalid one, whose share is answered with an error), recording
/// clusters and problems in `out`.
pub(crate) fn destinations<'r>(
    idx: &Reads<'_>,
    from: Referrer<'_>,
    refs: impl IntoIterator<Item = (BackendRefView<'r>, Option<i32>, Filters)>,
    out: &mut RouteRules,
) -> Vec<WeightedBackend> {
    let mut dests = vec![];
    for (view, weight, filters) in refs {
        let weight = weight.unwrap_or(1).max(0) as u32;
        let cluster = resolve(idx, from, view, out);
        dests.push(WeightedBackend { cluster, weight, filters: filters.into() });
    }
    dests.shrink_to_fit();
    dests
}

/// A RequestMirror filter of any route kind: the mirror, or none when its backendRef is invalid
/// (reported in `out`; the rule still serves, unmirrored). `percent` or `fraction`
/// (numerator, denominator) give the share mirrored; neither means every request.
pub(crate) fn mirror(
    idx: &Reads<'_>,
    from: Referrer<'_>,
    view: BackendRefView<'_>,
    percent: Option<i32>,
    fraction: Option<(i32, Option<i32>)>,
    out: &mut RouteRules,
) -> Result<Option<Mirror>, Problem> {
    let per_million = match (percent, fraction) {
        (Some(_), Some(_)) => return Err(Problem::unsupported("requestMirror: set percent or fraction, not both")),
        (Some(p), None) if (0..=100).contains(&p) => p as u64 * 10_000,
        (Some(p), None) => return Err(Problem::unsupported(format!("requestMirror.percent {p} is not within 0-100"))),
        (None, Some((n, d))) => {
            let d = d.unwrap_or(100);
            if d <= 0 || n < 0 || n > d {
                return Err(Problem::unsupported(format!(
                    "requestMirror.fraction {n}/{d} is not a fraction within 0-1 with a positive denominator"
                )));
            }
            n as u64 * 1_000_000 / d as u64
        }
        (None, None) => 1_000_000,
    };
    Ok(resolve(idx, from, view, out).map(|cluster| Mirror { cluster, per_million: per_million as u32 }))
}

/// One backendRef's cluster, recorded in `out`, or `None` with the problem recorded.
fn resolve(idx: &Reads<'_>, from: Referrer<'_>, view: BackendRefView<'_>, out: &mut RouteRules) -> Option<String> {
    match backends::resolve(idx, from, view) {
        Ok(c) => {
            let name = c.name.clone();
            out.clusters.push(idx.cluster(c));
            Some(name)
        }
        Err(e) => {
            out.unresolved.push(e);
            None
        }
    }
}

/// An ExtensionRef filter Legate does not know: reported as an unresolved reference; the rule
/// answers 500 (`Respond`).
pub(crate) fn unknown_extension(
    index: usize,
    filter: usize,
    what: Option<(&str, &str, &str)>,
    out: &mut RouteRules,
) -> RuleAction {
    let what = what.map(|(g, k, n)| format!("{g}/{k} {n}")).unwrap_or_default();
    out.unresolved.push(Problem::new(
        reasons::INVALID_KIND,
        format!(
            "spec.rules[{index}].filters[{filter}]: ExtensionRef {what} is not a kind Legate knows; requests to this rule get 500"
        ),
    ));
    RuleAction::Respond(500, "extension filter not supported".to_owned())
}
