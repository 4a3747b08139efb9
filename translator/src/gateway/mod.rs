//! Gateway API semantics for GatewayClasses, Gateways and ListenerSets: ownership, listener
//! validation and conflicts, route attachment.

pub mod attach;
pub mod class;
pub mod frontend_tls;
pub mod listener_sets;
pub mod listeners;
pub mod tls;

pub use listener_sets::SetState;
pub use listeners::{GatewayState, ListenerState, Protocol};
