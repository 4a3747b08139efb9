//! The HTTPRoute CORS filter → [`Cors`]: origins become patterns, methods and headers lists,
//! `maxAge` seconds (5 when unset, as the CRD defaults it).

use legate_api::gateway::experimental::httproutes::HttpRouteRulesFiltersCors;

use super::checks::check_header_name;
use crate::conditions::Problem;
use crate::ir::Cors;

/// `Access-Control-Max-Age` when `maxAge` is unset.
const DEFAULT_MAX_AGE: u32 = 5;

/// Converts a CORS filter, or says which field is invalid.
pub fn cors(c: &HttpRouteRulesFiltersCors) -> Result<Cors, Problem> {
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    let allow_origins = list(&c.allow_origins).iter().map(|o| origin_pattern(o)).collect::<Result<_, _>>()?;
    let allow_methods = list(&c.allow_methods);
    let allow_headers = list(&c.allow_headers);
    let expose_headers = list(&c.expose_headers);
    for (field, values) in [("allowMethods", &allow_methods), ("allowHeaders", &allow_headers)] {
        if values.len() > 1 && values.iter().any(|v| v == "*") {
            return Err(Problem::unsupported(format!("cors.{field} cannot contain '*' alongside other values")));
        }
    }
    for h in allow_headers.iter().chain(&expose_headers).filter(|h| *h != "*") {
        check_header_name(h).map_err(|e| e.at("cors"))?;
    }
    for m in allow_methods.iter().filter(|m| *m != "*") {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Problem::unsupported(format!("cors.allowMethods: {m:?} is not an HTTP method")));
        }
    }
    let max_age = match c.max_age {
        None => DEFAULT_MAX_AGE,
        Some(s) if s >= 1 => s as u32,
        Some(s) => return Err(Problem::unsupported(format!("cors.maxAge {s} must be at least 1"))),
    };
    Ok(Cors {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials: c.allow_credentials.unwrap_or(false),
    })
}

/// An `allowOrigins` entry as an RE2 pattern matching whole `Origin` values: `*` matches every
/// origin; otherwise `<scheme>://<host>[:<port>]`, where a host `*` matches any host and a
/// leading `*.` any number of labels, and the scheme's default port (80, 443) may be written
/// or left out on either side. Schemes and hosts are case-insensitive.
pub fn origin_pattern(origin: &str) -> Result<String, Problem> {
    let bad = |why: &str| {
        Problem::unsupported(format!(
            "cors.allowOrigins: {origin:?} {why}; write '*' or <scheme>://<host>[:<port>] with scheme http or https"
        ))
    };
    if origin == "*" {
        return Ok(".*".into());
    }
    let (scheme, rest) = origin.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("has an unsupported scheme")),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("has an invalid port"))?)),
        None => (rest, None),
    };
    // `*` alone, `*.<domain>`, or a literal host.
    let (wildcard, literal) = match (host, host.strip_prefix("*.")) {
        ("*", _) => (true, ""),
        (_, Some(domain)) => (true, domain),
        (h, None) => (false, h),
    };
    let label_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let named = host == "*" || !literal.is_empty();
    if !named || !label_chars(literal) || literal.starts_with('.') || literal.ends_with('.') {
        return Err(bad("has an invalid host"));
    }
    let mut p = format!("(?i){}://", scheme.to_ascii_lowercase());
    match (wildcard, literal.is_empty()) {
        (true, true) => p.push_str(r"[^/:]+"),
        (true, false) => p.push_str(r"[^/:]+\."),
        _ => {}
    }
    p.push_str(&literal.replace('.', r"\."));
    match port {
        Some(port) if port != default_port => p.push_str(&format!(":{port}")),
        _ => p.push_str(&format!("(:{default_port})?")),
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
