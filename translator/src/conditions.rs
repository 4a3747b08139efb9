//! Conditions as the translator computes them: no `lastTransitionTime` (that is stamped when a
//! status is rendered, see [`crate::render`]), so equal inputs give equal conditions.

use std::borrow::Cow;

use serde::Serialize;

/// A `metav1.Condition` without its transition time. Types and reasons are constants, held
/// without a copy of their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: Cow<'static, str>,
    pub status: Status,
    pub reason: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub observed_generation: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

impl Condition {
    pub fn new(
        type_: impl Into<Cow<'static, str>>,
        status: impl Into<Status>,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
        generation: i64,
    ) -> Self {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == Status::True
    }
}

/// Find a condition by type.
pub fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type is present and True.
pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    find(conds, type_).is_some_and(Condition::is_true)
}

/// What is wrong with (part of) an object: the reason of the condition it sets and a message
/// that names the field and tells the operator what to do. One type for every object and
/// condition, so a route, a listener and a backendRef report problems the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem { reason, message: message.into() }
    }

    /// A value Legate does not support (`UnsupportedValue`).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Problem::new(legate_api::conditions::reasons::UNSUPPORTED_VALUE, message)
    }

    /// The same problem, its message prefixed with where it is (`spec.rules[2]`, `filters[0]`).
    pub fn at(mut self, place: impl std::fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }

    /// The condition of `type_` this problem sets, with `status`.
    pub fn condition(&self, type_: &'static str, status: impl Into<Status>, generation: i64) -> Condition {
        Condition::new(type_, status, self.reason, self.message.clone(), generation)
    }
}
