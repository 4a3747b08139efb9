//! Canonical bytes of a protobuf message, for content hashing.
//!
//! prost encodes fields in a fixed order, except map fields: `envoy-types` stores them in
//! `HashMap`s, whose iteration order differs between processes (and between two equal maps in one
//! process). Hashing the plain encoding would give two versions to one config, so a restarted
//! server would churn Envoy. Here map entries are sorted (by their own canonical bytes) and `Any`
//! payloads are canonicalised recursively, guided by the descriptor set `envoy-types` ships.
//! Anything the descriptors do not describe is kept byte for byte.

use prost_reflect::{Kind, MessageDescriptor};

use legate_envoy_descriptors::pool;

const MAX_DEPTH: usize = 64;
const ANY: &str = "google.protobuf.Any";

/// The canonical form of the message `type_url` names (`type.googleapis.com/<full name>` or
/// the full name alone); the input unchanged when the type is unknown or the bytes do not parse.
pub(crate) fn canonical_bytes(type_url: &str, value: &[u8]) -> Vec<u8> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let Some(desc) = pool().get_message_by_name(name) else {
        return value.to_vec();
    };
    let mut out = Vec::with_capacity(value.len());
    match canonical(&desc, value, &mut out, 0) {
        Ok(()) => out,
        Err(()) => value.to_vec(),
    }
}

fn canonical(desc: &MessageDescriptor, mut buf: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    // Map entries, by field number, emitted sorted after the other fields.
    let mut maps: Vec<(u32, Vec<Vec<u8>>)> = Vec::new();
    let mut any_type_url: Option<String> = None;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| ())?;
        match key & 7 {
            0 => {
                let v = varint(&mut buf)?;
                put_varint(out, key);
                put_varint(out, v);
            }
            1 => copy_fixed(&mut buf, out, key, 8)?,
            5 => copy_fixed(&mut buf, out, key, 4)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| ())?;
                if buf.len() < len {
                    return Err(());
                }
                let (payload, rest) = buf.split_at(len);
                buf = rest;
                let field = desc.get_field(number);
                let sub = field.as_ref().and_then(|f| match f.kind() {
                    Kind::Message(m) => Some(m),
                    _ => None,
                });
                match (field.as_ref(), sub) {
                    (Some(f), Some(entry)) if f.is_map() => {
                        let mut e = Vec::with_capacity(payload.len());
                        canonical(&entry, payload, &mut e, depth + 1)?;
                        match maps.iter_mut().find(|(n, _)| *n == number) {
                            Some((_, entries)) => entries.push(e),
                            None => maps.push((number, vec![e])),
                        }
                    }
                    (_, Some(m)) => {
                        let mut inner = Vec::with_capacity(payload.len());
                        canonical(&m, payload, &mut inner, depth + 1)?;
                        put_len_delimited(out, key, &inner);
                    }
                    _ if desc.full_name() == ANY && number == 1 => {
                        any_type_url = Some(String::from_utf8_lossy(payload).into_owned());
                        put_len_delimited(out, key, payload);
                    }
                    _ if desc.full_name() == ANY && number == 2 => {
                        let inner = match &any_type_url {
                            Some(url) => canonical_bytes(url, payload),
                            None => payload.to_vec(),
                        };
                        put_len_delimited(out, key, &inner);
                    }
                    _ => put_len_delimited(out, key, payload),
                }
            }
            _ => return Err(()), // groups: not used by Envoy's API
        }
    }
    maps.sort_by_key(|(n, _)| *n);
    for (number, mut entries) in maps {
        entries.sort();
        let key = (u64::from(number) << 3) | 2;
        for e in entries {
            put_len_delimited(out, key, &e);
        }
    }
    Ok(())
}

fn varint(buf: &mut &[u8]) -> Result<u64, ()> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(())?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_delimited(out: &mut Vec<u8>, key: u64, payload: &[u8]) {
    put_varint(out, key);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn copy_fixed(buf: &mut &[u8], out: &mut Vec<u8>, key: u64, n: usize) -> Result<(), ()> {
    if buf.len() < n {
        return Err(());
    }
    put_varint(out, key);
    out.extend_from_slice(&buf[..n]);
    *buf = &buf[n..];
    Ok(())
}

#[cfg(test)]
mod tests;
