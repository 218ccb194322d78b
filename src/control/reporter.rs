//! State-change reporting: engine changes become `SubmitTaskStateChange` calls, container changes
//! riding along with their task's next change (or a periodic flush at the task's current status),
//! ordered per task, at most ten tasks in flight, retried with backoff for as long as it takes
//! (a control-plane outage delays reports, it never loses them), never sent twice after success.
//! An `InvalidParameterException` drops that one report, as the official agent does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{ContainerStateChange, NetworkBinding, TransportProtocol};
use tokio::sync::{mpsc, Semaphore};

use super::api::{ApiError, Backoff};
use crate::engine::{Binding, Change, ContainerChange, TaskChange};
use crate::model::{Protocol, Status};

/// Concurrent SubmitTaskStateChange calls, as in the official agent.
const MAX_IN_FLIGHT: usize = 10;
/// How long container changes may wait for a task change before they are flushed.
const FLUSH_EVERY: Duration = Duration::from_secs(15);
/// ECS's limit on `reason`.
const REASON_MAX: usize = 1024;

/// One `SubmitTaskStateChange` call's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub task_arn: String,
    /// `PENDING`, `RUNNING` or `STOPPED`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub containers: Vec<ContainerChange>,
    pub pull_started_at: Option<u64>,
    pub pull_stopped_at: Option<u64>,
    pub execution_stopped_at: Option<u64>,
}

/// Batches engine changes into reports: pure bookkeeping, no I/O.
#[derive(Debug, Default)]
pub struct Batcher {
    pending: BTreeMap<String, Vec<ContainerChange>>,
    /// Last task status seen, for flushes.
    last_status: BTreeMap<String, Status>,
}

impl Batcher {
    /// Takes one engine change; returns a report when one is due.
    pub fn push(&mut self, change: Change) -> Option<Report> {
        match change {
            Change::Container(c) => {
                self.pending.entry(c.task_arn.clone()).or_default().push(c);
                None
            }
            Change::Task(t) => Some(self.task_report(t)),
        }
    }

    fn task_report(&mut self, t: TaskChange) -> Report {
        self.last_status.insert(t.task_arn.clone(), t.status);
        let containers = self.pending.remove(&t.task_arn).unwrap_or_default();
        if t.status == Status::Stopped {
            self.last_status.remove(&t.task_arn);
        }
        Report {
            task_arn: t.task_arn,
            status: t.status.backend(),
            reason: t.reason,
            containers,
            pull_started_at: t.pull_started_at,
            pull_stopped_at: t.pull_stopped_at,
            execution_stopped_at: t.execution_stopped_at,
        }
    }

    /// Reports for container changes that waited long enough, at their task's current status.
    pub fn flush(&mut self) -> Vec<Report> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_iter()
            .map(|(task_arn, containers)| Report {
                status: self
                    .last_status
                    .get(&task_arn)
                    .copied()
                    .unwrap_or(Status::None)
                    .backend(),
                task_arn,
                reason: None,
                containers,
                pull_started_at: None,
                pull_stopped_at: None,
                execution_stopped_at: None,
            })
            .collect()
    }
}

/// Sends reports: one ordered queue per task, one sender per task at a time.
pub struct Reporter {
    client: aws_sdk_ecs::Client,
    cluster: String,
    limit: Arc<Semaphore>,
    queues: BTreeMap<String, mpsc::UnboundedSender<Report>>,
    /// Reports that were accepted, for observers (tests, introspection).
    sent: mpsc::UnboundedSender<Report>,
}

impl Reporter {
    pub fn new(
        client: aws_sdk_ecs::Client,
        cluster: String,
    ) -> (Self, mpsc::UnboundedReceiver<Report>) {
        let (sent, sent_rx) = mpsc::unbounded_channel();
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        (
            Reporter {
                client,
                cluster,
                limit,
                queues: BTreeMap::new(),
                sent,
            },
            sent_rx,
        )
    }

    /// Consumes engine changes until the channel closes.
    pub async fn run(mut self, mut changes: mpsc::UnboundedReceiver<Change>) {
        let mut batcher = Batcher::default();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.tick().await;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(c) => if let Some(r) = batcher.push(c) { self.enqueue(r) },
                    None => break,
                },
                _ = flush.tick() => for r in batcher.flush() { self.enqueue(r) },
            }
        }
    }

    fn enqueue(&mut self, report: Report) {
        let arn = report.task_arn.clone();
        if let Some(q) = self.queues.get(&arn) {
            if q.send(report.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(report);
        self.queues.insert(arn, tx);
        let sender = TaskSender {
            client: self.client.clone(),
            cluster: self.cluster.clone(),
            limit: self.limit.clone(),
            sent: self.sent.clone(),
        };
        tokio::spawn(sender.run(rx));
    }
}

struct TaskSender {
    client: aws_sdk_ecs::Client,
    cluster: String,
    limit: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<Report>,
}

impl TaskSender {
    /// Sends this task's reports in order, each until it is accepted (or refused as invalid).
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Report>) {
        while let Some(report) = queue.recv().await {
            let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.3);
            loop {
                let result = {
                    let _permit = self.limit.acquire().await;
                    submit(&self.client, &self.cluster, &report).await
                };
                match result {
                    Ok(()) => {
                        crate::failpoint::hit("reported");
                        let _ = self.sent.send(report);
                        break;
                    }
                    Err(e) if e.code == "InvalidParameterException" => {
                        tracing::error!(task = %report.task_arn, error = %e, "state change refused; dropped");
                        break;
                    }
                    Err(e) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(task = %report.task_arn, error = %e, retry_in_ms = wait.as_millis() as u64, "state change not delivered; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
}

fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(REASON_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

fn time(ms: u64) -> DateTime {
    DateTime::from_millis(ms as i64)
}

fn binding(b: &Binding) -> NetworkBinding {
    let proto = match b.protocol {
        Protocol::Tcp => TransportProtocol::Tcp,
        Protocol::Udp => TransportProtocol::Udp,
    };
    let nb = NetworkBinding::builder().bind_ip("0.0.0.0").protocol(proto);
    if b.container.0 == b.container.1 {
        nb.container_port(i32::from(b.container.0))
            .host_port(i32::from(b.host.0))
            .build()
    } else {
        nb.container_port_range(format!("{}-{}", b.container.0, b.container.1))
            .host_port_range(format!("{}-{}", b.host.0, b.host.1))
            .build()
    }
}

fn container_change(c: &ContainerChange) -> ContainerStateChange {
    ContainerStateChange::builder()
        .container_name(&c.container)
        .status(c.status.backend())
        .set_runtime_id(c.runtime_id.clone())
        .set_exit_code(c.exit_code.map(|e| e as i32))
        .set_reason(c.reason.as_deref().map(truncate))
        .set_image_digest(c.image_digest.clone())
        .set_network_bindings(if c.bindings.is_empty() {
            None
        } else {
            Some(c.bindings.iter().map(binding).collect())
        })
        .build()
}

async fn submit(client: &aws_sdk_ecs::Client, cluster: &str, r: &Report) -> Result<(), ApiError> {
    client
        .submit_task_state_change()
        .cluster(cluster)
        .task(&r.task_arn)
        .status(r.status)
        .reason(r.reason.as_deref().map(truncate).unwrap_or_default())
        .set_containers(Some(r.containers.iter().map(container_change).collect()))
        .set_pull_started_at(r.pull_started_at.map(time))
        .set_pull_stopped_at(r.pull_stopped_at.map(time))
        .set_execution_stopped_at(r.execution_stopped_at.map(time))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ApiError::from_sdk("SubmitTaskStateChange", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(task: &str, name: &str, status: Status) -> Change {
        Change::Container(ContainerChange {
            task_arn: task.into(),
            container: name.into(),
            status,
            runtime_id: Some("abc".into()),
            exit_code: None,
            reason: None,
            bindings: vec![],
            image_digest: None,
        })
    }

    fn task(arn: &str, status: Status) -> Change {
        Change::Task(TaskChange {
            task_arn: arn.into(),
            status,
            reason: None,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
        })
    }

    #[test]
    fn container_changes_ride_with_their_tasks_next_change() {
        let mut b = Batcher::default();
        assert_eq!(b.push(container("t1", "a", Status::Running)), None);
        assert_eq!(b.push(container("t2", "x", Status::Running)), None);
        let r = b.push(task("t1", Status::Running)).unwrap();
        assert_eq!(r.status, "RUNNING");
        assert_eq!(r.containers.len(), 1);
        assert_eq!(r.containers[0].container, "a");
        let flushed = b.flush();
        assert_eq!(
            flushed.len(),
            1,
            "t2's container change is flushed on its own"
        );
        assert_eq!(flushed[0].task_arn, "t2");
        assert_eq!(flushed[0].status, "PENDING");
        assert!(b.flush().is_empty());
    }

    #[test]
    fn a_flush_uses_the_tasks_last_status() {
        let mut b = Batcher::default();
        b.push(task("t1", Status::Running));
        b.push(container("t1", "side", Status::Stopped));
        let flushed = b.flush();
        assert_eq!(flushed[0].status, "RUNNING");
        assert_eq!(flushed[0].containers[0].status, Status::Stopped);
    }

    #[test]
    fn reasons_are_cut_at_1024_bytes_on_a_char_boundary() {
        let long = "é".repeat(600);
        let cut = truncate(&long);
        assert!(cut.len() <= 1024);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn port_ranges_are_reported_as_ranges() {
        let b = binding(&Binding {
            container: (5000, 5002),
            host: (40000, 40002),
            protocol: Protocol::Udp,
        });
        assert_eq!(b.container_port_range(), Some("5000-5002"));
        assert_eq!(b.host_port_range(), Some("40000-40002"));
        assert_eq!(b.container_port(), None);
        let single = binding(&Binding {
            container: (80, 80),
            host: (32768, 32768),
            protocol: Protocol::Tcp,
        });
        assert_eq!(
            (single.container_port(), single.host_port()),
            (Some(80), Some(32768))
        );
    }
}
