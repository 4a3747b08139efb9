//! Envoy's rejections (NACKs) across controller replicas.
//!
//! Every replica serves xDS to whichever Envoys connect to it, but only the leader writes
//! statuses. So that a rejection seen by a follower's Envoys reaches the Gateway's `Programmed`
//! condition, each replica publishes the rejections outstanding among *its* Envoys (Gateway,
//! node id, type URL, rejected snapshot version, Envoy's message) in a ConfigMap of its own in
//! the controller's namespace, and every replica watches the others' ([`spawn`]):
//!
//! * The ConfigMap is named after the replica ([`config_map_name`]), labelled [`LABEL`], and,
//!   when the Pod's name and UID are known (downward API `POD_NAME`, `POD_UID`), owned by the
//!   replica's Pod without `blockOwnerDeletion`: the garbage collector removes it with the Pod.
//! * It is written (server-side apply) at start-up, which empties what a previous run of the
//!   same replica left, then only when its content changes, at most once per
//!   `--rejections-interval-ms` (changes meanwhile are coalesced): an ACK changes nothing. A
//!   replica that stops gracefully deletes it.
//! * Envoy's messages are cut to [`MESSAGE_MAX`] bytes and the document to [`DATA_BUDGET`]
//!   bytes (every Gateway keeps at least one rejection while it fits; the rest is counted in
//!   `omitted`), well under the 1 MiB a ConfigMap may hold.
//! * [`fold`]: a replica counts its own Envoys' rejections (from its ledger, fresher than its
//!   ConfigMap) plus every other replica's published rejection whose version is the one it
//!   serves to that Gateway. Versions are content hashes, the same on every replica for the
//!   same inputs, so a rejection of an older or newer configuration is ignored.
//!
//! A replica that dies without stopping leaves its ConfigMap until its Pod is deleted (or its
//! container restarts and empties it); its rejections count only while their version is still
//! the one served, and the same Envoys, reconnected to another replica, report them again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use legate_translator::ObjKey;
use legate_xds::SnapshotCache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::runtime::state::{EnvoyRejection, local_rejections, served_rejections, truncate_utf8};

/// The label (value `"true"`) of every replica's rejections ConfigMap; replicas watch those.
pub const LABEL: &str = "gateway.legate.dev/envoy-rejections";
/// The ConfigMap's data key holding the JSON document ([`Published`]).
pub const DATA_KEY: &str = "rejections.json";
/// The version of the document's format; a document of another format is ignored (and logged).
pub const FORMAT: u32 = 1;
/// The longest Envoy message published, in bytes (longer ones are cut, ending in `…`).
pub const MESSAGE_MAX: usize = 2048;
/// The most the document may take, in bytes (a ConfigMap holds at most 1 MiB in all).
pub const DATA_BUDGET: usize = 512 * 1024;
/// The field manager of the writes.
pub const FIELD_MANAGER: &str = "legate-rejections";
const NAME_PREFIX: &str = "legate-rejections-";

/// What a replica publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// [`FORMAT`].
    pub format: u32,
    /// The publishing replica's identity (for people reading the ConfigMap).
    pub replica: String,
    /// The rejections outstanding among the replica's Envoys, sorted.
    pub rejections: Vec<EnvoyRejection>,
    /// Rejections left out to stay within [`DATA_BUDGET`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why a replica's published rejections cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RejectionsError {
    #[error("no {DATA_KEY} key")]
    Missing,
    #[error("{DATA_KEY} does not decode: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("{DATA_KEY} has format {0}, this Legate reads format {FORMAT}")]
    Format(u32),
}

/// The ConfigMap name of the replica `identity`: `legate-rejections-<identity>`. An identity
/// that is not already lowercase letters, digits and inner `-` (a Pod name is) is lowercased,
/// other characters made `-`, cut to fit the 253 characters of a name, and suffixed with 8 hex digits of its SHA-256
/// so that names stay distinct.
pub fn config_map_name(identity: &str) -> String {
    let clean: String = identity
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    let room = 253 - NAME_PREFIX.len();
    let valid = clean == identity
        && clean.len() <= room
        && clean.starts_with(|c: char| c.is_ascii_alphanumeric())
        && clean.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return format!("{NAME_PREFIX}{clean}");
    }
    let hash = hex::encode(&Sha256::digest(identity.as_bytes())[..4]);
    let mut cut = clean.trim_matches('-').to_owned();
    cut.truncate(room - hash.len() - 1);
    let cut = cut.trim_end_matches('-');
    if cut.is_empty() { format!("{NAME_PREFIX}{hash}") } else { format!("{NAME_PREFIX}{cut}-{hash}") }
}

/// The document for `rejections` ([`encode_with_budget`] with [`DATA_BUDGET`]).
pub fn encode(replica: &str, rejections: &[EnvoyRejection]) -> String {
    encode_with_budget(replica, rejections, DATA_BUDGET)
}

/// The JSON document publishing `rejections`: messages cut to [`MESSAGE_MAX`] bytes; entries
/// kept while the document stays within `budget` bytes, first one per Gateway (so that every
/// Gateway with a rejection shows it), then the others in order; the rest counted in `omitted`.
pub fn encode_with_budget(replica: &str, rejections: &[EnvoyRejection], budget: usize) -> String {
    let mut all: Vec<EnvoyRejection> = rejections
        .iter()
        .map(|r| EnvoyRejection { message: truncate_utf8(&r.message, MESSAGE_MAX), ..r.clone() })
        .collect();
    all.sort();
    all.dedup();
    let envelope = |rejections: Vec<EnvoyRejection>, omitted: usize| Published {
        format: FORMAT,
        replica: replica.to_owned(),
        rejections,
        omitted,
    };
    // The envelope with a generous count of omitted entries, then each entry and its comma.
    let mut used = serde_json::to_string(&envelope(vec![], usize::MAX)).map_or(0, |s| s.len());
    let size = |r: &EnvoyRejection| serde_json::to_string(r).map_or(usize::MAX, |s| s.len() + 1);
    let mut keep = vec![false; all.len()];
    for first_of_gateway_only in [true, false] {
        for i in 0..all.len() {
            let first = i == 0 || all[i - 1].gateway != all[i].gateway;
            if keep[i] || (first_of_gateway_only && !first) {
                continue;
            }
            let s = size(&all[i]);
            if used.saturating_add(s) <= budget {
                keep[i] = true;
                used += s;
            }
        }
    }
    let omitted = keep.iter().filter(|k| !**k).count();
    let kept = all.into_iter().zip(keep).filter_map(|(r, k)| k.then_some(r)).collect();
    serde_json::to_string(&envelope(kept, omitted)).expect("rejections serialize")
}

/// Reads a published document.
pub fn decode(text: &str) -> Result<Published, RejectionsError> {
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_str(text).map_err(RejectionsError::Decode)?;
    if head.format != FORMAT {
        return Err(RejectionsError::Format(head.format));
    }
    serde_json::from_str(text).map_err(RejectionsError::Decode)
}

/// What the other replicas publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// Each other replica's rejections, by ConfigMap name.
    pub replicas: BTreeMap<String, Vec<EnvoyRejection>>,
    /// Whether the initial list of the ConfigMaps is complete.
    pub synced: bool,
}

/// The rejections a replica folds into the statuses it computes: its own Envoys' (`local`, from
/// its ledger) and every other replica's, those of the version served to their Gateway only
/// (`versions`, this replica's). Sorted; one per (Gateway, node, type URL).
pub fn fold(local: &[EnvoyRejection], remote: &Remote, versions: &BTreeMap<ObjKey, String>) -> Vec<EnvoyRejection> {
    served_rejections(local.iter().chain(remote.replicas.values().flatten()).cloned(), versions)
}

/// Where and how a replica publishes.
#[derive(Clone, Debug)]
pub struct RejectionsConfig {
    /// The controller's namespace.
    pub namespace: String,
    /// The replica's identity (its ConfigMap is named after it).
    pub identity: String,
    /// The replica's Pod (name, UID), the owner of its ConfigMap, when known.
    pub pod: Option<(String, String)>,
    /// At most one write per this interval.
    pub interval: Duration,
}

/// The ConfigMap publishing `rejections`.
pub fn config_map(cfg: &RejectionsConfig, rejections: &[EnvoyRejection]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&cfg.identity)),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(BTreeMap::from([
                (LABEL.to_owned(), "true".to_owned()),
                ("app.kubernetes.io/name".to_owned(), "legate".to_owned()),
                ("app.kubernetes.io/managed-by".to_owned(), "legate".to_owned()),
            ])),
            owner_references: cfg.pod.as_ref().map(|(name, uid)| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    name: name.clone(),
                    uid: uid.clone(),
                    // No blockOwnerDeletion: that would need `update` on pods/finalizers.
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), encode(&cfg.identity, rejections))])),
        ..Default::default()
    }
}

/// The rejections of a ConfigMap's document.
fn rejections_of(cm: &ConfigMap) -> Result<Vec<EnvoyRejection>, RejectionsError> {
    let text = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)).ok_or(RejectionsError::Missing)?;
    Ok(decode(text)?.rejections)
}

/// A running publisher and watcher.
pub struct Rejections {
    /// What the other replicas publish.
    pub remote: watch::Receiver<Arc<Remote>>,
    /// The publisher: on shutdown it deletes this replica's ConfigMap, then ends.
    pub publisher: JoinHandle<()>,
    /// The watcher of the other replicas' ConfigMaps; runs until aborted.
    pub watcher: JoinHandle<()>,
}

/// Starts publishing this replica's rejections (from `cache`'s ledger) and watching the others'.
pub fn spawn(
    client: &Client,
    cfg: RejectionsConfig,
    cache: SnapshotCache,
    shutdown: watch::Receiver<bool>,
) -> Rejections {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cfg.namespace);
    let name = config_map_name(&cfg.identity);
    let (tx, remote) = watch::channel(Arc::new(Remote::default()));
    let span = info_span!("rejections", configmap = %format!("{}/{name}", cfg.namespace));
    let watcher = tokio::spawn(watch_others(api.clone(), name, tx).instrument(span.clone()));
    let publisher = tokio::spawn(publish(api, cfg, cache, shutdown).instrument(span));
    Rejections { remote, publisher, watcher }
}

async fn publish(
    api: Api<ConfigMap>,
    cfg: RejectionsConfig,
    cache: SnapshotCache,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = config_map_name(&cfg.identity);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut ledger = cache.subscribe_ledger();
    // What the API server holds; unknown at start-up, so the first round writes (and so empties
    // what a previous run of this replica left).
    let mut published: Option<Vec<EnvoyRejection>> = None;
    let mut last_error: Option<String> = None;
    let mut wait = cfg.interval;
    loop {
        ledger.borrow_and_update();
        let current = local_rejections(&cache);
        if published.as_ref() != Some(&current) {
            match api.patch(&name, &params, &Patch::Apply(config_map(&cfg, &current))).await {
                Ok(_) => {
                    info!(rejections = current.len(), "published this replica's Envoy rejections");
                    published = Some(current);
                    last_error = None;
                    wait = cfg.interval;
                }
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        warn!(error = %e, "cannot publish this replica's Envoy rejections; retrying");
                    }
                    last_error = Some(e);
                    wait = (wait * 2).min(Duration::from_secs(30)).max(cfg.interval);
                }
            }
            // At most one write per interval: what changes meanwhile goes into the next one.
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        tokio::select! {
            r = ledger.changed() => if r.is_err() { break },
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // Stopping: this replica serves no Envoy any more.
    match tokio::time::timeout(Duration::from_secs(5), api.delete(&name, &DeleteParams::default())).await {
        Ok(Ok(_)) => debug!("deleted this replica's rejections ConfigMap"),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
        Ok(Err(e)) => debug!(error = %e, "deleting this replica's rejections ConfigMap failed"),
        Err(_) => debug!("deleting this replica's rejections ConfigMap timed out"),
    }
}

/// Watches the labelled ConfigMaps of the namespace but `own`, into `tx`.
async fn watch_others(api: Api<ConfigMap>, own: String, tx: watch::Sender<Arc<Remote>>) {
    let config = watcher::Config::default().labels(&format!("{LABEL}=true"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut listing: Option<BTreeMap<String, Vec<EnvoyRejection>>> = None;
    let mut last_error: Option<String> = None;
    // Documents that do not decode, logged once per ConfigMap and error.
    let mut bad: BTreeMap<String, String> = BTreeMap::new();
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(ev) => {
                if last_error.take().is_some() {
                    debug!("watch recovered");
                }
                ev
            }
            Err(e) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    warn!(error = %e, "watching the replicas' rejections failed; retrying with backoff");
                }
                last_error = Some(e);
                continue;
            }
        };
        match ev {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(cm) => {
                if let Some((name, r)) = read(&cm, &own, &mut bad) {
                    listing.get_or_insert_default().insert(name, r);
                }
            }
            Event::InitDone => {
                let replicas = listing.take().unwrap_or_default();
                tx.send_if_modified(|cur| {
                    let new = Remote { replicas, synced: true };
                    if **cur == new {
                        return false;
                    }
                    *cur = Arc::new(new);
                    true
                });
            }
            Event::Apply(cm) => {
                if let Some((name, r)) = read(&cm, &own, &mut bad) {
                    tx.send_if_modified(|cur| {
                        if cur.replicas.get(&name) == Some(&r) {
                            return false;
                        }
                        Arc::make_mut(cur).replicas.insert(name, r);
                        true
                    });
                }
            }
            Event::Delete(cm) => {
                let name = cm.metadata.name.unwrap_or_default();
                bad.remove(&name);
                tx.send_if_modified(|cur| Arc::make_mut(cur).replicas.remove(&name).is_some());
            }
        }
    }
}

/// A watched ConfigMap's name and rejections; None for this replica's own. A document that
/// does not decode counts as no rejection (logged once per ConfigMap and error, in `bad`).
fn read(cm: &ConfigMap, own: &str, bad: &mut BTreeMap<String, String>) -> Option<(String, Vec<EnvoyRejection>)> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    if name == own {
        return None;
    }
    let rejections = match rejections_of(cm) {
        Ok(r) => {
            bad.remove(&name);
            r
        }
        Err(e) => {
            let e = e.to_string();
            if bad.get(&name) != Some(&e) {
                warn!(configmap = %name, error = %e, "ignoring another replica's rejections");
            }
            bad.insert(name.clone(), e);
            vec![]
        }
    };
    Some((name, rejections))
}

#[cfg(test)]
mod tests;
