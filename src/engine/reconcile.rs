//! The transitions: how inputs change task and container state, and which commands follow.
//! One pass (`progress`) admits waiting tasks, moves every task toward its desired status,
//! releases the resources of stopped tasks and schedules cleanup.

use std::time::Duration;

use super::deps::{self, Resolution};
use super::resources::{self, Shortfall};
use super::state::{ContainerState, RestartRule, TaskState};
use super::{Change, Command, ContainerChange, DockerEvent, Engine, Millis, Outcome, TaskChange};
use crate::model::{Status, Task};

/// Reason given when an essential container stops while the task should run.
pub const ESSENTIAL_EXITED: &str = "Essential container in task exited";

fn secs(v: Option<i64>) -> Option<Duration> {
    v.filter(|&s| s > 0).map(|s| Duration::from_secs(s as u64))
}

impl Engine {
    pub(super) fn add_task(&mut self, now: Millis, task: Task, out: &mut Vec<Command>) {
        let desired = task
            .desired_status
            .as_deref()
            .and_then(Status::from_acs)
            .unwrap_or(Status::Running);
        if self.tasks.contains_key(&task.arn) {
            self.set_desired(&task.arn, desired);
            return;
        }
        let arn = task.arn.clone();
        let state = self.new_task_state(task, desired);
        self.tasks.insert(arn.clone(), state);
        self.order.push(arn.clone());
        let problem = {
            let t = &self.tasks[&arn];
            deps::build(&t.task.containers)
                .map_err(|e| format!("TaskDependencyError: {e}"))
                .and_then(|g| {
                    resources::demand(&t.task)
                        .map(|_| g)
                        .map_err(|e| format!("ResourceInitializationError: {e}"))
                })
        };
        match problem {
            Ok(graph) => {
                let t = self.tasks.get_mut(&arn).expect("just inserted");
                for (c, edges) in t.containers.iter_mut().zip(graph) {
                    c.deps = edges;
                }
            }
            Err(reason) => self.stop_task(&arn, reason),
        }
        let _ = (now, out);
    }

    fn new_task_state(&mut self, task: Task, desired: Status) -> TaskState {
        let containers = task
            .containers
            .iter()
            .map(|c| ContainerState {
                name: c.name.clone(),
                image: c.image.clone(),
                essential: c.is_essential(),
                known: Status::None,
                desired: Status::None,
                in_flight: None,
                retry_at: None,
                docker_id: None,
                name_suffix: self.name_suffix(),
                exit_code: None,
                health: Default::default(),
                reason: None,
                image_digest: None,
                bindings: Vec::new(),
                started_at: None,
                ever_created: false,
                ever_started: false,
                removed: false,
                stop_timeout: secs(c.stop_timeout),
                start_timeout: secs(c.start_timeout),
                deps: Vec::new(),
                reported: Status::None,
                sent: Status::None,
                restart: c.restart_policy.as_ref().and_then(RestartRule::of),
                restart_pending: false,
                restart_count: 0,
            })
            .collect();
        TaskState {
            task,
            known: Status::None,
            desired,
            containers,
            reason: None,
            reserved: false,
            waiting_for: None,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
            cleanup_at: None,
            reported: Status::None,
            sent: Status::None,
        }
    }

    fn stop_task(&mut self, arn: &str, reason: String) {
        if let Some(t) = self.tasks.get_mut(arn) {
            t.desired = Status::Stopped;
            t.reason.get_or_insert(reason);
        }
    }

    pub(super) fn set_desired(&mut self, arn: &str, status: Status) {
        if let Some(t) = self.tasks.get_mut(arn) {
            // Only forward, and only to a status that means something for a whole task.
            if status > t.desired && matches!(status, Status::Running | Status::Stopped) {
                t.desired = status;
            }
        }
    }

    pub(super) fn apply_outcome(&mut self, now: Millis, arn: &str, name: &str, outcome: Outcome) {
        let retry_at = now + Self::millis(self.cfg.stop_retry);
        let Some(t) = self.tasks.get_mut(arn) else {
            return;
        };
        let Some(i) = t.container_by_name(name) else {
            return;
        };
        if let Outcome::Pulled { .. } | Outcome::PullFailed { .. } = outcome {
            t.pull_stopped_at = Some(now);
        }
        let c = &mut t.containers[i];
        c.in_flight = None;
        match outcome {
            Outcome::Pulled { image_digest } => {
                c.image_digest = image_digest.or(c.image_digest.take());
                c.advance(Status::Pulled);
            }
            Outcome::Created { docker_id } => {
                c.docker_id = Some(docker_id);
                c.ever_created = true;
                c.advance(Status::Created);
            }
            Outcome::Started => mark_started(c, now),
            Outcome::Stopped { exit_code } => {
                if c.exit_code.is_none() {
                    c.exit_code = exit_code;
                }
                c.advance(Status::Stopped);
            }
            Outcome::PullFailed { reason }
            | Outcome::CreateFailed { reason }
            | Outcome::StartFailed { reason } => c.fail(reason),
            Outcome::StopFailed { .. } => {
                c.retry_at = Some(retry_at);
            }
            Outcome::Removed => c.removed = true,
        }
    }

    fn millis(d: Duration) -> Millis {
        d.as_millis().min(u128::from(u64::MAX)) as Millis
    }

    pub(super) fn apply_docker(&mut self, now: Millis, docker_id: &str, event: DockerEvent) {
        let found = self
            .tasks
            .values_mut()
            .find_map(|t| t.container_by_docker_id(docker_id).map(|i| (t, i)));
        let Some((t, i)) = found else { return };
        let c = &mut t.containers[i];
        match event {
            DockerEvent::Started => mark_started(c, now),
            DockerEvent::Died { exit_code }
                if c.in_flight.is_none()
                    && !c.restart_pending
                    && c.restarts_after(exit_code, now) =>
            {
                c.restart_pending = true;
                c.exit_code = exit_code;
            }
            DockerEvent::Died { exit_code } => {
                if c.known < Status::Stopped && c.exit_code.is_none() {
                    c.exit_code = exit_code;
                }
                c.advance(Status::Stopped);
            }
            DockerEvent::Health(h) => c.health = h,
        }
    }

    /// One full pass over every task; repeats admission while stopping tasks free resources.
    pub(super) fn progress(&mut self, now: Millis, out: &mut Vec<Command>) {
        loop {
            self.admit(out);
            let arns: Vec<String> = self.order.clone();
            let mut released = false;
            for arn in &arns {
                let Some(mut t) = self.tasks.remove(arn) else {
                    continue;
                };
                reconcile(&mut t, now, &self.cfg, out);
                if t.known == Status::Stopped && self.resources.holds(arn) {
                    self.resources.release(arn);
                    released = true;
                }
                self.tasks.insert(arn.clone(), t);
            }
            if !released {
                break;
            }
        }
        self.cleanup(now, out);
        self.schedule_wake(now, out);
    }

    /// Offers resources to every waiting task in arrival order: one that does not fit yet
    /// does not block the ones behind it.
    fn admit(&mut self, out: &mut Vec<Command>) {
        let _ = out;
        for arn in self.order.clone() {
            let Some(t) = self.tasks.get_mut(&arn) else {
                continue;
            };
            if t.reserved || t.desired >= Status::Stopped || t.known >= Status::Stopped {
                continue;
            }
            let demand = match resources::demand(&t.task) {
                Ok(d) => d,
                Err(_) => continue, // Rejected in add_task already.
            };
            match self.resources.reserve(&arn, &demand) {
                Ok(bindings) => {
                    t.reserved = true;
                    t.waiting_for = None;
                    for (c, b) in t.containers.iter_mut().zip(bindings) {
                        c.bindings = b;
                    }
                }
                Err(Shortfall::NotNow(why)) => t.waiting_for = Some(why),
                Err(Shortfall::Never(why)) => {
                    t.desired = Status::Stopped;
                    t.reason.get_or_insert(why);
                }
            }
        }
    }

    fn cleanup(&mut self, now: Millis, out: &mut Vec<Command>) {
        let mut done = Vec::new();
        for t in self.tasks.values_mut() {
            if t.known != Status::Stopped {
                continue;
            }
            let at = *t.cleanup_at.get_or_insert_with(|| {
                let jitter = Self::millis(self.cfg.cleanup_jitter);
                let extra = if jitter == 0 {
                    0
                } else {
                    xorshift(now ^ jitter) % (jitter + 1)
                };
                now + Self::millis(self.cfg.cleanup_wait) + extra
            });
            if at > now {
                continue;
            }
            let mut pending = false;
            for c in &mut t.containers {
                match (&c.docker_id, c.removed, c.in_flight) {
                    (Some(id), false, None) => {
                        c.in_flight = Some(Status::Stopped);
                        out.push(Command::Remove {
                            task_arn: t.task.arn.clone(),
                            container: c.name.clone(),
                            docker_id: id.clone(),
                        });
                        pending = true;
                    }
                    (Some(_), false, Some(_)) => pending = true,
                    _ => {}
                }
            }
            if !pending {
                done.push(t.task.arn.clone());
            }
        }
        for arn in done {
            let Some(t) = self.tasks.remove(&arn) else {
                continue;
            };
            self.order.retain(|a| a != &arn);
            out.push(Command::TaskRemoved {
                task_arn: arn,
                task: Box::new(t.task),
            });
        }
    }

    /// Asks to be woken for the earliest time-based decision: cleanup, a retry, a timeout.
    fn schedule_wake(&mut self, now: Millis, out: &mut Vec<Command>) {
        let mut next: Option<Millis> = None;
        let mut consider = |at: Millis| {
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for t in self.tasks.values() {
            if let Some(at) = t.cleanup_at {
                consider(at);
            }
            // A port held by something outside the agent frees itself without an input.
            if t.waiting_for.is_some() {
                consider(now + RESOURCE_RECHECK_MS);
            }
            for c in &t.containers {
                if let Some(at) = c.retry_at {
                    consider(at);
                }
                if let (Some(s), Some(timeout)) = (c.started_at, c.start_timeout) {
                    if c.known == Status::Running {
                        consider(s + Self::millis(timeout));
                    }
                }
            }
        }
        if let Some(at) = next {
            if self.wake != Some(at) {
                self.wake = Some(at);
                out.push(Command::WakeAt(at));
            }
        }
    }
}

/// How often a task waiting for resources is offered them again when nothing else happens.
const RESOURCE_RECHECK_MS: Millis = 1_000;

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn mark_started(c: &mut ContainerState, now: Millis) {
    if c.known < Status::Running {
        c.started_at = Some(now);
    }
    c.ever_started = true;
    c.ever_created = true;
    c.advance(Status::Running);
}

/// Moves one task toward its desired status until nothing more can happen without an input.
fn reconcile(t: &mut TaskState, now: Millis, cfg: &super::EngineConfig, out: &mut Vec<Command>) {
    loop {
        let mut changed = propagate_desired(t);
        for i in 0..t.containers.len() {
            changed |= step_container(t, i, now, cfg, out);
        }
        changed |= roll_up(t, now, out);
        if !changed {
            break;
        }
    }
}

/// An essential container that stopped (or must stop) stops the task; the task's desired
/// status flows down to every container (never lowering one).
fn propagate_desired(t: &mut TaskState) -> bool {
    let mut changed = false;
    if t.desired < Status::Stopped {
        let essential_down = t
            .containers
            .iter()
            .find(|c| c.essential && (c.known == Status::Stopped || c.desired == Status::Stopped));
        if let Some(c) = essential_down {
            let reason = match (&c.reason, c.known) {
                (Some(r), _) => r.clone(),
                _ => ESSENTIAL_EXITED.to_owned(),
            };
            t.desired = Status::Stopped;
            t.reason.get_or_insert(reason);
            changed = true;
        }
    }
    let target = if t.desired == Status::Stopped {
        Status::Stopped
    } else {
        Status::Running
    };
    for c in &mut t.containers {
        if c.desired < target {
            c.desired = target;
            changed = true;
        }
    }
    changed
}

fn step_container(
    t: &mut TaskState,
    i: usize,
    now: Millis,
    cfg: &super::EngineConfig,
    out: &mut Vec<Command>,
) -> bool {
    if restart(t, i, now, out) {
        return true;
    }
    let c = &t.containers[i];
    if c.in_flight.is_some() || c.known >= c.desired || c.retry_at.is_some_and(|at| at > now) {
        return false;
    }
    if c.desired == Status::Stopped {
        return step_stop(t, i, cfg, out);
    }
    if !t.reserved {
        return false;
    }
    let next = match c.known {
        Status::None | Status::ManifestPulled => Status::Pulled,
        Status::Pulled => Status::Created,
        _ => Status::Running,
    };
    if !(next == Status::Pulled && cfg.pull_upfront) {
        match dependencies(t, i, now) {
            Resolution::Met => {}
            Resolution::Waiting => return false,
            Resolution::Never(why) => {
                t.containers[i].fail(format!("DependencyError: {why}"));
                return true;
            }
        }
    }
    let arn = t.task.arn.clone();
    let c = &mut t.containers[i];
    c.in_flight = Some(next);
    let container = c.name.clone();
    out.push(match next {
        Status::Pulled => {
            t.pull_started_at.get_or_insert(now);
            Command::Pull {
                task_arn: arn,
                container,
                image: c.image.clone(),
            }
        }
        Status::Created => Command::Create {
            task_arn: arn,
            container,
            name_suffix: c.name_suffix.clone(),
            bindings: c.bindings.clone(),
        },
        _ => Command::Start {
            task_arn: arn,
            container,
            docker_id: c.docker_id.clone().unwrap_or_default(),
        },
    });
    true
}

/// Starts again in place a container whose exit its restart policy covers.
fn restart(t: &mut TaskState, i: usize, now: Millis, out: &mut Vec<Command>) -> bool {
    let arn = t.task.arn.clone();
    let c = &mut t.containers[i];
    if !c.restart_pending || c.in_flight.is_some() {
        return false;
    }
    c.restart_pending = false;
    if c.desired != Status::Running {
        // Asked to stop meanwhile: the exit stands.
        return c.advance(Status::Stopped);
    }
    c.restart_count += 1;
    c.started_at = Some(now);
    c.in_flight = Some(Status::Running);
    out.push(Command::Start {
        task_arn: arn,
        container: c.name.clone(),
        docker_id: c.docker_id.clone().unwrap_or_default(),
    });
    true
}

/// Stops a container once no container depending on it is still alive (reverse order).
fn step_stop(
    t: &mut TaskState,
    i: usize,
    cfg: &super::EngineConfig,
    out: &mut Vec<Command>,
) -> bool {
    if t.containers[i].docker_id.is_none() {
        return t.containers[i].advance(Status::Stopped);
    }
    if t.has_live_dependent(i) {
        return false;
    }
    let arn = t.task.arn.clone();
    let c = &mut t.containers[i];
    c.in_flight = Some(Status::Stopped);
    c.retry_at = None;
    out.push(Command::Stop {
        task_arn: arn,
        container: c.name.clone(),
        docker_id: c.docker_id.clone().unwrap_or_default(),
        timeout: c.stop_timeout.unwrap_or(cfg.stop_timeout),
    });
    true
}

/// Whether every dependency of container `i` lets it move on.
fn dependencies(t: &TaskState, i: usize, now: Millis) -> Resolution {
    let mut result = Resolution::Met;
    for d in &t.containers[i].deps {
        let dep = &t.containers[d.on];
        match deps::resolve(d.condition, &dep.progress(now), &dep.name) {
            Resolution::Met => {}
            Resolution::Waiting => result = Resolution::Waiting,
            never @ Resolution::Never(_) => return never,
        }
    }
    result
}

/// Reports container changes and sets the task's known status to the least advanced container's.
fn roll_up(t: &mut TaskState, now: Millis, out: &mut Vec<Command>) -> bool {
    let arn = t.task.arn.clone();
    for c in &mut t.containers {
        let reportable = matches!(c.known, Status::Running | Status::Stopped);
        if reportable && c.reported < c.known {
            c.reported = c.known;
            out.push(Command::Report(Change::Container(ContainerChange {
                task_arn: arn.clone(),
                container: c.name.clone(),
                status: c.known,
                runtime_id: c.docker_id.clone(),
                exit_code: c.exit_code,
                reason: c.reason.clone(),
                bindings: c.bindings.clone(),
                image_digest: c.image_digest.clone(),
            })));
        }
    }
    let least = t
        .containers
        .iter()
        .map(|c| c.known)
        .min()
        .unwrap_or(Status::Stopped);
    let moved = least > t.known;
    if moved {
        t.known = least;
        if least == Status::Stopped {
            t.execution_stopped_at = Some(now);
        }
    }
    // Also after a restart, when the last change was never accepted by ECS.
    let known = t.known;
    if matches!(known, Status::Running | Status::Stopped) && t.reported < known {
        t.reported = known;
        out.push(Command::Report(Change::Task(TaskChange {
            task_arn: arn,
            status: known,
            reason: if known == Status::Stopped {
                t.reason.clone()
            } else {
                None
            },
            pull_started_at: t.pull_started_at,
            pull_stopped_at: t.pull_stopped_at,
            execution_stopped_at: t.execution_stopped_at,
        })));
    }
    moved
}
