//! What Legate's policy kinds share: `targetRefs` to objects in the policy's namespace, and a
//! status of one entry per ancestor (the Gateways a policy takes effect through), the shape of
//! Gateway API's `PolicyStatus`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An object in the policy's namespace that the policy attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// The target's API group: `gateway.networking.k8s.io` (Gateway, HTTPRoute, GRPCRoute),
    /// `""` (Service) or `gateway.legate.dev` (Backend).
    #[schemars(length(max = 253))]
    pub group: String,
    /// The target's kind.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The target's name (in the policy's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A Gateway's listener name, or a route's rule name; unset: the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}

/// What Legate observed about a policy: one entry per ancestor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The Gateways (or, for a target that does not exist, the target) the policy takes
    /// effect through, each with `Accepted` (reasons `Accepted`, `Conflicted`, `Invalid`,
    /// `TargetNotFound`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// The policy's status with respect to one ancestor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The ancestor (group, kind, namespace, name; sectionName when relevant).
    pub ancestor_ref: AncestorRef,
    /// The controller that wrote this entry.
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// An ancestor of a policy, as Gateway API's `ParentReference`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AncestorRef {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}
