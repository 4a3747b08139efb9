//! Where the fleet manager plugs in: after each translation, the controller hands it the
//! accepted Gateways with their IR and gets back, per Gateway, the addresses its fleet is
//! reachable on and whether it is ready. These are folded into the Gateway's status.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use legate_api::ProxyConfig;
use legate_api::conditions::types;
use legate_api::gateway::{Gateway, GatewayClass};
use legate_translator::conditions::Condition;
use legate_translator::ir::GatewayIr;
use legate_translator::status::Address;
use legate_translator::{ObjKey, Output};

/// One accepted Gateway.
#[derive(Clone, Debug)]
pub struct AcceptedGateway {
    pub key: ObjKey,
    pub gateway: Arc<Gateway>,
    pub ir: GatewayIr,
}

/// What the fleet manager is asked to make so.
#[derive(Clone, Debug, Default)]
pub struct FleetRequest {
    /// Whether this replica leads (only the leader creates or deletes objects).
    pub leader: bool,
    pub gateways: Vec<AcceptedGateway>,
    /// The GatewayClasses Legate accepted (their `parametersRef` may name a ProxyConfig).
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    pub proxy_configs: Vec<Arc<ProxyConfig>>,
}

/// How a Gateway's fleet is doing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetStatus {
    /// Addresses to publish in `status.addresses`, in place of the translator's (which, without
    /// `spec.addresses`, is only the `--listen-address` Envoy binds, not where clients reach
    /// the fleet): none while the fleet has no address, so that no client is sent to an
    /// address that does not serve. A fleet manager that honours `spec.addresses` echoes them.
    pub addresses: Vec<Address>,
    /// Whether the fleet can serve; when false, `Programmed` turns False with `reason`.
    pub ready: bool,
    /// The `Programmed` reason when not ready (e.g. `Pending`, `AddressNotAssigned`).
    pub reason: String,
    pub message: String,
}

/// Ensures the Envoy fleets of the accepted Gateways (Deployment, Service, ...) and deletes
/// those of Gateways that went away. Called after every translation, on every replica.
pub trait FleetManager: Send + Sync {
    /// Returns the status of each Gateway's fleet; Gateways left out keep the translator's status.
    fn ensure(&self, request: Arc<FleetRequest>) -> BoxFuture<'static, BTreeMap<ObjKey, FleetStatus>>;
}

/// No fleet: Envoys are run by someone else. Statuses stay as translated.
pub struct NoFleet;

impl FleetManager for NoFleet {
    fn ensure(&self, _request: Arc<FleetRequest>) -> BoxFuture<'static, BTreeMap<ObjKey, FleetStatus>> {
        Box::pin(async { BTreeMap::new() })
    }
}

/// Folds the fleets' state into the Gateways' status.
pub fn apply_fleet_status(out: &mut Output, fleet: &BTreeMap<ObjKey, FleetStatus>) {
    for (key, f) in fleet {
        let Some(st) = out.statuses.gateways.get_mut(key) else { continue };
        st.addresses = f.addresses.clone();
        if f.ready {
            continue;
        }
        for c in st.conditions.iter_mut().filter(|c| c.type_ == types::PROGRAMMED && c.is_true()) {
            *c = Condition::new(types::PROGRAMMED, false, f.reason.clone(), f.message.clone(), c.observed_generation);
        }
        out.statuses.parent_not_programmed(key);
    }
}
