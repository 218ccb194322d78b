//! ecs-agent: the Amazon ECS container agent, reimplemented in Rust.
//!
//! Rooms are named after ECS concepts (see `STYLE.md` in the shared folder): `config` reads the
//! official agent's configuration; `engine` will hold the pure task state machine; `app` wires
//! the process together (CLI, logging, exit codes).

pub mod app;
pub mod config;
pub mod control;
pub mod credentials;
pub mod endpoints;
pub mod engine;
pub mod failpoint;
pub mod images;
pub mod logs;
pub mod model;
pub mod runtime;
pub mod secrets;
pub mod state;
pub mod volumes;
