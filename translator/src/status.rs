//! The status the translator computes for every object it owns, before rendering (see
//! [`crate::render`] for the Kubernetes shape with transition times).

use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::conditions::{reasons, types};
use serde::Serialize;

use crate::conditions::Condition;
use crate::resources::ObjKey;
use crate::routes::RouteKey;

/// Statuses of all objects Legate owns, keyed for deterministic order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Statuses {
    pub gateway_classes: BTreeMap<String, GatewayClassStatus>,
    pub gateways: BTreeMap<ObjKey, GatewayStatus>,
    pub listener_sets: BTreeMap<ObjKey, ListenerSetStatus>,
    /// Routes of every kind (a persistent map: the translator keeps it between translations
    /// and changes only the routes a change touched, so a copy is O(1) and two translations'
    /// statuses compare in time proportional to what differs).
    pub routes: crate::resources::Map<RouteKey, Arc<RouteStatus>>,
    /// Backends (a persistent map, kept by the translator like `routes`).
    pub backends: crate::resources::Map<ObjKey, Arc<BackendStatus>>,
    pub backend_tls_policies: BTreeMap<ObjKey, PolicyStatus>,
    pub traffic_policies: BTreeMap<ObjKey, PolicyStatus>,
    pub rate_limit_policies: BTreeMap<ObjKey, PolicyStatus>,
    pub auth_policies: BTreeMap<ObjKey, PolicyStatus>,
}

impl Statuses {
    /// The status of the route of `kind` at `key`.
    pub fn route(&self, kind: legate_api::kinds::Kind, key: &ObjKey) -> Option<&Arc<RouteStatus>> {
        self.routes.get(&RouteKey::new(kind, key.clone()))
    }

    /// Turns `Programmed` False on the ListenerSets attached to the Gateway `gateway` whose own
    /// `Programmed` condition was turned False after translation (its fleet is not ready, its
    /// Envoys rejected the configuration): they are served by the same proxies.
    pub fn parent_not_programmed(&mut self, gateway: &ObjKey) {
        for s in self.listener_sets.values_mut().filter(|s| s.gateway == *gateway) {
            for c in s.conditions.iter_mut().filter(|c| c.type_ == types::PROGRAMMED && c.is_true()) {
                *c = Condition::new(
                    types::PROGRAMMED,
                    false,
                    reasons::PARENT_NOT_PROGRAMMED,
                    format!("Gateway {gateway} is not programmed"),
                    c.observed_generation,
                );
            }
        }
    }

    /// The status of the policy of `kind` at `key`.
    pub fn policy(&self, kind: legate_api::kinds::Kind, key: &ObjKey) -> Option<&PolicyStatus> {
        use legate_api::kinds::Kind;
        match kind {
            Kind::BackendTlsPolicy => self.backend_tls_policies.get(key),
            Kind::TrafficPolicy => self.traffic_policies.get(key),
            Kind::RateLimitPolicy => self.rate_limit_policies.get(key),
            Kind::AuthPolicy => self.auth_policies.get(key),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    pub conditions: Vec<Condition>,
    pub supported_features: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub addresses: Vec<Address>,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
    /// The number of ListenerSets attached (accepted); written when the Gateway allows some
    /// (`spec.allowedListeners`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<i32>,
}

/// A ListenerSet's status: its own conditions and one entry per listener, as a Gateway's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ListenerSetStatus {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
    /// The Gateway its `parentRef` names.
    #[serde(skip)]
    pub gateway: ObjKey,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Address {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: i32,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteGroupKind {
    pub group: String,
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteStatus {
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// A parentRef echoed into status, with group, kind and namespace written out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl ParentRef {
    /// A reference to the Gateway `gw` as a whole (a policy's ancestor).
    pub fn gateway(gw: &ObjKey) -> ParentRef {
        ParentRef {
            group: legate_api::gvk::GATEWAY_GROUP.into(),
            kind: legate_api::gvk::KIND_GATEWAY.into(),
            namespace: gw.namespace.to_string(),
            name: gw.name.to_string(),
            section_name: None,
            port: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BackendStatus {
    pub conditions: Vec<Condition>,
}

/// A policy's status: one entry per ancestor (the Gateways it takes effect through).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicyStatus {
    pub ancestors: Vec<PolicyAncestorStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}
