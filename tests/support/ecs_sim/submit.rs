//! The state changes the agent submits: SubmitTaskStateChange,
//! SubmitContainerStateChange, SubmitAttachmentStateChanges.
//!
//! Each must name an existing cluster; task and container changes must name a
//! task the simulator knows (from a PayloadMessage sent with `acs_send`, or
//! `add_known_task`) and, when its containers are known, one of them. Statuses
//! are the backend ones (PENDING, RUNNING, STOPPED); the service limits the
//! model does not carry are enforced: reason ≤ 1024 characters,
//! runtimeId/imageDigest ≤ 255, ≤ 100 network bindings. Accepted bodies are
//! recorded with their arrival time and acknowledged with `{"acknowledgment":"ACK"}`.
//!
//! Limits: attachment ARNs are not checked against anything the server sent;
//! status transitions are not checked for going backwards.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::api::ApiError;
use super::ops::{resolve_cluster, str_of};
use super::state::{Recorded, Shared, State};

const STATUSES: &[&str] = &["PENDING", "RUNNING", "STOPPED"];

/// Checks `task` is a task the simulator knows and returns its container names.
fn known_task(s: &State, req: &Value) -> Result<Vec<String>, ApiError> {
    let task = str_of(req, "task")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter("task is required"))?;
    s.tasks
        .get(task)
        .cloned()
        .ok_or_else(|| ApiError::invalid_parameter(format!("Task {task} not found.")))
}

fn check_status(status: Option<&str>, at: &str) -> Result<(), ApiError> {
    match status {
        Some(st) if !STATUSES.contains(&st) => Err(ApiError::invalid_parameter(format!(
            "{at}status {st:?} is not one of {STATUSES:?}"
        ))),
        _ => Ok(()),
    }
}

fn check_max(req: &Value, key: &str, max: usize, at: &str) -> Result<(), ApiError> {
    match str_of(req, key) {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_parameter(format!(
            "{at}{key} is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The per-container fields shared by SubmitTaskStateChange and SubmitContainerStateChange.
fn check_container_change(c: &Value, names: &[String], at: &str) -> Result<(), ApiError> {
    let name = str_of(c, "containerName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter(format!("{at}containerName is required")))?;
    if !names.is_empty() && !names.iter().any(|n| n == name) {
        return Err(ApiError::invalid_parameter(format!(
            "{at}containerName {name:?} is not in the task"
        )));
    }
    check_status(str_of(c, "status"), at)?;
    check_max(c, "reason", 1024, at)?;
    check_max(c, "runtimeId", 255, at)?;
    check_max(c, "imageDigest", 255, at)?;
    if c["networkBindings"]
        .as_array()
        .is_some_and(|b| b.len() > 100)
    {
        return Err(ApiError::invalid_parameter(format!(
            "{at}networkBindings has more than 100 entries"
        )));
    }
    Ok(())
}

pub(super) fn task(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    shared.update(|s| {
        resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let names = known_task(s, req)?;
        check_status(str_of(req, "status"), "")?;
        check_max(req, "reason", 1024, "")?;
        for (i, c) in req["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_container_change(c, &names, &format!("containers[{i}]."))?;
        }
        s.task_state_changes.push(Recorded {
            at: SystemTime::now(),
            body: req.clone(),
        });
        Ok(json!({"acknowledgment": "ACK"}))
    })
}

pub(super) fn container(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    shared.update(|s| {
        resolve_cluster(shared, s, str_of(req, "cluster"))?;
        let names = known_task(s, req)?;
        check_container_change(req, &names, "")?;
        s.container_state_changes.push(Recorded {
            at: SystemTime::now(),
            body: req.clone(),
        });
        Ok(json!({"acknowledgment": "ACK"}))
    })
}

pub(super) fn attachments(shared: &Shared, req: &Value) -> Result<Value, ApiError> {
    shared.update(|s| {
        resolve_cluster(shared, s, str_of(req, "cluster"))?;
        s.attachment_state_changes.push(Recorded {
            at: SystemTime::now(),
            body: req.clone(),
        });
        Ok(json!({"acknowledgment": "ACK"}))
    })
}
