//! The agent's local HTTP endpoints. Today: the task credentials endpoint with its audit log and
//! rate limit. Handlers read the credentials store; they never change task state.

pub mod audit;
pub mod credentials;
pub mod ratelimit;
