//! Stable Envoy resource names, derived from the IR's names. Unique within one Gateway's
//! snapshot, which is all Envoy sees.

/// Route configuration name for a socket, or for one HTTPS chain of it.
pub fn route_config(listener: &str, chain: Option<&str>) -> String {
    match chain {
        None => listener.to_string(),
        Some(c) => format!("{listener}/{c}"),
    }
}

/// Stat prefix for an HCM: Envoy stat names may not contain ':' cleanly, so map it.
pub fn stat_prefix(listener: &str) -> String {
    listener.replace([':', '/', '.'], "_")
}
