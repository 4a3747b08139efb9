//! Where objects come from: files under a folder (`legate standalone`) or the Kubernetes API
//! (`legate controller`). Both decode each object once, with `load::decode`.

pub mod file;
pub mod kube;
