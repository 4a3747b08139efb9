//! The controller's RBAC, generated from one table of rules ([`RULES`]) so that `config/rbac/` and
//! the Helm chart cannot drift from each other.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The name of the ServiceAccount, ClusterRole, Role and bindings.
pub const NAME: &str = "legate";
/// The namespace `config/rbac/` is generated for (the chart uses its release namespace).
pub const DEFAULT_NAMESPACE: &str = "legate-system";

const READ: &[&str] = &["get", "list", "watch"];
/// The status writer reads the `/status` subresource before it merge-patches it.
const STATUS: &[&str] = &["get", "update", "patch"];
const MANAGE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete"];

/// Where a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (ClusterRole).
    Cluster,
    /// The controller's own namespace (Role).
    ControllerNamespace,
}

/// One row of the table: verbs on resources of one API group.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub scope: Scope,
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Why the controller needs it.
    pub why: &'static str,
}

/// Everything the controller may do, and nothing more.
pub const RULES: &[Rule] = &[
    Rule {
        scope: Scope::Cluster,
        group: "gateway.networking.k8s.io",
        resources: &[
            "backendtlspolicies",
            "gatewayclasses",
            "gateways",
            "grpcroutes",
            "httproutes",
            "listenersets",
            "referencegrants",
            "tcproutes",
            "tlsroutes",
            "udproutes",
        ],
        verbs: READ,
        why: "the Gateway API objects it translates",
    },
    Rule {
        scope: Scope::Cluster,
        group: "gateway.networking.k8s.io",
        resources: &[
            "backendtlspolicies/status",
            "gatewayclasses/status",
            "gateways/status",
            "grpcroutes/status",
            "httproutes/status",
            "listenersets/status",
            "tcproutes/status",
            "tlsroutes/status",
            "udproutes/status",
        ],
        verbs: STATUS,
        why: "their status conditions",
    },
    Rule {
        scope: Scope::Cluster,
        group: "gateway.networking.k8s.io",
        resources: &["gateways/finalizers"],
        verbs: &["update"],
        why: "fleet objects are owned by their Gateway with blockOwnerDeletion, which needs this where \
              the OwnerReferencesPermissionEnforcement admission plugin is on",
    },
    Rule {
        scope: Scope::Cluster,
        group: "gateway.legate.dev",
        resources: &["backends", "proxyconfigs", "trafficpolicies", "ratelimitpolicies", "authpolicies"],
        verbs: READ,
        why: "Legate's own kinds",
    },
    Rule {
        scope: Scope::Cluster,
        group: "gateway.legate.dev",
        resources: &["backends/status", "trafficpolicies/status", "ratelimitpolicies/status", "authpolicies/status"],
        verbs: &["get", "patch"],
        why: "Backend and policy status",
    },
    Rule {
        scope: Scope::Cluster,
        group: "",
        resources: &["namespaces"],
        verbs: READ,
        why: "allowedRoutes namespace selectors",
    },
    Rule {
        scope: Scope::Cluster,
        group: "",
        resources: &["configmaps", "secrets", "serviceaccounts", "services"],
        verbs: MANAGE,
        why: "backend Services, certificate Secrets, CA ConfigMaps; the Envoy fleet's objects and xDS certificates",
    },
    Rule {
        scope: Scope::Cluster,
        group: "discovery.k8s.io",
        resources: &["endpointslices"],
        verbs: READ,
        why: "backend endpoints",
    },
    Rule {
        scope: Scope::Cluster,
        group: "apps",
        resources: &["deployments"],
        verbs: MANAGE,
        why: "the Envoy fleet of each Gateway",
    },
    Rule {
        scope: Scope::Cluster,
        group: "",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "events (core API)",
    },
    Rule {
        scope: Scope::Cluster,
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "events (events.k8s.io API, as kube-runtime's recorder writes them)",
    },
    Rule {
        scope: Scope::ControllerNamespace,
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "list", "watch", "create", "update", "patch"],
        why: "leader election",
    },
    Rule {
        scope: Scope::ControllerNamespace,
        group: "",
        resources: &["configmaps"],
        // Server-side apply of a missing object is authorized as `create`.
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "each replica publishes the rejections (NACKs) of the Envoys connected to it in a ConfigMap \
              named after it, and watches the other replicas' (also granted cluster-wide for the Envoy \
              fleets; stated here so that it does not depend on them)",
    },
];

/// The rules of one scope, as Kubernetes PolicyRules.
pub fn policy_rules(scope: Scope) -> Vec<PolicyRule> {
    RULES
        .iter()
        .filter(|r| r.scope == scope)
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.to_string()]),
            resources: Some(r.resources.iter().map(|s| s.to_string()).collect()),
            verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(super::labels()),
        ..Default::default()
    }
}

fn subject(namespace: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: NAME.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }]
}

fn role_ref(kind: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: kind.into(), name: NAME.into() }
}

/// The ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding, for a controller
/// running in `namespace`, as JSON values (with apiVersion and kind).
pub fn objects(namespace: &str) -> Vec<Value> {
    let ns = Some(namespace);
    vec![
        super::to_value(&ServiceAccount { metadata: meta(NAME, ns), ..Default::default() }),
        super::to_value(&ClusterRole {
            metadata: meta(NAME, None),
            rules: Some(policy_rules(Scope::Cluster)),
            ..Default::default()
        }),
        super::to_value(&ClusterRoleBinding {
            metadata: meta(NAME, None),
            role_ref: role_ref("ClusterRole"),
            subjects: Some(subject(namespace)),
        }),
        super::to_value(&Role { metadata: meta(NAME, ns), rules: Some(policy_rules(Scope::ControllerNamespace)) }),
        super::to_value(&RoleBinding {
            metadata: meta(NAME, ns),
            role_ref: role_ref("Role"),
            subjects: Some(subject(namespace)),
        }),
    ]
}

/// [`objects`] as a YAML stream.
pub fn stream(namespace: &str) -> String {
    super::yaml_stream(&objects(namespace))
}
