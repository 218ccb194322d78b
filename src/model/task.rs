//! Task and Container exactly as ACS delivers them (`acs-api-2.json`, camelCase JSON).
//!
//! Only shapes and their serde forms live here: no behaviour beyond small accessors. Fields the
//! agent does not act on yet are kept (as raw JSON where their shape is large) so that nothing a
//! payload carries is lost. Credentials are never printed by `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task as sent in `PayloadMessage.tasks[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    pub arn: String,
    pub task_cluster_arn: Option<String>,
    pub family: String,
    /// Task definition revision, as a string.
    pub version: String,
    /// `RUNNING` or `STOPPED` (the agent also understands the other statuses).
    pub desired_status: Option<String>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// Task-level CPU in vCPU (e.g. 0.25).
    pub cpu: Option<f64>,
    /// Task-level memory in MiB.
    pub memory: Option<i64>,
    /// `bridge` (default), `host`, `awsvpc`, `none`.
    pub network_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
    pub role_credentials: Option<RoleCredentials>,
    pub execution_role_credentials: Option<RoleCredentials>,
    /// Task-level overrides, as a JSON string.
    pub overrides: Option<String>,
    pub launch_type: Option<String>,
    pub service_name: Option<String>,
    pub group: Option<String>,
    pub zone: Option<String>,
    pub task_definition_account_id: Option<String>,
    pub agent_configuration: Option<String>,
    pub enable_fault_injection: Option<bool>,
    pub elastic_network_interfaces: Option<Vec<Value>>,
    pub associations: Option<Vec<Value>>,
    pub attachments: Option<Vec<Value>>,
    pub proxy_configuration: Option<Value>,
    pub trusted_execution_configuration: Option<Value>,
}

impl Task {
    /// The task ID: the last segment of the ARN.
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }

    /// The path of the task role's credentials on the credentials endpoint
    /// (`/v2/credentials/<id>`), when the task has a role.
    pub fn role_credentials_uri(&self) -> Option<String> {
        self.role_credentials
            .as_ref()
            .filter(|c| !c.credentials_id.is_empty())
            .map(|c| format!("/v2/credentials/{}", c.credentials_id))
    }
}

/// A container of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub container_arn: Option<String>,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entry_point: Option<Vec<String>>,
    /// CPU shares (0 means the Docker minimum of 2).
    pub cpu: Option<i64>,
    /// Hard memory limit in MiB.
    pub memory: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub environment_files: Option<Vec<Value>>,
    /// Defaults to true when absent.
    pub essential: Option<bool>,
    pub port_mappings: Option<Vec<PortMapping>>,
    pub links: Option<Vec<String>>,
    pub mount_points: Option<Vec<MountPoint>>,
    pub volumes_from: Option<Vec<VolumeFrom>>,
    pub linux_parameters: Option<LinuxParameters>,
    pub privileged: Option<bool>,
    pub docker_config: Option<DockerConfig>,
    pub depends_on: Option<Vec<ContainerDependency>>,
    /// Seconds.
    pub start_timeout: Option<i64>,
    /// Seconds.
    pub stop_timeout: Option<i64>,
    /// `docker` when the health check in `dockerConfig.config` is used.
    pub health_check_type: Option<String>,
    pub registry_authentication: Option<Value>,
    pub logs_auth_strategy: Option<String>,
    pub secrets: Option<Vec<Value>>,
    /// Container overrides as a JSON string (`{"command":[…]}`).
    pub overrides: Option<String>,
    pub restart_policy: Option<RestartPolicy>,
    pub firelens_configuration: Option<Value>,
    pub managed_agents: Option<Vec<Value>>,
    pub credential_specs: Option<Vec<String>>,
    pub network_interface_names: Option<Vec<String>>,
}

impl Container {
    /// Whether the task stops when this container stops (true unless set false).
    pub fn is_essential(&self) -> bool {
        self.essential.unwrap_or(true)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortMapping {
    pub container_port: Option<u16>,
    /// 0 or absent: a dynamic host port.
    pub host_port: Option<u16>,
    /// `start-end`, with a dynamic host port range.
    pub container_port_range: Option<String>,
    pub protocol: Option<Protocol>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeFrom {
    pub source_container: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxParameters {
    pub capabilities: Option<KernelCapabilities>,
    pub devices: Option<Vec<Device>>,
    pub init_process_enabled: Option<bool>,
    /// MiB.
    pub shared_memory_size: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KernelCapabilities {
    pub add: Option<Vec<String>>,
    pub drop: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    pub host_path: String,
    pub container_path: Option<String>,
    pub permissions: Option<Vec<String>>,
}

/// Docker-schema JSON strings laid over what the agent builds (see `runtime`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DockerConfig {
    pub config: Option<String>,
    pub host_config: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: DependencyCondition,
}

/// When a dependent container may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DependencyCondition {
    /// The dependency has started.
    Start,
    /// The dependency has exited, with any code.
    Complete,
    /// The dependency has exited with code 0.
    Success,
    /// The dependency's health check passes.
    Healthy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RestartPolicy {
    pub enabled: Option<bool>,
    pub ignored_exit_codes: Option<Vec<i64>>,
    /// Seconds.
    pub restart_attempt_period: Option<i64>,
}

/// A task volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub name: String,
    /// `host` (default), `docker`, `efs`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub host: Option<HostVolume>,
    pub docker_volume_configuration: Option<DockerVolumeConfiguration>,
    pub efs_volume_configuration: Option<Value>,
    pub fsx_windows_file_server_volume_configuration: Option<Value>,
    pub ebs_volume_configuration: Option<Value>,
    pub log_driver_volume_configuration: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostVolume {
    /// Empty or absent: a task-scoped empty volume.
    pub source_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DockerVolumeConfiguration {
    /// `task` (default) or `shared`.
    pub scope: Option<String>,
    pub autoprovision: Option<bool>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// IAM role credentials delivered with a task or in `IAMRoleCredentialsMessage`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleCredentials {
    pub credentials_id: String,
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
    pub credential_scope: Option<String>,
}

impl fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("credentials_id", &self.credentials_id)
            .field("role_arn", &self.role_arn)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_payload_fixture_task() {
        let text = include_str!("../../tests/fixtures/acs/PayloadMessage.json");
        let envelope: Value = serde_json::from_str(text).unwrap();
        let task: Task = serde_json::from_value(envelope["message"]["tasks"][0].clone()).unwrap();
        assert_eq!(task.family, "test");
        assert_eq!(task.id(), task.arn.rsplit('/').next().unwrap());
        let c = &task.containers[0];
        assert!(!c.image.is_empty());
        assert!(c.is_essential());
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let creds = RoleCredentials {
            secret_access_key: "SECRETKEY".into(),
            session_token: "TOKEN".into(),
            ..Default::default()
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("SECRETKEY") && !shown.contains("TOKEN"),
            "{shown}"
        );
    }

    #[test]
    fn dependency_conditions_use_acs_words() {
        let dep: ContainerDependency =
            serde_json::from_str(r#"{"containerName":"init","condition":"SUCCESS"}"#).unwrap();
        assert_eq!(dep.condition, DependencyCondition::Success);
        assert!(serde_json::from_str::<ContainerDependency>(
            r#"{"containerName":"x","condition":"READY"}"#
        )
        .is_err());
    }
}
