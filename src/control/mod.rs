//! The control plane: instance metadata, the ECS API (registration, poll endpoint discovery,
//! state-change reporting), and the ACS and TCS websocket sessions.
//!
//! Everything here talks to the network; the decisions it feeds into are the engine's.

pub mod acs;
pub mod api;
pub mod discover;
pub mod imds;
pub mod register;
pub mod reporter;
pub mod session;
pub mod sigv4;
pub mod tcs;
pub mod telemetry;
