//! Builds the Docker create request for one task container, as the official agent does; no Docker
//! calls.
//!
//! Three layers, in this order (ecs-agent-behaviour.md §4.3):
//! 1. what the agent builds from the task model (`agent`): image, command, environment, exposed
//!    ports and port bindings (`ports`), CPU shares, memory, links, binds, volumes-from, network
//!    mode, privileged, capabilities, devices, init, shared memory;
//! 2. the container's `dockerConfig.config` / `dockerConfig.hostConfig` strings laid on top
//!    (`overlay`): any key they hold wins;
//! 3. the agent's own overrides: the extra environment (so a `dockerConfig` `Env` cannot drop the
//!    credentials URI), cgroup parent, network mode (when the task states one), PID/IPC mode, the
//!    log driver override, and the `com.amazonaws.ecs.*` labels last, so a task cannot spoof them.
//!
//! Everything that needs the host or Docker is decided by the caller and passed in a
//! [`CreateContext`]: the chosen host ports, the peers' Docker names, what each volume resolves to.
//! Known limits: `awsvpc` and the `task` PID/IPC namespaces are refused (no pause container yet);
//! `dockerConfig.version` is not looked at here (the caller picks the API version); GPU runtime,
//! FireLens, secrets and Service Connect changes are not applied.

mod agent;
mod error;
mod overlay;
mod ports;

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HostConfigLogConfig};

pub use error::CreateError;
pub use ports::{parse_port_range, ResolvedPort};

use super::names;
use crate::model::{Container, Task};

/// What the engine decided for this container before it is created.
#[derive(Debug, Clone)]
pub struct CreateContext<'a> {
    /// The cluster name, for the `com.amazonaws.ecs.cluster` label.
    pub cluster: &'a str,
    /// One entry per port mapping of this container, in port-mapping order, with the host side
    /// the engine chose (it assigns dynamic ports itself).
    pub host_ports: &'a [ResolvedPort],
    /// Docker name of every other container of the task, by ECS container name (links,
    /// volumesFrom).
    pub peer_names: &'a BTreeMap<String, String>,
    /// What each task volume resolves to, by volume name.
    pub volumes: &'a BTreeMap<String, VolumeSource>,
    /// Task cgroup parent when task CPU/memory limits are on (e.g. `/ecs/<task-id>`), else `None`.
    pub cgroup_parent: Option<&'a str>,
    /// `ECS_DISABLE_PRIVILEGED`: refuse privileged containers.
    pub disable_privileged: bool,
    /// Environment the agent injects (e.g. `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`); wins over
    /// the task's own environment and over a `dockerConfig` `Env`.
    pub extra_env: &'a BTreeMap<String, String>,
    /// Log driver the agent imposes; `None` keeps what the task says.
    pub log_config_override: Option<HostConfigLogConfig>,
}

/// What a task volume is mounted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host directory, bind-mounted.
    HostPath(String),
    /// A Docker named volume.
    DockerVolume(String),
}

/// The create request for `container` of `task`: the agent-built request, the container's
/// `dockerConfig` laid over it, then the agent's overrides (see the module doc).
pub fn create_body(
    task: &Task,
    container: &Container,
    ctx: &CreateContext,
) -> Result<ContainerCreateBody, CreateError> {
    let mut body = agent::build(task, container, ctx)?;
    if let Some(docker_config) = &container.docker_config {
        body = overlay::apply(body, docker_config, &container.name)?;
    }
    apply_agent_overrides(&mut body, task, container, ctx)?;
    check(&body, container, ctx)?;
    Ok(body)
}

/// The `com.amazonaws.ecs.*` labels of a task container.
pub fn ecs_labels(task: &Task, container: &Container, cluster: &str) -> [(String, String); 5] {
    [
        (names::LABEL_TASK_ARN, task.arn.as_str()),
        (names::LABEL_CONTAINER_NAME, container.name.as_str()),
        (names::LABEL_TASK_DEFINITION_FAMILY, task.family.as_str()),
        (names::LABEL_TASK_DEFINITION_VERSION, task.version.as_str()),
        (names::LABEL_CLUSTER, cluster),
    ]
    .map(|(key, value)| (key.to_string(), value.to_string()))
}

/// What the agent imposes after the `dockerConfig` overlay.
fn apply_agent_overrides(
    body: &mut ContainerCreateBody,
    task: &Task,
    container: &Container,
    ctx: &CreateContext,
) -> Result<(), CreateError> {
    let env = body.env.take().unwrap_or_default();
    body.env = agent::non_empty(agent::with_extra_env(env, ctx.extra_env));

    let host = body.host_config.get_or_insert_with(Default::default);
    if let Some(parent) = ctx.cgroup_parent {
        host.cgroup_parent = Some(parent.to_string());
    }
    // A task without a network mode leaves a `dockerConfig` NetworkMode alone (the official agent
    // takes it from hostConfig); a stated one always wins.
    if task
        .network_mode
        .as_deref()
        .is_some_and(|m| !m.trim().is_empty())
    {
        host.network_mode = Some(agent::network_mode(task)?.to_string());
    }
    if let Some(mode) = agent::namespace_mode("pidMode", task.pid_mode.as_deref())? {
        host.pid_mode = Some(mode.to_string());
    }
    if let Some(mode) = agent::namespace_mode("ipcMode", task.ipc_mode.as_deref())? {
        host.ipc_mode = Some(mode.to_string());
    }
    if let Some(log_config) = &ctx.log_config_override {
        host.log_config = Some(log_config.clone());
    }

    let labels = body.labels.get_or_insert_with(HashMap::new);
    labels.extend(ecs_labels(task, container, ctx.cluster));
    Ok(())
}

/// Refusals that must look at the final request (an overlay can ask for privileged mode too).
fn check(
    body: &ContainerCreateBody,
    container: &Container,
    ctx: &CreateContext,
) -> Result<(), CreateError> {
    let privileged = body.host_config.as_ref().and_then(|h| h.privileged);
    if ctx.disable_privileged && privileged == Some(true) {
        return Err(CreateError::PrivilegedDisabled {
            container: container.name.clone(),
        });
    }
    let docker_health = container.health_check_type.as_deref();
    if docker_health.is_some_and(|t| t.eq_ignore_ascii_case("docker")) && body.healthcheck.is_none()
    {
        return Err(CreateError::MissingHealthcheck {
            container: container.name.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
