//! What both modes run on: the state served (objects in force, translation, statuses,
//! readiness), the admin server and the metrics.

pub mod admin;
pub mod metrics;
pub mod state;
