//! Splitting one collection cycle into publish requests, as the official agent does: at most
//! [`MAX_TASKS_PER_REQUEST`] tasks and [`MAX_REQUEST_BYTES`] of JSON per request, `fin` on the last
//! request only, instance metrics in the first only, and a single `idle` request for a cycle
//! without tasks.
//!
//! A task too large on its own is split across requests by its Service Connect metrics, with
//! its container metrics in the first part only; a task still too large is sent alone.

use super::messages::{
    HealthMetadata, InstanceMetrics, MetricsMetadata, PublishHealthRequest, PublishMetricsRequest,
    TaskHealth, TaskMetric, Timestamp,
};

/// Tasks per `PublishMetricsRequest` / `PublishHealthRequest`.
pub const MAX_TASKS_PER_REQUEST: usize = 10;
/// Largest `PublishMetricsRequest` message (its JSON, without envelope and signature).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// One metrics collection cycle, before splitting.
#[derive(Debug, Clone, Default)]
pub struct MetricsCycle {
    pub cluster: String,
    pub container_instance: String,
    /// One id for every request of the cycle.
    pub message_id: String,
    pub timestamp: Timestamp,
    pub instance_metrics: Option<InstanceMetrics>,
    pub task_metrics: Vec<TaskMetric>,
}

/// One health collection cycle, before splitting.
#[derive(Debug, Clone, Default)]
pub struct HealthCycle {
    pub cluster: String,
    pub container_instance: String,
    pub message_id: String,
    pub timestamp: Timestamp,
    pub tasks: Vec<TaskHealth>,
}

/// The `PublishMetricsRequest`s for one cycle, in sending order (never empty).
pub fn metrics_requests(cycle: MetricsCycle) -> Vec<PublishMetricsRequest> {
    let mut batcher = MetricsBatcher {
        requests: Vec::new(),
        chunk: Vec::new(),
        chunk_bytes: 0,
        instance_metrics: cycle.instance_metrics.clone(),
        cycle: &cycle,
    };
    if cycle.task_metrics.is_empty() {
        batcher.flush();
    }
    for task in &cycle.task_metrics {
        for part in batcher.split_oversized(task) {
            batcher.push(part);
        }
    }
    batcher.flush();
    let mut requests = batcher.requests;
    if let Some(last) = requests.last_mut().and_then(|r| r.metadata.as_mut()) {
        last.fin = Some(true);
    }
    requests
}

/// The `PublishHealthRequest`s for one cycle (none when there are no tasks).
pub fn health_requests(cycle: HealthCycle) -> Vec<PublishHealthRequest> {
    let count = cycle.tasks.len().div_ceil(MAX_TASKS_PER_REQUEST);
    cycle
        .tasks
        .chunks(MAX_TASKS_PER_REQUEST)
        .enumerate()
        .map(|(i, tasks)| PublishHealthRequest {
            metadata: Some(HealthMetadata {
                cluster: Some(cycle.cluster.clone()),
                container_instance: Some(cycle.container_instance.clone()),
                fin: Some(i + 1 == count),
                message_id: Some(cycle.message_id.clone()),
            }),
            tasks: tasks.to_vec(),
            timestamp: Some(cycle.timestamp),
        })
        .collect()
}

struct MetricsBatcher<'a> {
    cycle: &'a MetricsCycle,
    requests: Vec<PublishMetricsRequest>,
    chunk: Vec<TaskMetric>,
    /// Sum of the chunk's task JSON sizes.
    chunk_bytes: usize,
    /// Taken by the first request.
    instance_metrics: Option<InstanceMetrics>,
}

impl MetricsBatcher<'_> {
    fn push(&mut self, task: TaskMetric) {
        let bytes = json_len(&task);
        if !self.chunk.is_empty() && self.size_with(bytes) > MAX_REQUEST_BYTES {
            self.flush();
        }
        self.chunk.push(task);
        self.chunk_bytes += bytes;
        if self.chunk.len() == MAX_TASKS_PER_REQUEST {
            self.flush();
        }
    }

    /// Emits the pending chunk (an idle request when called with no tasks at all).
    fn flush(&mut self) {
        if self.chunk.is_empty() && !self.requests.is_empty() {
            return;
        }
        let tasks = std::mem::take(&mut self.chunk);
        let request = self.request(tasks);
        self.instance_metrics = None;
        self.chunk_bytes = 0;
        self.requests.push(request);
    }

    fn request(&self, task_metrics: Vec<TaskMetric>) -> PublishMetricsRequest {
        PublishMetricsRequest {
            instance_metrics: self.instance_metrics.clone(),
            metadata: Some(MetricsMetadata {
                cluster: Some(self.cycle.cluster.clone()),
                container_instance: Some(self.cycle.container_instance.clone()),
                fin: Some(false),
                idle: Some(self.cycle.task_metrics.is_empty()),
                message_id: Some(self.cycle.message_id.clone()),
            }),
            task_metrics,
            timestamp: Some(self.cycle.timestamp),
        }
    }

    /// Size of the next request's JSON if a task of `bytes` joined the chunk:
    /// `{…,"taskMetrics":[t1,…,tn],…}` = request without tasks + member + tasks + commas.
    fn size_with(&self, bytes: usize) -> usize {
        let empty = json_len(&self.request(Vec::new()));
        let member = r#","taskMetrics":[]"#.len();
        empty + member + self.chunk_bytes + bytes + self.chunk.len()
    }

    /// A task that does not fit a request on its own, cut into parts by its Service Connect
    /// metrics; container metrics go with the first part.
    fn split_oversized(&self, task: &TaskMetric) -> Vec<TaskMetric> {
        let budget = |part: &TaskMetric| {
            let empty = json_len(&self.request(Vec::new()));
            empty + r#","taskMetrics":[]"#.len() + json_len(part) <= MAX_REQUEST_BYTES
        };
        if task.service_connect_metrics_wrapper.is_empty() || budget(task) {
            return vec![task.clone()];
        }
        let mut parts = Vec::new();
        let mut part = TaskMetric {
            service_connect_metrics_wrapper: Vec::new(),
            ..task.clone()
        };
        for wrapper in &task.service_connect_metrics_wrapper {
            part.service_connect_metrics_wrapper.push(wrapper.clone());
            if part.service_connect_metrics_wrapper.len() > 1 && !budget(&part) {
                let wrapper = part.service_connect_metrics_wrapper.pop();
                let next = TaskMetric {
                    container_metrics: Vec::new(),
                    service_connect_metrics_wrapper: wrapper.into_iter().collect(),
                    ..task.clone()
                };
                parts.push(std::mem::replace(&mut part, next));
            }
        }
        parts.push(part);
        parts
    }
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}
