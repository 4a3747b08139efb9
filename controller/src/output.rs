//! Printing documents as a YAML stream or JSON.

use clap::ValueEnum;
use serde_json::Value;

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
            Format::Yaml => serde_norway::to_string(v).expect("JSON values serialize as YAML"),
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
