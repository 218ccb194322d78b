//! Per-task and per-container state the engine owns: known, desired and in-flight statuses,
//! Docker identity, exit code, health, reasons and timestamps. Pure data plus small helpers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::deps::{Dependency, Progress};
use super::resources::Binding;
use super::Millis;
use crate::model::{Health, Status, Task};

/// One container's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Last status handed to the reporter for this container.
    pub reported: Status,
    /// Last status ECS accepted for this container (what a restart must not send again).
    #[serde(default)]
    pub sent: Status,
    /// The container's restart policy, when enabled.
    pub restart: Option<RestartRule>,
    /// An exit was seen that the restart policy restarts: a start is due.
    pub restart_pending: bool,
    /// How many times the restart policy restarted the container.
    pub restart_count: u32,
}

/// When an exited container is started again in place (`restartPolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRule {
    /// Exit codes that do not cause a restart.
    pub ignored_exit_codes: Vec<i64>,
    /// The container must have run this long since its last start to be restarted.
    pub attempt_period: Duration,
}

/// ECS's default `restartAttemptPeriod`.
pub const DEFAULT_RESTART_ATTEMPT_PERIOD: Duration = Duration::from_secs(300);

impl RestartRule {
    /// The rule of an enabled policy.
    pub fn of(policy: &crate::model::task::RestartPolicy) -> Option<Self> {
        if policy.enabled != Some(true) {
            return None;
        }
        Some(RestartRule {
            ignored_exit_codes: policy.ignored_exit_codes.clone().unwrap_or_default(),
            attempt_period: policy
                .restart_attempt_period
                .filter(|&s| s >= 0)
                .map_or(DEFAULT_RESTART_ATTEMPT_PERIOD, |s| {
                    Duration::from_secs(s as u64)
                }),
        })
    }
}

impl ContainerState {
    /// Whether an exit with `exit_code` at `now` restarts the container in place.
    pub(super) fn restarts_after(&self, exit_code: Option<i64>, now: Millis) -> bool {
        let Some(rule) = &self.restart else {
            return false;
        };
        let code_ignored = exit_code.is_some_and(|c| rule.ignored_exit_codes.contains(&c));
        let ran_for = self.started_at.map_or(0, |s| now.saturating_sub(s));
        self.desired == Status::Running
            && self.known == Status::Running
            && !code_ignored
            && u128::from(ran_for) >= rule.attempt_period.as_millis()
    }

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Last status handed to the reporter for this task.
    pub reported: Status,
    /// Last status ECS accepted for this task.
    #[serde(default)]
    pub sent: Status,
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
