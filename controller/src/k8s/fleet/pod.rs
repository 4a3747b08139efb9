//! The Envoy Deployment of a Gateway.
//!
//! * Envoy runs as `envoy -c /etc/envoy/bootstrap.yaml --service-node $(POD_NAME) --log-level L
//!   --drain-time-s N --drain-strategy immediate`: the node id is the pod name (downward API),
//!   the node cluster `<ns>/<name>` comes from the bootstrap.
//! * Non-root (uid 65532), read-only root file system, no capabilities, no privilege
//!   escalation, `RuntimeDefault` seccomp. Gateway listeners below 1024 bind thanks to the safe
//!   sysctl `net.ipv4.ip_unprivileged_port_start=0` (pod level; allowed by default since
//!   Kubernetes 1.22), so ports need no remapping.
//! * Readiness: `GET /ready` on port [`READY_PORT`], a static listener in the bootstrap (the
//!   admin interface stays on loopback). Envoy opens it only once its first xDS config is in,
//!   and it answers 503 once Envoy fails health checks.
//! * Termination, without any shell, `curl` or `wget` in the image (distroless-safe): a
//!   `preStop` hook of kind `sleep` (kubelet-native, Kubernetes ≥ 1.30) keeps Envoy serving for
//!   `drainSeconds` while the terminating pod is taken out of the Service's endpoints and load
//!   balancers stop sending new connections; then the kubelet sends SIGTERM and Envoy exits.
//!   `terminationGracePeriodSeconds` is `drainSeconds + 5`. `--drain-time-s` governs the drain of
//!   listeners that xDS removes or changes.
//! * Rolling updates never take a ready pod away before its replacement is ready
//!   (`maxUnavailable: 0`).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, ServicePort, SleepAction, Sysctl, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use legate_api::ProxyConfigSpec;
use legate_api::proxy_config::{DEFAULT_DRAIN_SECONDS, DEFAULT_ENVOY_IMAGE, DEFAULT_REPLICAS};

use super::{CONFIG_HASH_ANNOTATION, Meta, selector_labels};
use crate::k8s::pki::client_secret_name;

/// Envoy's admin port, on 127.0.0.1 only.
pub const ADMIN_PORT: u16 = 19000;
/// The port of the static `legate-ready` listener (`GET /ready`).
pub const READY_PORT: u16 = 19001;
/// Where the bootstrap ConfigMap is mounted.
pub const BOOTSTRAP_DIR: &str = "/etc/envoy";
/// The bootstrap's key in the ConfigMap and file name in [`BOOTSTRAP_DIR`].
pub const BOOTSTRAP_FILE: &str = "bootstrap.yaml";
/// Where the xDS client certificate Secret is mounted.
pub const XDS_CERT_DIR: &str = "/etc/legate/xds";
/// The user and group Envoy runs as.
const UID: i64 = 65532;
/// Envoy's default log level in the fleet.
const DEFAULT_LOG_LEVEL: &str = "warning";

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(true), ..Default::default() }
}

fn container(proxy: &ProxyConfigSpec, ports: &[ServicePort], drain: i32) -> Container {
    let mut container_ports: Vec<ContainerPort> = ports
        .iter()
        .map(|p| ContainerPort {
            name: p.name.clone(),
            container_port: p.port,
            protocol: p.protocol.clone(),
            ..Default::default()
        })
        .collect();
    container_ports.push(ContainerPort {
        name: Some("ready".into()),
        container_port: i32::from(READY_PORT),
        protocol: Some("TCP".into()),
        ..Default::default()
    });
    let args = [
        "-c",
        &format!("{BOOTSTRAP_DIR}/{BOOTSTRAP_FILE}"),
        "--service-node",
        "$(POD_NAME)",
        "--log-level",
        proxy.log_level.as_deref().unwrap_or(DEFAULT_LOG_LEVEL),
        "--drain-time-s",
        &drain.to_string(),
        "--drain-strategy",
        "immediate",
    ];
    Container {
        name: "envoy".into(),
        image: Some(proxy.image.clone().unwrap_or_else(|| DEFAULT_ENVOY_IMAGE.into())),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["envoy".into()]),
        args: Some(args.iter().map(|s| s.to_string()).collect()),
        env: Some(vec![
            env_from_field("POD_NAME", "metadata.name"),
            env_from_field("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(legate_xds::bootstrap::READY_PATH.into()),
                port: IntOrString::Int(i32::from(READY_PORT)),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(1),
            failure_threshold: Some(2),
            ..Default::default()
        }),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: i64::from(drain) }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: proxy.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![mount("bootstrap", BOOTSTRAP_DIR), mount("xds-client-cert", XDS_CERT_DIR)]),
        ..Default::default()
    }
}

/// The Deployment (see the module docs).
pub(super) fn deployment(
    meta: &Meta<'_>,
    name: &str,
    proxy: &ProxyConfigSpec,
    ports: &[ServicePort],
    config_hash: &str,
) -> Deployment {
    let drain = proxy.drain_seconds.unwrap_or(DEFAULT_DRAIN_SECONDS).max(0);
    let mut pod_annotations = meta.annotations.clone();
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    let pod = PodSpec {
        service_account_name: Some(name.into()),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(i64::from(drain) + 5),
        node_selector: proxy.node_selector.clone().filter(|s| !s.is_empty()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            fs_group: Some(UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            sysctls: Some(vec![Sysctl { name: "net.ipv4.ip_unprivileged_port_start".into(), value: "0".into() }]),
            ..Default::default()
        }),
        containers: vec![container(proxy, ports, drain)],
        volumes: Some(vec![
            Volume {
                name: "bootstrap".into(),
                config_map: Some(ConfigMapVolumeSource { name: name.into(), ..Default::default() }),
                ..Default::default()
            },
            Volume {
                name: "xds-client-cert".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(client_secret_name(meta.gateway)),
                    default_mode: Some(0o440),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Deployment {
        metadata: meta.of(name.into()),
        spec: Some(DeploymentSpec {
            replicas: Some(proxy.replicas.unwrap_or(DEFAULT_REPLICAS)),
            selector: LabelSelector { match_labels: Some(selector_labels(meta.gateway)), ..Default::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta.labels.clone()),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
