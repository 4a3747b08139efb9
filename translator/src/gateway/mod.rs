//! Gateway API semantics for GatewayClasses and Gateways: ownership, listener validation and
//! conflicts, route attachment.

pub mod attach;
pub mod class;
pub mod frontend_tls;
pub mod listeners;
pub mod tls;

pub use listeners::{GatewayState, ListenerState, Protocol};
