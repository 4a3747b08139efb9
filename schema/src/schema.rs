//! One node of a CRD's structural OpenAPI v3 schema, as the API server reads it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// A schema node. Only what validation, pruning and defaulting read; descriptions are dropped
/// when a CRD is compacted ([`crate::compact`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub format: Option<String>,
    #[serde(rename = "enum")]
    pub enumeration: Option<Vec<Value>>,
    pub pattern: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    #[serde(default)]
    pub exclusive_minimum: bool,
    #[serde(default)]
    pub exclusive_maximum: bool,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, Schema>,
    pub items: Option<Box<Schema>>,
    pub additional_properties: Option<Additional>,
    pub default: Option<Value>,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default)]
    pub all_of: Vec<Schema>,
    #[serde(default)]
    pub any_of: Vec<Schema>,
    #[serde(default)]
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    #[serde(rename = "x-kubernetes-int-or-string", default)]
    pub int_or_string: bool,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields", default)]
    pub preserve_unknown_fields: bool,
    #[serde(rename = "x-kubernetes-embedded-resource", default)]
    pub embedded_resource: bool,
    #[serde(rename = "x-kubernetes-list-type")]
    pub list_type: Option<String>,
    #[serde(rename = "x-kubernetes-list-map-keys", default)]
    pub list_map_keys: Vec<String>,
    #[serde(rename = "x-kubernetes-validations", default)]
    pub validations: Vec<Rule>,
    #[serde(skip)]
    pub(crate) regex: OnceLock<Result<regex::Regex, String>>,
    /// Outcomes of this node's CEL rules and its descendants' (see [`crate::cel`]), by the
    /// SHA-256 of the value checked.
    #[serde(skip)]
    pub(crate) verdicts: crate::cel::Verdicts,
}

/// `additionalProperties`: `false`, `true` or a schema for every value of a map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Additional {
    Allowed(bool),
    Schema(Box<Schema>),
}

/// One `x-kubernetes-validations` entry: a CEL rule.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub rule: String,
    pub message: Option<String>,
    pub message_expression: Option<String>,
    pub field_path: Option<String>,
    #[serde(skip)]
    pub(crate) program: OnceLock<Result<cel::Program, String>>,
    /// Its native form, if it has one (see `cel/native.rs`).
    #[serde(skip)]
    pub(crate) native: crate::cel::native::Slot,
}

impl Schema {
    /// The schema of a property of this object, if it names one (or every property is allowed
    /// by `additionalProperties: <schema>`).
    pub fn property(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name).or(match &self.additional_properties {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        })
    }
}
