//! The shapes the agent works with: tasks and containers as ACS delivers them, their statuses,
//! and task definitions as `register-task-definition` takes them (for `ecs-agent local run`).
//!
//! Pure data and conversions; no I/O.

pub mod status;
pub mod task;
pub mod taskdef;

pub use status::{Health, Status};
pub use task::{
    Container, ContainerDependency, DependencyCondition, DockerConfig, MountPoint, PortMapping,
    Protocol, RoleCredentials, Task, Volume, VolumeFrom,
};
pub use taskdef::{task_from_definition, LocalRunOptions, TaskDefError, TaskDefErrors};
