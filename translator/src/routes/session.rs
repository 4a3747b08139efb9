//! Session persistence (`rules[].sessionPersistence`, experimental channel) of HTTPRoute and
//! GRPCRoute, through one conversion: each kind reads its own types into a [`SessionSpec`]
//! ([`session_spec!`]).

use super::checks::parse_duration;
use crate::conditions::Problem;
use crate::ir::Session;

/// A rule's `sessionPersistence`, whatever the route kind.
pub(crate) struct SessionSpec<'a> {
    pub name: Option<&'a str>,
    /// `type: Header` (else a cookie).
    pub header: bool,
    /// `cookieConfig.lifetimeType: Permanent`.
    pub permanent: bool,
    pub absolute_timeout: Option<&'a str>,
    pub idle_timeout: bool,
}

/// Reads a kind's `sessionPersistence` into a [`SessionSpec`]: `$ty` and `$life` are its type
/// and lifetime-type enums.
macro_rules! session_spec {
    ($p:expr, $ty:ident, $life:ident) => {{
        let p = $p;
        crate::routes::session::SessionSpec {
            name: p.session_name.as_deref(),
            header: matches!(p.r#type, Some($ty::Header)),
            permanent: matches!(
                p.cookie_config.as_ref().and_then(|c| c.lifetime_type.as_ref()),
                Some($life::Permanent)
            ),
            absolute_timeout: p.absolute_timeout.as_deref(),
            idle_timeout: p.idle_timeout.is_some(),
        }
    }};
}

/// Session persistence: a cookie (default) or a header, named `sessionName` (default
/// `legate-session`); a `Permanent` cookie lives `absoluteTimeout`.
pub(crate) fn session(p: SessionSpec<'_>) -> Result<Session, Problem> {
    if p.idle_timeout {
        return Err(Problem::unsupported(
            "idleTimeout is not supported by Legate (Envoy's sessions have no idle expiry)",
        ));
    }
    let name = p.name.unwrap_or("legate-session").to_owned();
    if p.header {
        if p.absolute_timeout.is_some() || p.permanent {
            return Err(Problem::unsupported(
                "absoluteTimeout and cookieConfig apply to Cookie sessions only; a Header session lasts as long as clients send the header",
            ));
        }
        return Ok(Session::Header { name });
    }
    let ttl = match (p.absolute_timeout, p.permanent) {
        (Some(t), true) => Some(parse_duration(t).map_err(|e| Problem::unsupported(e).at("absoluteTimeout"))?),
        (None, true) => return Err(Problem::unsupported("a Permanent cookie needs absoluteTimeout")),
        (Some(_), false) => {
            return Err(Problem::unsupported(
                "absoluteTimeout on a Session cookie is not supported by Legate; use lifetimeType Permanent",
            ));
        }
        (None, false) => None,
    };
    Ok(Session::Cookie { name, ttl_s: ttl.map(|d| d.as_secs().max(1)) })
}
