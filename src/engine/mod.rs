//! The task and container state machine, sans I/O.
//!
//! Inputs (a task and its desired status, command results, Docker events, timer ticks) go in
//! through [`Engine::handle`]; commands (pull, create, start, stop, remove, report, wake-at) come
//! out. The caller (`runtime`) carries the commands out against Docker and feeds their results
//! back. Time is passed in (`now`, Unix milliseconds) and randomness comes from a seeded
//! generator, so tests are deterministic.
//!
//! This module must not import tokio, bollard, any aws-sdk crate or do I/O of any kind:
//! `tests/engine_is_pure.rs` enforces it.
//!
//! Known limits: restart policies, MANIFEST_PULLED (digest resolution before pull) and task
//! resources (secrets, cgroups) are not modelled yet.

pub mod deps;
mod reconcile;
pub mod resources;
mod restore;
pub mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::{Health, Status, Task};
pub use resources::{Binding, HostCapacity};
pub use state::{ContainerState, TaskState};

/// Unix time in milliseconds, as the caller's clock says.
pub type Millis = u64;

/// Engine settings, from the agent configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ECS_CONTAINER_STOP_TIMEOUT`, for containers without their own `stopTimeout`.
    pub stop_timeout: Duration,
    /// `ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT`.
    pub pull_upfront: bool,
    /// `ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION`.
    pub cleanup_wait: Duration,
    /// `ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER`.
    pub cleanup_jitter: Duration,
    /// Wait before retrying a stop that failed.
    pub stop_retry: Duration,
    pub capacity: HostCapacity,
}

/// Something that happened, for the engine to act on.
#[derive(Debug, Clone)]
pub enum Input {
    /// A task to run (or, if known, its new desired status).
    AddTask(Box<Task>),
    /// A new desired status for a known task (ACS or Ctrl-C).
    Desired { task_arn: String, status: Status },
    /// A command finished.
    Result {
        task_arn: String,
        container: String,
        outcome: Outcome,
    },
    /// Docker reported something about a container.
    Docker {
        docker_id: String,
        event: DockerEvent,
    },
    /// ECS accepted a state change (task status, when it was a task change, and the container
    /// changes that rode along): a restarted agent does not send these again.
    Sent {
        task_arn: String,
        status: Option<Status>,
        containers: Vec<(String, Status)>,
    },
    /// Time passed.
    Tick,
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pulled {
        image_digest: Option<String>,
    },
    /// The image cannot be used; `reason` starts `CannotPullContainerError: `.
    PullFailed {
        reason: String,
    },
    Created {
        docker_id: String,
    },
    /// `reason` starts `CannotCreateContainerError: `.
    CreateFailed {
        reason: String,
    },
    Started,
    /// `reason` starts `CannotStartContainerError: `.
    StartFailed {
        reason: String,
    },
    Stopped {
        exit_code: Option<i64>,
    },
    /// Docker did not stop it this time; the engine retries.
    StopFailed {
        reason: String,
    },
    Removed,
}

/// A Docker container event.
#[derive(Debug, Clone, PartialEq)]
pub enum DockerEvent {
    Started,
    Died { exit_code: Option<i64> },
    Health(Health),
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Pull {
        task_arn: String,
        container: String,
        image: String,
    },
    Create {
        task_arn: String,
        container: String,
        name_suffix: String,
        bindings: Vec<Binding>,
    },
    Start {
        task_arn: String,
        container: String,
        docker_id: String,
    },
    Stop {
        task_arn: String,
        container: String,
        docker_id: String,
        timeout: Duration,
    },
    Remove {
        task_arn: String,
        container: String,
        docker_id: String,
    },
    /// Every container is removed: release the task's volumes; the engine forgot the task.
    TaskRemoved {
        task_arn: String,
        /// The task as it was, for its volumes and cgroup.
        task: Box<Task>,
    },
    Report(Change),
    /// Call `handle(Input::Tick)` at this time (the latest `WakeAt` replaces earlier ones).
    WakeAt(Millis),
}

/// A state change to report to ECS (`SubmitTaskStateChange`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Container(ContainerChange),
    Task(TaskChange),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerChange {
    pub task_arn: String,
    pub container: String,
    pub status: Status,
    pub runtime_id: Option<String>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub bindings: Vec<Binding>,
    pub image_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskChange {
    pub task_arn: String,
    pub status: Status,
    pub reason: Option<String>,
    pub pull_started_at: Option<Millis>,
    pub pull_stopped_at: Option<Millis>,
    pub execution_stopped_at: Option<Millis>,
}

/// The engine: every task's state and the host's resources.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: EngineConfig,
    tasks: BTreeMap<String, TaskState>,
    /// Task ARNs in arrival order, for fair admission.
    order: Vec<String>,
    resources: resources::Resources,
    rng: u64,
    wake: Option<Millis>,
}

impl Engine {
    /// A new engine; `seed` drives the container name suffixes and cleanup jitter.
    pub fn new(cfg: EngineConfig, seed: u64) -> Self {
        let resources = resources::Resources::new(cfg.capacity.clone(), seed >> 7);
        Engine {
            cfg,
            tasks: BTreeMap::new(),
            order: Vec::new(),
            resources,
            rng: seed | 1,
            wake: None,
        }
    }

    /// The state of a task, if the engine knows it.
    pub fn task(&self, arn: &str) -> Option<&TaskState> {
        self.tasks.get(arn)
    }

    /// Every task the engine knows.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskState> {
        self.tasks.values()
    }

    /// Handles one input at time `now` and returns the commands it leads to.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::AddTask(task) => self.add_task(now, *task, &mut out),
            Input::Desired { task_arn, status } => self.set_desired(&task_arn, status),
            Input::Result {
                task_arn,
                container,
                outcome,
            } => self.apply_outcome(now, &task_arn, &container, outcome),
            Input::Docker { docker_id, event } => self.apply_docker(now, &docker_id, event),
            Input::Sent {
                task_arn,
                status,
                containers,
            } => self.record_sent(&task_arn, status, &containers),
            Input::Tick => {}
        }
        self.progress(now, &mut out);
        out
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic for a seed, good enough for names and jitter.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn name_suffix(&mut self) -> String {
        let a = self.next_random();
        let b = self.next_random();
        format!("{a:016x}{:04x}", b & 0xffff)
    }
}

/// A configuration for tests: 4096 CPU units, `memory_mib`, no reserved ports, the dynamic
/// port range `ports`, 30 s stop timeout, 60 s cleanup wait.
#[cfg(test)]
pub(crate) fn test_config(memory_mib: u64, ports: (u16, u16)) -> EngineConfig {
    EngineConfig {
        stop_timeout: Duration::from_secs(30),
        pull_upfront: false,
        cleanup_wait: Duration::from_secs(60),
        cleanup_jitter: Duration::ZERO,
        stop_retry: Duration::from_secs(5),
        capacity: HostCapacity {
            cpu: 4096,
            memory_mib,
            reserved_tcp: Default::default(),
            reserved_udp: Default::default(),
            dynamic_ports: ports,
            port_in_use: None,
        },
    }
}

#[cfg(test)]
mod tests;
