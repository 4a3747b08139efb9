//! Routes: the path shared by every route kind (parentRefs, backendRefs, ReferenceGrants), and
//! one small module per kind for what truly differs.

pub mod backends;
pub mod http;
