//! A route configuration held as its own fields plus shared virtual hosts, so that a change of
//! one virtual host costs that virtual host: each virtual host is encoded and hashed once (a
//! virtual host passed again as the same `Arc` is not even encoded again; one of the same name
//! and bytes is not hashed again), the route configuration's content hash is
//! composed of its parts' hashes, its whole encoding is made only for clients that ask for it
//! whole (SotW), and each virtual host's VHDS resource (Delta) is made once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::canonical::canonical_bytes;
use crate::resource::{ROUTE_TYPE, Resource, ResourceType, VIRTUAL_HOST_TYPE};

/// `RouteConfiguration.virtual_hosts`: field 2, length-delimited.
const VIRTUAL_HOSTS_KEY: u64 = (2 << 3) | 2;
/// `RouteConfiguration.name` and `VirtualHost.name`: field 1, length-delimited.
const NAME_KEY: u64 = (1 << 3) | 2;

/// A route configuration: its own fields and its virtual hosts.
#[derive(Debug)]
pub(crate) struct RouteParts {
    /// The route configuration without its virtual hosts.
    pub header: RouteConfiguration,
    header_bytes: Vec<u8>,
    pub vhosts: Vec<Arc<VhostPart>>,
    hash: String,
}

/// One virtual host of a route configuration, encoded, with its content hash.
#[derive(Debug)]
pub(crate) struct VhostPart {
    pub vh: Arc<VirtualHost>,
    bytes: Vec<u8>,
    hash: [u8; 32],
    /// Its VHDS resource under the route configuration's name, made on first use.
    served: OnceLock<Resource>,
}

impl VhostPart {
    fn new(vh: Arc<VirtualHost>, bytes: Vec<u8>) -> Self {
        let hash = Sha256::digest(canonical_bytes(VIRTUAL_HOST_TYPE, &bytes)).into();
        VhostPart { vh, bytes, hash, served: OnceLock::new() }
    }

    /// The VHDS resource of this virtual host in route configuration `rc`: named
    /// `<rc>/<first domain>`, with that name as its `name` too (Envoy keys virtual hosts by it).
    pub fn served(&self, rc: &str) -> &Resource {
        self.served.get_or_init(|| {
            let host = self.vh.domains.first().map(String::as_str).unwrap_or_default();
            let name = format!("{rc}/{host}");
            let mut value = Vec::with_capacity(self.bytes.len() + rc.len() + 1);
            put_len_delimited(&mut value, NAME_KEY, name.as_bytes());
            value.extend_from_slice(after_name(&self.bytes));
            Resource::build(ResourceType::VirtualHost, name, Any { type_url: VIRTUAL_HOST_TYPE.into(), value }, vec![])
        })
    }
}

impl RouteParts {
    /// The parts of a route configuration; `header`'s own virtual hosts are ignored. Virtual
    /// hosts that `prev` holds as the very same `Arc` are reused as they are.
    pub fn new(mut header: RouteConfiguration, vhosts: &[Arc<VirtualHost>], prev: Option<&RouteParts>) -> Self {
        header.virtual_hosts.clear();
        let prev = prev.map(|p| p.vhosts.as_slice()).unwrap_or_default();
        let by_ptr: HashMap<*const VirtualHost, &Arc<VhostPart>> =
            prev.iter().map(|v| (Arc::as_ptr(&v.vh), v)).collect();
        let mut by_name: HashMap<&str, &Arc<VhostPart>> = HashMap::new();
        for v in prev {
            by_name.entry(v.vh.name.as_str()).or_insert(v);
        }
        let vhosts: Vec<Arc<VhostPart>> = vhosts
            .iter()
            .map(|vh| {
                if let Some(part) = by_ptr.get(&Arc::as_ptr(vh)) {
                    return Arc::clone(part);
                }
                // Not the same Arc: the same bytes are the same part all the same.
                let bytes = vh.encode_to_vec();
                match by_name.get(vh.name.as_str()).filter(|p| p.bytes == bytes) {
                    Some(part) => Arc::clone(part),
                    None => Arc::new(VhostPart::new(vh.clone(), bytes)),
                }
            })
            .collect();
        let header_bytes = header.encode_to_vec();
        let mut h = Sha256::new();
        h.update(b"legate route configuration parts v1");
        h.update(Sha256::digest(canonical_bytes(ROUTE_TYPE, &header_bytes)));
        h.update((vhosts.len() as u64).to_be_bytes());
        for v in &vhosts {
            h.update(v.hash);
        }
        RouteParts { header, header_bytes, vhosts, hash: hex::encode(h.finalize()) }
    }

    /// The content hash: of the route configuration's own fields' and each virtual host's
    /// canonical hash, in order.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The whole route configuration's encoding, as prost would encode it (the name, then the
    /// virtual hosts, then the other fields), made of the encoded parts.
    pub fn encode_whole(&self) -> Vec<u8> {
        let len = self.header_bytes.len() + self.vhosts.iter().map(|v| v.bytes.len() + 10).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        let rest = after_name(&self.header_bytes);
        out.extend_from_slice(&self.header_bytes[..self.header_bytes.len() - rest.len()]);
        for v in &self.vhosts {
            put_len_delimited(&mut out, VIRTUAL_HOSTS_KEY, &v.bytes);
        }
        out.extend_from_slice(rest);
        out
    }

    /// The VHDS form: the route configuration without virtual hosts (with `vhds` over ADS) and
    /// one resource per virtual host; None when it is to be served whole (it uses `vhds`
    /// already, has no virtual host, or a virtual host has no usable unique first domain).
    pub fn split(&self, prev: Option<&Resource>) -> Option<(Resource, Vec<Resource>)> {
        if self.header.vhds.is_some() || self.vhosts.is_empty() {
            return None;
        }
        let mut seen = BTreeSet::new();
        for v in &self.vhosts {
            let host = v.vh.domains.first()?;
            if host.is_empty() || host.contains('/') || !seen.insert(host.as_str()) {
                return None;
            }
        }
        let name = &self.header.name;
        let stripped = RouteConfiguration { vhds: Some(crate::vhds::vhds_over_ads()), ..self.header.clone() };
        let rc = Resource::from_message_reusing(&stripped, prev).ok()?;
        Some((rc, self.vhosts.iter().map(|v| v.served(name).clone()).collect()))
    }
}

/// What follows a leading `name` field (field 1) in an encoded message; all of it when the
/// message does not start with one (an empty name is not encoded).
fn after_name(bytes: &[u8]) -> &[u8] {
    let mut buf = bytes;
    let Some(key) = varint(&mut buf) else { return bytes };
    if key != NAME_KEY {
        return bytes;
    }
    match varint(&mut buf).and_then(|len| usize::try_from(len).ok()) {
        Some(len) if len <= buf.len() => &buf[len..],
        _ => bytes,
    }
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn put_len_delimited(out: &mut Vec<u8>, key: u64, payload: &[u8]) {
    prost::encoding::encode_varint(key, out);
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests;
