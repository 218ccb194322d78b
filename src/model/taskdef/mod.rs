//! Task definitions → ACS tasks, for `ecs-agent local run`.
//!
//! Does what the ECS control plane does between `RegisterTaskDefinition`/`RunTask` and the ACS
//! `PayloadMessage`: validates a task definition (the `register-task-definition
//! --cli-input-json` input or the `describe-task-definition` output) and turns it into the
//! [`Task`] the engine runs. Fields the ACS model has no place for travel, as the control plane
//! sends them, inside `dockerConfig.config` / `dockerConfig.hostConfig` as Docker Engine API JSON.
//!
//! Pure: text in, task or errors out; no I/O. Every problem is reported at once, each with the
//! JSON path of the field at fault.
//!
//! Known limits: `awsvpc` networking is refused (local run has no ENIs); task and execution
//! roles are checked but not mapped (ACS delivers credentials, not ARNs); GPU
//! `resourceRequirements`, `ephemeralStorage`, `runtimePlatform`, placement constraints and
//! Service Connect port names are accepted and ignored; no container ARNs are made up.

mod checks;
mod container;
mod docker;
mod fields;
mod host_config;
mod ports;
mod secrets;
mod units;
mod volumes;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use self::checks::{check_containers, TaskFacts};
use self::container::Converted;
use self::fields::{kind, Errors, Obj};
use crate::model::Task;

/// Docker 20.10+ reserves 6 MiB for a container; ECS refuses less.
const MIN_MEMORY_MIB: i64 = 6;

/// Identity the control plane would give the task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalRunOptions {
    pub cluster: String,
    pub task_id: String,
    pub region: String,
    pub account_id: String,
}

/// One problem: the JSON path of the field (`containerDefinitions[1].portMappings[0].hostPort`,
/// `$` for the document itself) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for TaskDefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one task definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TaskDefErrors(pub Vec<TaskDefError>);

impl fmt::Display for TaskDefErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Converts task definition JSON into the ACS task the engine runs, or lists every problem.
pub fn task_from_definition(json: &str, opts: &LocalRunOptions) -> Result<Task, TaskDefErrors> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        let message = format!("not valid JSON: {e}");
        TaskDefErrors(vec![TaskDefError {
            field: "$".into(),
            message,
        }])
    })?;
    let errors = Errors::default();
    let task = definition(&value, &errors).map(|def| build_task(&def, opts));
    match (task, errors.into_vec()) {
        (Some(task), errors) if errors.is_empty() => Ok(task),
        (_, errors) => Err(TaskDefErrors(errors)),
    }
}

/// The task definition object: the document itself, or its `taskDefinition` member
/// (`describe-task-definition` output).
fn definition<'a>(value: &'a Value, errors: &'a Errors) -> Option<Obj<'a>> {
    let Some(root) = value.as_object() else {
        errors.push(
            "$",
            format!("expected a JSON object, found {}", kind(value)),
        );
        return None;
    };
    let root = Obj::new(root, String::new(), errors);
    match root.get("taskDefinition") {
        Some(_) => root.object("taskDefinition"),
        None => Some(root),
    }
}

fn build_task(def: &Obj<'_>, opts: &LocalRunOptions) -> Task {
    let mut task = task_fields(def, opts);
    task.volumes = volumes::volumes(def);
    let containers = containers(def, &opts.region);
    let facts = TaskFacts {
        path: &def.path,
        volume_names: task.volumes.iter().map(|v| v.name.as_str()).collect(),
        memory: task.memory,
        network_mode: task.network_mode.as_deref().unwrap_or("bridge"),
    };
    check_containers(&containers, &facts, def.errors());
    check_unmapped_fields(def);
    task.containers = containers.into_iter().map(|c| c.container).collect();
    task
}

/// Everything but containers and volumes.
fn task_fields(def: &Obj<'_>, opts: &LocalRunOptions) -> Task {
    Task {
        arn: task_arn(opts),
        task_cluster_arn: Some(cluster_arn(opts)),
        family: family(def),
        version: revision(def),
        desired_status: Some("RUNNING".into()),
        network_mode: Some(network_mode(def).unwrap_or_else(|| "bridge".into())),
        cpu: task_cpu(def),
        memory: task_memory(def),
        pid_mode: one_of(def, "pidMode", &["host", "task"]),
        ipc_mode: one_of(def, "ipcMode", &["host", "task", "none"]),
        launch_type: Some("EC2".into()),
        task_definition_account_id: Some(opts.account_id.clone()),
        proxy_configuration: def.object("proxyConfiguration").map(|p| p.to_value()),
        ..Task::default()
    }
}

fn task_arn(opts: &LocalRunOptions) -> String {
    let LocalRunOptions {
        cluster,
        task_id,
        region,
        account_id,
    } = opts;
    format!("arn:aws:ecs:{region}:{account_id}:task/{cluster}/{task_id}")
}

fn cluster_arn(opts: &LocalRunOptions) -> String {
    let LocalRunOptions {
        cluster,
        region,
        account_id,
        ..
    } = opts;
    format!("arn:aws:ecs:{region}:{account_id}:cluster/{cluster}")
}

fn family(def: &Obj<'_>) -> String {
    let family = def.required_str("family").unwrap_or_default();
    if !family.is_empty() {
        check_name(def, "family", family);
    }
    family.to_owned()
}

/// The revision as ACS carries it: a string, "1" when the definition has none.
fn revision(def: &Obj<'_>) -> String {
    match def.int("revision") {
        Some(n) if n < 1 => {
            def.error("revision", format!("{n} must be 1 or more"));
            "1".into()
        }
        Some(n) => n.to_string(),
        None => "1".into(),
    }
}

/// Family, container and volume names: 1–255 letters, digits, hyphens and underscores.
fn check_name(obj: &Obj<'_>, key: &str, name: &str) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.len() > 255 || !name.chars().all(allowed) {
        let msg = format!("{name:?} must be 1-255 letters, digits, hyphens or underscores");
        obj.error(key, msg);
    }
}

/// `bridge`, `host` or `none`; `awsvpc` is refused. `None` when absent or wrong.
fn network_mode(def: &Obj<'_>) -> Option<String> {
    match def.str("networkMode")? {
        mode @ ("bridge" | "host" | "none") => Some(mode.to_owned()),
        "awsvpc" => {
            let msg = "awsvpc is not supported by local run yet; use bridge, host or none";
            def.error("networkMode", msg);
            None
        }
        other => {
            let msg = format!("{other:?} is not one of bridge, host, awsvpc, none");
            def.error("networkMode", msg);
            None
        }
    }
}

fn one_of(def: &Obj<'_>, key: &str, allowed: &[&str]) -> Option<String> {
    let value = def.str(key)?;
    if !allowed.contains(&value) {
        def.error(
            key,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        );
        return None;
    }
    Some(value.to_owned())
}

fn task_cpu(def: &Obj<'_>) -> Option<f64> {
    let text = def.str("cpu")?;
    units::parse_cpu(text)
        .map_err(|e| {
            def.error(
                "cpu",
                format!("{e}; expected CPU units like \"256\" or vCPU like \"0.25 vCPU\""),
            )
        })
        .ok()
}

fn task_memory(def: &Obj<'_>) -> Option<i64> {
    let text = def.str("memory")?;
    let mib = units::parse_memory(text)
        .map_err(|e| {
            def.error(
                "memory",
                format!("{e}; expected MiB like \"512\" or GB like \"1 GB\""),
            )
        })
        .ok()?;
    if mib < MIN_MEMORY_MIB {
        def.error(
            "memory",
            format!("{mib} MiB is below the minimum of {MIN_MEMORY_MIB} MiB"),
        );
        return None;
    }
    Some(mib)
}

fn containers<'a>(def: &Obj<'a>, region: &str) -> Vec<Converted<'a>> {
    if def.get("containerDefinitions").is_none() {
        def.error("containerDefinitions", "is required");
    }
    let items = def.objects("containerDefinitions").unwrap_or_default();
    let raw = def.get("containerDefinitions").and_then(Value::as_array);
    if raw.is_some_and(Vec::is_empty) {
        def.error("containerDefinitions", "at least one container is required");
    }
    items
        .into_iter()
        .map(|c| container::container(c, region))
        .collect()
}

/// API fields this agent does not use must still have the right JSON type.
fn check_unmapped_fields(def: &Obj<'_>) {
    def.str("taskRoleArn");
    def.str("executionRoleArn");
    def.str("status");
    def.str("taskDefinitionArn");
    def.strings("requiresCompatibilities");
    def.strings("compatibilities");
    def.objects("tags");
    def.objects("placementConstraints");
    def.object("ephemeralStorage");
    def.object("runtimePlatform");
}
