//! Printing documents as a YAML stream or JSON.

use clap::ValueEnum;
use legate_translator::Output;
use legate_translator::xds::json::to_json;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }

    /// One document.
    pub fn one(self, v: &Value) -> String {
        match self {
            Format::Yaml => crate::yaml::to_string(v),
            Format::Json => serde_json::to_string_pretty(v).expect("JSON values serialize") + "\n",
        }
    }

    /// Several documents: a YAML stream (`---` between documents) or a JSON array.
    pub fn many<V: std::borrow::Borrow<Value>>(self, docs: &[V]) -> String {
        match self {
            Format::Yaml => docs.iter().map(|d| format!("---\n{}", self.one(d.borrow()))).collect(),
            Format::Json => self.one(&Value::Array(docs.iter().map(|d| d.borrow().clone()).collect())),
        }
    }
}

/// Per Gateway, its xDS resources in Envoy's JSON form. Private keys are redacted.
pub fn xds_documents(out: &Output) -> Vec<Value> {
    out.gateways
        .iter()
        .map(|g| {
            let x = &g.xds;
            let mut secrets: Vec<Value> = x.secrets.iter().map(to_json).collect();
            for s in &mut secrets {
                if let Some(k) = s.pointer_mut("/tls_certificate/private_key") {
                    *k = json!({ "inline_string": "[redacted]" });
                }
            }
            json!({
                "gateway": g.gateway.to_string(),
                "listeners": x.listeners.iter().map(to_json).collect::<Vec<_>>(),
                "route_configurations": x.route_configurations.iter().map(|r| to_json(&r.whole())).collect::<Vec<_>>(),
                "clusters": x.clusters.iter().map(|c| to_json(c.as_ref())).collect::<Vec<_>>(),
                "load_assignments": x.load_assignments.iter().map(|a| to_json(a.as_ref())).collect::<Vec<_>>(),
                "secrets": secrets,
            })
        })
        .collect()
}
