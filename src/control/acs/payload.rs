//! `PayloadMessage`: the tasks ACS wants on this instance. Each task is decoded on its own, so
//! one malformed task is reported by its ARN while the others still decode; the official agent
//! acks a payload only when every task in it was accepted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::envelope::{culprit, null_as_default};
use crate::model::Task;

/// `PayloadMessage` (ACS → agent); answered with `AckRequest` (plus one
/// `IAMRoleCredentialsAckRequest` per credential) when all tasks were accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PayloadMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_num: Option<i64>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub tasks: Vec<PayloadTask>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<i64>,
}

impl PayloadMessage {
    /// Whether every task decoded (the condition for acking the payload).
    pub fn all_tasks_decoded(&self) -> bool {
        self.tasks.iter().all(|t| t.decoded.is_ok())
    }

    /// The tasks that did not decode.
    pub fn rejected_tasks(&self) -> impl Iterator<Item = &RejectedTask> {
        self.tasks.iter().filter_map(|t| t.decoded.as_ref().err())
    }
}

/// One element of `PayloadMessage.tasks`: the JSON as received and the decoded task, or why it
/// did not decode. `Debug` shows only the ARN and the outcome.
#[derive(Clone, PartialEq)]
pub struct PayloadTask {
    pub raw: Value,
    pub decoded: Result<Task, RejectedTask>,
}

/// A task of a payload that does not fit the `Task` shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedTask {
    /// The task's `arn`, when the element has one as a string.
    pub arn: Option<String>,
    /// Which member did not fit and how, e.g. `containers: invalid type: string "x", expected a
    /// sequence`.
    pub reason: String,
}

impl PayloadTask {
    /// Decodes one task element; never fails.
    pub fn from_value(raw: Value) -> Self {
        let decoded = Task::deserialize(&raw).map_err(|e| RejectedTask {
            arn: raw.get("arn").and_then(Value::as_str).map(str::to_owned),
            reason: format!("{}: {e}", culprit::<Task>(&raw)),
        });
        PayloadTask { raw, decoded }
    }

    /// The task's ARN, decoded or not.
    pub fn arn(&self) -> Option<&str> {
        match &self.decoded {
            Ok(task) => Some(task.arn.as_str()),
            Err(rejected) => rejected.arn.as_deref(),
        }
    }
}

impl From<Task> for PayloadTask {
    fn from(task: Task) -> Self {
        let raw = serde_json::to_value(&task).unwrap_or(Value::Null);
        PayloadTask {
            raw,
            decoded: Ok(task),
        }
    }
}

impl fmt::Debug for PayloadTask {
    /// Only the ARN and the outcome: a task's JSON carries credentials and environments.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PayloadTask");
        out.field("arn", &self.arn());
        match &self.decoded {
            Ok(_) => out.field("decoded", &true),
            Err(rejected) => out.field("rejected", &rejected.reason),
        };
        out.finish()
    }
}

impl Serialize for PayloadTask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PayloadTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(PayloadTask::from_value)
    }
}
