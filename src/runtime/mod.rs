//! Drives engine commands against Docker (bollard): the driver loop that owns the engine, the
//! Docker operations with the agent's policies, create requests and container names.

pub mod cgroup;
mod container_inputs;
pub mod create;
pub mod docker;
pub mod driver;
pub mod names;
mod recovery;
mod volumes;

pub use docker::{DockerRuntime, DockerSettings};
pub use driver::{Driver, DriverHandle, DriverSettings, Snapshot};
