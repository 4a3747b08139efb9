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
use std::sync::{Arc, LazyLock};

use cel::extractors::This;
use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use regex::Regex;
use serde_json::Value;

use crate::Violation;
use crate::schema::{Rule, Schema};
use crate::structural::children;

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

fn check_node(ctx: &Context, converted: &mut Converted, s: &Schema, v: &Value, path: &str, out: &mut Vec<Violation>) {
    if !s.validations.is_empty() {
        let mut scope = ctx.new_inner_scope();
        scope.add_variable_from_value("self", to_cel_with(s, v, converted));
        for rule in s.validations.iter().filter(|r| !is_transition_rule(r)) {
            let field = match &rule.field_path {
                Some(f) => format!("{path}{f}"),
                None => path.to_owned(),
            };
            let outcome =
                program(rule).map_err(str::to_owned).and_then(|p| p.execute(&scope).map_err(|e| e.to_string()));
            match outcome {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => {
                    let message = rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule));
                    out.push(Violation { field, message });
                }
                Ok(other) => out.push(Violation {
                    field,
                    message: format!("rule {} evaluated to {other:?}, not a boolean", rule.rule),
                }),
                Err(e) => {
                    out.push(Violation { field, message: format!("rule {} cannot be evaluated: {e}", rule.rule) })
                }
            }
        }
    }
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
