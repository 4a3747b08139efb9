//! Lease-based leader election (`coordination.k8s.io/v1` Lease). Every replica serves xDS; only
//! the leader writes status (and, later, fleet objects).
//!
//! A replica holds the lease while it renews it every `renew_every`; another takes it once
//! `renewTime + leaseDurationSeconds` has passed. Updates carry the lease's `resourceVersion`,
//! so two replicas racing for an expired lease cannot both win. A replica that cannot renew for
//! two thirds of the lease duration stops considering itself leader, before anyone may take
//! over. On shutdown the leader clears `holderIdentity` so that another replica takes over at
//! once. Expiry compares the holder's `renewTime` with the local clock: clocks are assumed to be
//! roughly in sync (as in any cluster), the two-thirds margin absorbs small skews.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

/// Who competes for which lease, and how.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This process's identity in the Lease ([`candidate_identity`]).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// Errors talking to the API server about the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {0}: {1}")]
    Api(String, #[source] kube::Error),
}

/// The Lease identity of this process: the replica's name and 8 hex digits unique to the process,
/// as client-go does (`<host>_<uuid>`). A process restarted in the same Pod is then a new
/// candidate: it does not take for its own a lease its dead predecessor held, and the other
/// replica takes over once that lease expires.
pub fn candidate_identity(replica: &str) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed = format!("{replica} {} {nanos}", std::process::id());
    format!("{replica}_{}", hex::encode(&Sha256::digest(seed.as_bytes())[..4]))
}

/// This replica's name: `POD_NAME`, else the host name.
pub fn default_identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME")
        && !p.is_empty()
    {
        return p;
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() { format!("legate-{}", std::process::id()) } else { name }
}

/// Runs the election until `shutdown` turns true; the returned receiver tells whether this
/// replica leads.
pub fn spawn(
    client: Client,
    cfg: LeaderConfig,
    shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let span = info_span!("leader", lease = %format!("{}/{}", cfg.namespace, cfg.lease_name), identity = %cfg.identity);
    let task = tokio::spawn(elect(client, cfg, tx, shutdown).instrument(span));
    (rx, task)
}

async fn elect(client: Client, cfg: LeaderConfig, tx: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renewed: Option<Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &cfg).await {
            Ok(true) => last_renewed = Some(Instant::now()),
            Ok(false) => last_renewed = None,
            Err(e) => warn!(error = %e, "lease update failed"),
        }
        // Step down well before another replica may take over (client-go's renew deadline).
        let leading = last_renewed.is_some_and(|t| t.elapsed() < cfg.lease_duration * 2 / 3);
        if *tx.borrow() != leading {
            info!(leading, "leadership changed");
            let _ = tx.send(leading);
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.renew_every) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    if *tx.borrow() {
        let _ = tx.send(false);
        if let Err(e) = release(&api, &cfg).await {
            debug!(error = %e, "releasing the lease failed");
        }
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One round: create, renew or take over the lease. Returns whether this replica holds it.
pub async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<bool, LeaseError> {
    let err = |e| LeaseError::Api(cfg.lease_name.clone(), e);
    let secs = i32::try_from(cfg.lease_duration.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await.map_err(err)? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(cfg.lease_name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(err(e)),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder != cfg.identity {
        let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(secs)));
        let expired = match &spec.renew_time {
            Some(t) => t.0.saturating_add(duration).is_ok_and(|end| end < jiff::Timestamp::now()),
            None => true,
        };
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        info!(previous = %holder, "taking over the lease");
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(secs);
    spec.renew_time = Some(now());
    match api.replace(&cfg.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(err(e)),
    }
}

async fn release(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<(), LeaseError> {
    let err = |e| LeaseError::Api(cfg.lease_name.clone(), e);
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await.map_err(err)? else { return Ok(()) };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(&cfg.identity) {
        return Ok(());
    }
    spec.holder_identity = None;
    api.replace(&cfg.lease_name, &PostParams::default(), &lease).await.map_err(err)?;
    Ok(())
}
