//! The string formats the API server enforces that Legate's CRDs use (others, like `int32`,
//! are not enforced on strings, as in the API server).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the string should have been, when it is not of format `format`.
pub(crate) fn violates(format: &str, s: &str) -> Option<&'static str> {
    let ok = match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "hostname" => hostname(s),
        "uuid" => uuid(s),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match format {
        "ipv4" => "an IPv4 address",
        "ipv6" => "an IPv6 address",
        "cidr" => "a CIDR (address/prefix length)",
        "date-time" | "datetime" => "an RFC 3339 date-time",
        "hostname" => "a hostname",
        _ => "a UUID",
    })
}

fn cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else { return false };
    let Ok(len) = len.parse::<u8>() else { return false };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => len <= 32,
        Ok(IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

fn hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}
