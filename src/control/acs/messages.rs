//! ACS message shapes as `acs-api-2.json` names them (camelCase members, every member optional as
//! in the model). Members are declared in alphabetical order because that is the order Go's
//! generated structs, and so the official agent's frames, use.
//!
//! `PayloadMessage` lives in `payload.rs` (its tasks are decoded one by one).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::null_as_default;
use crate::model::RoleCredentials;

/// `HeartbeatMessage` (ACS → agent); answered with [`HeartbeatAckRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// `IAMRoleCredentialsMessage` (ACS → agent): fresh credentials for one task's role.
/// `Debug` never shows the secret (see [`RoleCredentials`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IamRoleCredentialsMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_credentials: Option<RoleCredentials>,
    /// [`ROLE_TYPE_APPLICATION`] or [`ROLE_TYPE_EXECUTION`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_cluster_arn: Option<String>,
}

/// `roleType` of the task role.
pub const ROLE_TYPE_APPLICATION: &str = "TaskApplication";
/// `roleType` of the task execution role.
pub const ROLE_TYPE_EXECUTION: &str = "TaskExecution";

/// `TaskIdentifier`: one task in a manifest, a stop verification or its ack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskIdentifier {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_cluster_arn: Option<String>,
}

/// `TaskManifestMessage` (ACS → agent): the tasks ACS believes run here, for anti-entropy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskManifestMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub tasks: Vec<TaskIdentifier>,
    /// The manifest's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<i64>,
}

/// `TaskStopVerificationAck` (ACS → agent): which of the proposed stop candidates to stop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskStopVerificationAck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub stop_tasks: Vec<TaskIdentifier>,
}

/// `AttachTaskNetworkInterfacesMessage` (ACS → agent). ENIs stay raw JSON (large shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AttachTaskNetworkInterfacesMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub elastic_network_interfaces: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<i64>,
}

/// `AttachInstanceNetworkInterfacesMessage` (ACS → agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AttachInstanceNetworkInterfacesMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub elastic_network_interfaces: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<i64>,
}

/// `AttachmentProperty`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AttachmentProperty {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `Attachment`: a generic resource attachment (EBS volume, S3 Files, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attachment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_arn: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub attachment_properties: Vec<AttachmentProperty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_type: Option<String>,
}

/// `ConfirmAttachmentMessage` (ACS → agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfirmAttachmentMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_timeout_ms: Option<i64>,
}

/// `UpdateInfo`: where the new agent tarball is and its SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `StageUpdateMessage` and `PerformUpdateMessage` (ACS → agent) share this shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_info: Option<UpdateInfo>,
}

/// `StageUpdateMessage`.
pub type StageUpdateMessage = UpdateMessage;
/// `PerformUpdateMessage`.
pub type PerformUpdateMessage = UpdateMessage;

/// `CloseMessage` (ACS → agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CloseMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `ErrorMessage` (ACS → agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The shape every ACS exception has: `{"message": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExceptionMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub type ServerException = ExceptionMessage;
pub type BadRequestException = ExceptionMessage;
pub type InvalidClusterException = ExceptionMessage;
pub type InvalidInstanceException = ExceptionMessage;
pub type AccessDeniedException = ExceptionMessage;
pub type InactiveInstanceException = ExceptionMessage;

/// `AckRequest` (agent → ACS): acknowledges a payload, manifest, attachment or update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AckRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl AckRequest {
    pub fn new(cluster: &str, container_instance: &str, message_id: &str) -> Self {
        AckRequest {
            cluster: Some(cluster.to_owned()),
            container_instance: Some(container_instance.to_owned()),
            message_id: Some(message_id.to_owned()),
        }
    }
}

/// `HeartbeatAckRequest` (agent → ACS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatAckRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl HeartbeatAckRequest {
    pub fn new(message_id: &str) -> Self {
        HeartbeatAckRequest {
            message_id: Some(message_id.to_owned()),
        }
    }
}

/// `IAMRoleCredentialsAckRequest` (agent → ACS): `messageId` is the carrying message's (a
/// payload's or a credentials message's), `expiration` echoes the credentials' string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IamRoleCredentialsAckRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl IamRoleCredentialsAckRequest {
    pub fn new(message_id: &str, credentials_id: &str, expiration: &str) -> Self {
        IamRoleCredentialsAckRequest {
            credentials_id: Some(credentials_id.to_owned()),
            expiration: Some(expiration.to_owned()),
            message_id: Some(message_id.to_owned()),
        }
    }
}

/// `TaskStopVerificationMessage` (agent → ACS): tasks running here but absent from the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskStopVerificationMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub stop_candidates: Vec<TaskIdentifier>,
}

/// `NackRequest` (agent → ACS): an update could not be staged or performed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NackRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
