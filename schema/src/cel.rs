//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated with the `cel` crate over the
//! normalized object, as the API server does on create: every rule of every node present, with
//! `self` bound to that node. Kubernetes' CEL libraries as far as these CRDs use them: the
//! standard library with macros, the strings extension (`split`, `substring`, ...),
//! `matches` (RE2 syntax; Rust's `regex` accepts what the CRDs use), `duration()`, and
//! `isIP()` from the Kubernetes IP library.
//!
//! Rules that read `oldSelf` are transition rules: the API server evaluates them only on
//! update, never on create, and neither does Legate (it has no previous object).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};

use cel::extractors::This;
use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Violation;
use crate::schema::{Rule, Schema};
use crate::structural::children;

pub(crate) mod native;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings).expect("the strings extension declares once");
    Arc::new(env)
});

/// Compiles a rule (once; the program is kept in the rule).
pub(crate) fn program(rule: &Rule) -> Result<&Program, &str> {
    rule.program.get_or_init(|| ENV.compile(&rule.rule).map_err(|e| e.to_string())).as_ref().map_err(String::as_str)
}

/// Whether a rule is a transition rule (reads `oldSelf`), which is not evaluated on create.
pub fn is_transition_rule(rule: &Rule) -> bool {
    rule.rule.contains("oldSelf")
}

/// Evaluates every rule of `s` and its descendants over `v`.
pub(crate) fn check(s: &Schema, v: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut ctx = Context::with_env(ENV.clone());
    ctx.add_function("isIP", |ip: Arc<String>| ip.parse::<IpAddr>().is_ok()).expect("isIP is not a stdlib name");
    ctx.add_function("matches", matches).expect("the crate's own matches is left out");
    check_node(&ctx, &mut Converted::default(), s, v, path, out);
}

/// The CEL values of the nodes with rules, converted once: a node's value is made of its
/// children's, so a rule-bearing node below another is not converted again.
type Converted = HashMap<(*const Schema, *const Value), Cel>;

/// What the rules of a rule-bearing node and of its descendants found for the values seen, by
/// the SHA-256 of the value's JSON: many objects share subtrees (the same parentRefs, the same
/// backendRef, the same path match), and reloading a file checks again the objects it did not
/// change. The outcome of a subtree is a function of the schema and the value alone (no rule
/// evaluated here reads `oldSelf`). At most [`MAX_VERDICTS`] entries per node; a full map is
/// emptied.
#[derive(Debug, Default)]
pub(crate) struct Verdicts(Mutex<HashMap<[u8; 32], Option<Arc<Found>>>>);

/// Violations found under a node, with the node's path when they were found.
#[derive(Debug)]
pub(crate) struct Found {
    base: String,
    violations: Vec<Violation>,
}

const MAX_VERDICTS: usize = 1024;

impl Verdicts {
    fn get(&self, key: &[u8; 32]) -> Option<Option<Arc<Found>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn put(&self, key: [u8; 32], found: Option<Arc<Found>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_VERDICTS {
            map.clear();
        }
        map.insert(key, found);
    }
}

/// The SHA-256 of `v`'s compact JSON.
fn digest(v: &Value) -> [u8; 32] {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    serde_json::to_writer(&mut h, v).expect("a JSON value serializes");
    h.0.finalize().into()
}

fn check_node(ctx: &Context, converted: &mut Converted, s: &Schema, v: &Value, path: &str, out: &mut Vec<Violation>) {
    if s.validations.is_empty() {
        return check_children(ctx, converted, s, v, path, out);
    }
    let key = digest(v);
    if let Some(found) = s.verdicts.get(&key) {
        // The same value under this node found the same, under its own path then.
        let found = found.iter().flat_map(|f| f.violations.iter().map(move |v| (f, v)));
        out.extend(found.map(|(f, v)| Violation {
            field: format!("{path}{}", v.field.strip_prefix(f.base.as_str()).unwrap_or(&v.field)),
            message: v.message.clone(),
        }));
        return;
    }
    let before = out.len();
    check_rules(ctx, converted, s, v, path, out);
    check_children(ctx, converted, s, v, path, out);
    let found =
        (out.len() > before).then(|| Arc::new(Found { base: path.to_owned(), violations: out[before..].to_vec() }));
    s.verdicts.put(key, found);
}

/// Evaluates the rules of node `s` over `v`: natively where a rule has a native form that
/// answers for `v`, else with CEL (`self` is converted only then).
fn check_rules(ctx: &Context, converted: &mut Converted, s: &Schema, v: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut scope = None;
    for rule in s.validations.iter().filter(|r| !is_transition_rule(r)) {
        let field = || match &rule.field_path {
            Some(f) => format!("{path}{f}"),
            None => path.to_owned(),
        };
        let outcome = match rule.native.get(&rule.rule).and_then(|n| n(v)) {
            Some(b) => Ok(Cel::Bool(b)),
            None => {
                let scope = scope.get_or_insert_with(|| {
                    let mut scope = ctx.new_inner_scope();
                    scope.add_variable_from_value("self", to_cel_with(s, v, converted));
                    scope
                });
                program(rule).map_err(str::to_owned).and_then(|p| p.execute(scope).map_err(|e| e.to_string()))
            }
        };
        match outcome {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let message = rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule));
                out.push(Violation { field: field(), message });
            }
            Ok(other) => out.push(Violation {
                field: field(),
                message: format!("rule {} evaluated to {other:?}, not a boolean", rule.rule),
            }),
            Err(e) => {
                out.push(Violation { field: field(), message: format!("rule {} cannot be evaluated: {e}", rule.rule) })
            }
        }
    }
}

fn check_children(
    ctx: &Context,
    converted: &mut Converted,
    s: &Schema,
    v: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) {
    for (s, v, p) in children(s, v, path) {
        check_node(ctx, converted, s, v, &p, out);
    }
}

/// `s.matches(re)`, RE2-like syntax, each pattern compiled once (the `cel` crate's own
/// `matches` compiles it on every call).
fn matches(This(s): This<Arc<String>>, re: Arc<String>) -> Result<bool, cel::ExecutionError> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with_borrow_mut(|cache| {
        if !cache.contains_key(re.as_str()) {
            let compiled =
                Regex::new(&re).map_err(|e| cel::ExecutionError::function_error("matches", e.to_string()))?;
            cache.insert(re.to_string(), compiled);
        }
        Ok(cache[re.as_str()].is_match(&s))
    })
}

/// A JSON value as CEL sees it under schema `s`: an object's fields by their escaped names
/// ([`escape`]), a map's keys as they are. The values of
/// rule-bearing nodes are taken from `converted`, and recorded there.
fn to_cel_with(s: &Schema, v: &Value, converted: &mut Converted) -> Cel {
    let id = (s as *const Schema, v as *const Value);
    if let Some(c) = converted.get(&id) {
        return c.clone();
    }
    let empty = Schema::default();
    let c = match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => {
            let items = s.items.as_deref().unwrap_or(&empty);
            Cel::List(Arc::new(a.iter().map(|v| to_cel_with(items, v, converted)).collect()))
        }
        Value::Object(m) => {
            let mut out: HashMap<Key, Cel> = HashMap::with_capacity(m.len());
            for (k, v) in m {
                let (name, ps) = match s.properties.get(k) {
                    Some(p) => (escape(k), p),
                    None => (k.clone(), s.property(k).unwrap_or(&empty)),
                };
                out.insert(Key::String(Arc::new(name)), to_cel_with(ps, v, converted));
            }
            Cel::Map(Map { map: Arc::new(out) })
        }
    };
    if !s.validations.is_empty() {
        converted.insert(id, c.clone());
    }
    c
}

/// CEL's name of a field, as Kubernetes escapes it: a reserved word `w` as `__w__`, and `__`,
/// `.`, `-`, `/` as `__underscores__`, `__dot__`, `__dash__`, `__slash__`.
pub fn escape(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if RESERVED.contains(&name) {
        return format!("__{name}__");
    }
    name.replace("__", "__underscores__").replace('.', "__dot__").replace('-', "__dash__").replace('/', "__slash__")
}

#[cfg(test)]
mod tests;
