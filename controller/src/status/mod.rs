//! Statuses: rendering them as documents (`render`), writing them to the API server
//! (`writer`).

pub mod render;
pub mod writer;
