//! Per-task and per-container state the engine owns: known, desired and in-flight statuses,
//! Docker identity, exit code, health, reasons and timestamps. Pure data plus small helpers.

use std::time::Duration;

use super::deps::{Dependency, Progress};
use super::resources::Binding;
use super::Millis;
use crate::model::{Health, Status, Task};

/// One container's state.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub known: Status,
    pub desired: Status,
    /// The status a command is under way to reach, if any.
    pub in_flight: Option<Status>,
    /// Do not retry a failed command before this time.
    pub retry_at: Option<Millis>,
    pub docker_id: Option<String>,
    /// Random suffix of the Docker container name (`ecs-<family>-<rev>-<name>-<suffix>`).
    pub name_suffix: String,
    pub exit_code: Option<i64>,
    pub health: Health,
    /// Why the container stopped or failed, in the official vocabulary.
    pub reason: Option<String>,
    pub image_digest: Option<String>,
    pub bindings: Vec<Binding>,
    pub started_at: Option<Millis>,
    pub ever_created: bool,
    pub ever_started: bool,
    pub removed: bool,
    pub stop_timeout: Option<Duration>,
    pub start_timeout: Option<Duration>,
    pub deps: Vec<Dependency>,
    /// Last status reported for this container.
    pub reported: Status,
}

impl ContainerState {
    pub(super) fn progress(&self, now: Millis) -> Progress {
        Progress {
            known: self.known,
            desired: self.desired,
            exit_code: self.exit_code,
            health: self.health,
            running_for: self
                .started_at
                .filter(|_| self.known == Status::Running)
                .map(|t| now.saturating_sub(t)),
            start_timeout: self.start_timeout,
            ever_started: self.ever_started,
            ever_created: self.ever_created,
        }
    }

    /// Marks the container as wanting to stop for `reason` (first reason wins).
    pub(super) fn fail(&mut self, reason: String) {
        self.desired = Status::Stopped;
        self.reason.get_or_insert(reason);
    }

    /// Moves the known status forward (never backwards).
    pub(super) fn advance(&mut self, to: Status) -> bool {
        if to > self.known {
            self.known = to;
            true
        } else {
            false
        }
    }
}

/// One task's state.
#[derive(Debug, Clone)]
pub struct TaskState {
    pub task: Task,
    pub known: Status,
    pub desired: Status,
    pub containers: Vec<ContainerState>,
    /// Why the task stopped.
    pub reason: Option<String>,
    /// Resources are reserved (the task may progress).
    pub reserved: bool,
    /// Why the task is waiting for resources, while it is.
    pub waiting_for: Option<String>,
    pub pull_started_at: Option<Millis>,
    pub pull_stopped_at: Option<Millis>,
    pub execution_stopped_at: Option<Millis>,
    /// When the stopped task's containers are removed.
    pub cleanup_at: Option<Millis>,
    /// Last status reported for this task.
    pub reported: Status,
}

impl TaskState {
    pub fn arn(&self) -> &str {
        &self.task.arn
    }

    /// Index of the container with this Docker ID.
    pub fn container_by_docker_id(&self, id: &str) -> Option<usize> {
        self.containers
            .iter()
            .position(|c| c.docker_id.as_deref() == Some(id))
    }

    pub fn container_by_name(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.name == name)
    }

    /// Whether some container that depends on container `i` still has a live Docker container.
    pub(super) fn has_live_dependent(&self, i: usize) -> bool {
        self.containers.iter().any(|c| {
            c.deps.iter().any(|d| d.on == i) && c.docker_id.is_some() && c.known < Status::Stopped
        })
    }
}
