//! The instance's `ContainerRuntime` status, as the official agent's doctor reports it: a
//! Docker ping is `OK` or `IMPAIRED`; `INITIALIZING` until the first ping; `lastStatusChange`
//! moves only when the status does.

use std::time::{Duration, SystemTime};

use bollard::Docker;

use super::collect::Meta;
use crate::control::tcs::{
    InstanceStatus, InstanceStatusMetadata, PublishInstanceStatusRequest, Timestamp,
};

/// One ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The `ContainerRuntime` check: `INITIALIZING` until Docker first answered or failed a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Doctor {
    status: &'static str,
    last_updated: Timestamp,
    last_change: Timestamp,
}

impl Doctor {
    pub fn new(now: SystemTime) -> Self {
        let at = Timestamp::from_system_time(now);
        Doctor {
            status: "INITIALIZING",
            last_updated: at,
            last_change: at,
        }
    }

    /// Records one ping: `OK` when Docker answered, `IMPAIRED` otherwise. Returns the new
    /// status when it changed.
    pub fn record(&mut self, answered: bool, now: SystemTime) -> Option<&'static str> {
        let status = if answered { "OK" } else { "IMPAIRED" };
        let at = Timestamp::from_system_time(now);
        self.last_updated = at;
        if status == self.status {
            return None;
        }
        self.status = status;
        self.last_change = at;
        Some(status)
    }

    pub fn request(
        &self,
        meta: &Meta,
        request_id: String,
        now: SystemTime,
    ) -> PublishInstanceStatusRequest {
        PublishInstanceStatusRequest {
            metadata: Some(InstanceStatusMetadata {
                cluster: Some(meta.cluster.clone()),
                container_instance: Some(meta.instance_arn.clone()),
                request_id: Some(request_id),
            }),
            statuses: vec![InstanceStatus {
                last_status_change: Some(self.last_change),
                last_updated: Some(self.last_updated),
                status: Some(self.status.to_owned()),
                status_reason: None,
                kind: Some("ContainerRuntime".to_owned()),
            }],
            timestamp: Some(Timestamp::from_system_time(now)),
        }
    }
}

/// Whether Docker answers a ping in time (failures are logged on status changes only).
pub(super) async fn ping(docker: &Docker) -> bool {
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "docker ping failed");
            false
        }
        Err(_) => {
            tracing::debug!("docker ping timed out");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta() -> Meta {
        Meta {
            cluster: "test".into(),
            instance_arn: "arn:aws:ecs:us-west-2:123456789012:container-instance/test/abc".into(),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_695_000 + seconds)
    }

    #[test]
    fn the_doctor_reports_initializing_then_the_ping_result() {
        let mut d = Doctor::new(at(0));
        let status = |d: &Doctor| {
            serde_json::to_value(&d.request(&meta(), "r".into(), at(100)).statuses).unwrap()
        };
        assert_eq!(
            status(&d),
            json!([{"lastStatusChange": 1795695000, "lastUpdated": 1795695000, "status": "INITIALIZING", "type": "ContainerRuntime"}])
        );
        assert_eq!(d.record(true, at(20)), Some("OK"));
        assert_eq!(d.record(true, at(40)), None);
        assert_eq!(
            status(&d),
            json!([{"lastStatusChange": 1795695020, "lastUpdated": 1795695040, "status": "OK", "type": "ContainerRuntime"}])
        );
        assert_eq!(d.record(false, at(60)), Some("IMPAIRED"));
        assert_eq!(status(&d)[0]["status"], "IMPAIRED");
        assert_eq!(status(&d)[0]["lastStatusChange"], 1795695060);
    }
}
