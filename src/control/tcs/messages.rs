//! TCS message shapes as `tcs-api-2.json` names them. Members are declared in alphabetical order
//! (the order of Go's generated structs, so of the official agent's frames); optional members are
//! omitted when absent; floats and timestamps print as Go prints them (`5`, `1795695065.26`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::control::acs::envelope::{go_f64, go_f64_opt};

/// A TCS timestamp: epoch seconds with a millisecond fraction, as a JSON number
/// (`1795695065.26`; whole seconds print without a fraction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp { millis }
    }

    /// Truncated to the millisecond, as the official agent does.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Timestamp { millis }
    }

    pub const fn as_millis(self) -> i64 {
        self.millis
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.millis % 1000 == 0 {
            s.serialize_i64(self.millis / 1000)
        } else {
            s.serialize_f64(self.millis as f64 / 1e3)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seconds = f64::deserialize(d)?;
        // `as` saturates for out-of-range values (and maps NaN to 0): never panics.
        Ok(Timestamp::from_millis((seconds * 1e3).round() as i64))
    }
}

/// `CWStatsSet`: CloudWatch statistics over one publish interval (CPU, memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CwStatsSet {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub sum: Option<f64>,
}

/// `UDoubleCWStatsSet`: all members required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UDoubleCwStatsSet {
    #[serde(serialize_with = "go_f64")]
    pub max: f64,
    #[serde(serialize_with = "go_f64")]
    pub min: f64,
    pub sample_count: i64,
    #[serde(serialize_with = "go_f64")]
    pub sum: f64,
}

/// `ULongStatsSet`: counters; the `overflow*` members carry what exceeds an `i64`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ULongStatsSet {
    pub max: i64,
    pub min: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_sum: Option<i64>,
    pub sample_count: i64,
    pub sum: i64,
}

/// `NetworkStatsSet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkStatsSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes_per_second: Option<UDoubleCwStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_dropped: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_packets: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes_per_second: Option<UDoubleCwStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_dropped: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_packets: Option<ULongStatsSet>,
}

/// `StorageStatsSet`: block I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StorageStatsSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_size_bytes: Option<ULongStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_size_bytes: Option<ULongStatsSet>,
}

/// `RestartStatsSet`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RestartStatsSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<i64>,
}

/// `Dimension` of a general (Service Connect) metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Dimension {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `GeneralMetric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GeneralMetric {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_counts: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub metric_value_double: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_value_long: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_value_stats_set: Option<CwStatsSet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_values: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// `GeneralMetricsWrapper`: one group of general metrics with their dimensions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GeneralMetricsWrapper {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<Dimension>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub general_metrics: Vec<GeneralMetric>,
    /// `"1"` or `"2"` in the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

/// `ContainerMetric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerMetric {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_stats_set: Option<CwStatsSet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub general_metrics_payload: Vec<GeneralMetricsWrapper>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_stats_set: Option<CwStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_stats_set: Option<NetworkStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_stats_set: Option<RestartStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_stats_set: Option<StorageStatsSet>,
}

/// `EphemeralStorageMetrics` (Fargate-style task storage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EphemeralStorageMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_utilized: Option<ULongStatsSet>,
}

/// `VolumeMetric` (EBS volume utilisation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMetric {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<UDoubleCwStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilized: Option<UDoubleCwStatsSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
}

/// `TaskMetric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskMetric {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_metrics: Vec<ContainerMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_metrics: Option<EphemeralStorageMetrics>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_connect_metrics_wrapper: Vec<GeneralMetricsWrapper>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_metrics: Vec<VolumeMetric>,
}

/// `InstanceStorageMetrics`: filesystem use in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceStorageMetrics {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub data_filesystem: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "go_f64_opt")]
    pub root_filesystem: Option<f64>,
}

/// `InstanceMetrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceMetrics {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub general_metrics_payload: Vec<GeneralMetricsWrapper>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<InstanceStorageMetrics>,
}

/// `MetricsMetadata`: `fin` marks the last request of a cycle, `idle` a cycle without tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// `PublishMetricsRequest` (agent → TCS); acked with `AckPublishMetric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PublishMetricsRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_metrics: Option<InstanceMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetricsMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub task_metrics: Vec<TaskMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

/// `ContainerHealth`: `healthStatus` is `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_since: Option<Timestamp>,
}

/// `TaskHealth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_version: Option<String>,
}

/// `HealthMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// `PublishHealthRequest` (agent → TCS); acked with `AckPublishHealth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PublishHealthRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<HealthMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

/// `InstanceStatus`: one doctor check; `status` is `OK`, `IMPAIRED`, `INSUFFICIENT_DATA` or
/// `INITIALIZING`, `type` e.g. `ContainerRuntime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_change: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `InstanceStatusMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceStatusMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `PublishInstanceStatusRequest` (agent → TCS); acked with `AckPublishInstanceStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PublishInstanceStatusRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<InstanceStatusMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<InstanceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

/// `HeartbeatMessage` (TCS → agent); the agent does not answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

/// The shape of TCS's acks, `StopTelemetrySessionMessage` and exceptions: `{"message":"…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub type AckPublishMetric = TextMessage;
pub type AckPublishHealth = TextMessage;
pub type AckPublishInstanceStatus = TextMessage;
pub type StopTelemetrySessionMessage = TextMessage;
pub type ServerException = TextMessage;
pub type BadRequestException = TextMessage;
pub type ResourceValidationException = TextMessage;
pub type InvalidParameterException = TextMessage;
