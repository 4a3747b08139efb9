//! Statuses: rendering them as documents (the Kubernetes writer is `k8s::status`).

pub mod render;
