//! What the TCS session publishes, gathered apart from the connection so that polling goes on
//! while TCS is away: Docker stats of every RUNNING container (polled, one short request per
//! container, never a stats stream each), how long each health status has lasted, and the
//! instance's `ContainerRuntime` status from a Docker ping.
//!
//! The builders turn that state and the engine's snapshot into one publish cycle; they are pure
//! (the time is passed in). Limits: `statusSince` is when this module first saw the status
//! (to within a poll), not Docker's own transition time; metrics are per container in bridge and
//! host mode only (no awsvpc task network, Service Connect, EBS or instance storage metrics).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bollard::query_parameters::StatsOptionsBuilder;
use bollard::Docker;
use futures_util::{stream, StreamExt};

use super::doctor::{self, Doctor};
use super::stats::{Sample, Series};
use crate::control::tcs::{
    ContainerHealth, ContainerMetric, HealthCycle, MetricsCycle, RestartStatsSet, TaskHealth,
    TaskMetric, Timestamp,
};
use crate::engine::TaskState;
use crate::model::{Health, Status};

/// Stats requests in flight at once.
const CONCURRENT_POLLS: usize = 8;
/// Polls per publish interval (the official agent's polling default is 10 s for 20 s).
pub(super) const POLLS_PER_PUBLISH: u32 = 2;
/// One stats request.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(5);

/// The instance and cluster every request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub cluster: String,
    pub instance_arn: String,
}

/// A container the telemetry follows: known RUNNING, with a Docker container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Running {
    pub task_arn: String,
    pub family: String,
    pub version: String,
    pub name: String,
    pub docker_id: String,
    /// Network stats are sent for bridge-mode tasks only, as the official agent does.
    pub bridge: bool,
    /// Restarts by the restart policy, when the container has one.
    pub restart_count: Option<u32>,
    /// The Docker health status, when the container has a health check.
    pub health: Option<Health>,
}

/// The RUNNING containers of a snapshot, in task order.
pub(super) fn running(snapshot: &[TaskState]) -> Vec<Running> {
    let mut out = Vec::new();
    for t in snapshot {
        let bridge = matches!(
            t.task.network_mode.as_deref(),
            None | Some("bridge") | Some("")
        );
        for c in &t.containers {
            let Some(docker_id) = c.docker_id.clone().filter(|_| c.known == Status::Running) else {
                continue;
            };
            let def = t.task.containers.iter().find(|d| d.name == c.name);
            let checked = def
                .and_then(|d| d.health_check_type.as_deref())
                .is_some_and(|k| k.eq_ignore_ascii_case("docker"));
            out.push(Running {
                task_arn: t.task.arn.clone(),
                family: t.task.family.clone(),
                version: t.task.version.clone(),
                name: c.name.clone(),
                docker_id,
                bridge,
                restart_count: c.restart.as_ref().map(|_| c.restart_count),
                health: checked.then_some(c.health),
            });
        }
    }
    out
}

/// Everything gathered between publishes.
#[derive(Debug)]
pub(super) struct Gathered {
    series: HashMap<String, Series>,
    /// Per Docker ID: the health status and since when it holds.
    health_since: HashMap<String, (Health, Timestamp)>,
    pub doctor: Doctor,
}

impl Gathered {
    pub fn new(now: SystemTime) -> Self {
        Gathered {
            series: HashMap::new(),
            health_since: HashMap::new(),
            doctor: Doctor::new(now),
        }
    }

    /// Adds polled samples; forgets containers that are no longer running.
    pub fn record(&mut self, containers: &[Running], samples: Vec<(String, Sample)>) {
        let live: HashSet<&str> = containers.iter().map(|c| c.docker_id.as_str()).collect();
        self.series.retain(|id, _| live.contains(id.as_str()));
        for (id, sample) in samples {
            if live.contains(id.as_str()) {
                self.series.entry(id).or_default().push(sample);
            }
        }
    }

    /// Notes health transitions of the checked containers.
    pub fn note_health(&mut self, containers: &[Running], now: SystemTime) {
        let live: HashSet<&str> = containers.iter().map(|c| c.docker_id.as_str()).collect();
        self.health_since.retain(|id, _| live.contains(id.as_str()));
        for c in containers {
            let Some(health) = c.health else { continue };
            match self.health_since.get(&c.docker_id) {
                Some((seen, _)) if *seen == health => {}
                _ => {
                    let since = Timestamp::from_system_time(now);
                    self.health_since
                        .insert(c.docker_id.clone(), (health, since));
                }
            }
        }
    }

    /// One metrics cycle: idle when nothing runs (or metrics are disabled); `None` when
    /// containers run but none has a figure yet (the official agent sends nothing then).
    pub fn metrics_cycle(
        &mut self,
        containers: &[Running],
        meta: &Meta,
        disabled: bool,
        message_id: String,
        now: SystemTime,
    ) -> Option<MetricsCycle> {
        let idle = disabled || containers.is_empty();
        let task_metrics = if idle {
            Vec::new()
        } else {
            self.task_metrics(containers)
        };
        if !idle && task_metrics.is_empty() {
            return None;
        }
        Some(MetricsCycle {
            cluster: meta.cluster.clone(),
            container_instance: meta.instance_arn.clone(),
            message_id,
            timestamp: Timestamp::from_system_time(now),
            instance_metrics: None,
            task_metrics,
        })
    }

    fn task_metrics(&mut self, containers: &[Running]) -> Vec<TaskMetric> {
        let mut tasks: Vec<TaskMetric> = Vec::new();
        for c in containers {
            let Some(stats) = self.series.get_mut(&c.docker_id).and_then(Series::take) else {
                continue;
            };
            let metric = ContainerMetric {
                container_name: Some(c.name.clone()),
                cpu_stats_set: Some(stats.cpu),
                memory_stats_set: Some(stats.memory),
                network_stats_set: stats.network.filter(|_| c.bridge),
                restart_stats_set: c.restart_count.map(|n| RestartStatsSet {
                    restart_count: Some(i64::from(n)),
                }),
                storage_stats_set: Some(stats.storage),
                ..ContainerMetric::default()
            };
            task_entry(&mut tasks, c, |arn, family, version| TaskMetric {
                task_arn: Some(arn),
                task_definition_family: Some(family),
                task_definition_version: Some(version),
                ..TaskMetric::default()
            })
            .container_metrics
            .push(metric);
        }
        tasks
    }

    /// One health cycle, `None` when no running container has a health check.
    pub fn health_cycle(
        &mut self,
        containers: &[Running],
        meta: &Meta,
        message_id: String,
        now: SystemTime,
    ) -> Option<HealthCycle> {
        self.note_health(containers, now);
        let mut tasks: Vec<TaskHealth> = Vec::new();
        for c in containers {
            let Some(&(health, since)) = self.health_since.get(&c.docker_id) else {
                continue;
            };
            let container = ContainerHealth {
                container_name: Some(c.name.clone()),
                health_status: Some(health_word(health).to_owned()),
                status_message: None,
                status_since: Some(since),
            };
            task_entry(&mut tasks, c, |arn, family, version| TaskHealth {
                task_arn: Some(arn),
                task_definition_family: Some(family),
                task_definition_version: Some(version),
                ..TaskHealth::default()
            })
            .containers
            .push(container);
        }
        (!tasks.is_empty()).then(|| HealthCycle {
            cluster: meta.cluster.clone(),
            container_instance: meta.instance_arn.clone(),
            message_id,
            timestamp: Timestamp::from_system_time(now),
            tasks,
        })
    }
}

/// Per-task entries share a shape: find the task's entry (containers come grouped by task) or
/// start one.
trait TaskEntry {
    fn arn(&self) -> Option<&str>;
}

impl TaskEntry for TaskMetric {
    fn arn(&self) -> Option<&str> {
        self.task_arn.as_deref()
    }
}

impl TaskEntry for TaskHealth {
    fn arn(&self) -> Option<&str> {
        self.task_arn.as_deref()
    }
}

fn task_entry<'a, T: TaskEntry>(
    tasks: &'a mut Vec<T>,
    c: &Running,
    new: impl FnOnce(String, String, String) -> T,
) -> &'a mut T {
    let position = tasks
        .iter()
        .position(|t| t.arn() == Some(c.task_arn.as_str()));
    let index = position.unwrap_or_else(|| {
        tasks.push(new(c.task_arn.clone(), c.family.clone(), c.version.clone()));
        tasks.len() - 1
    });
    &mut tasks[index]
}

fn health_word(health: Health) -> &'static str {
    match health {
        Health::Healthy => "HEALTHY",
        Health::Unhealthy => "UNHEALTHY",
        Health::Unknown => "UNKNOWN",
    }
}

/// What the collector loop needs.
pub(super) struct CollectorContext<'a> {
    pub docker: &'a Docker,
    pub snapshots: &'a tokio::sync::watch::Receiver<crate::runtime::Snapshot>,
    pub disable_metrics: bool,
    pub publish_interval: Duration,
}

/// Polls forever: stats every half publish interval, a Docker ping every publish interval.
pub(super) async fn run(ctx: CollectorContext<'_>, gathered: &Mutex<Gathered>) {
    let every = (ctx.publish_interval / POLLS_PER_PUBLISH).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fallback_cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    for round in 0u64.. {
        tick.tick().await;
        let containers = running(&ctx.snapshots.borrow());
        lock(gathered).note_health(&containers, SystemTime::now());
        if !ctx.disable_metrics {
            let samples = poll(ctx.docker, &containers, fallback_cpus).await;
            lock(gathered).record(&containers, samples);
        }
        if round % u64::from(POLLS_PER_PUBLISH) == 0 {
            let answered = doctor::ping(ctx.docker).await;
            let changed = lock(gathered).doctor.record(answered, SystemTime::now());
            match changed {
                Some("OK") => tracing::info!(status = "OK", "ContainerRuntime status"),
                Some(status) => tracing::warn!(status, "docker does not answer pings"),
                None => {}
            }
        }
    }
}

/// The gathered state; a panic elsewhere while holding it leaves data that is still usable.
pub(super) fn lock(gathered: &Mutex<Gathered>) -> std::sync::MutexGuard<'_, Gathered> {
    gathered
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One one-shot stats request per container, a few at a time.
async fn poll(
    docker: &Docker,
    containers: &[Running],
    fallback_cpus: u32,
) -> Vec<(String, Sample)> {
    let ids: Vec<String> = containers.iter().map(|c| c.docker_id.clone()).collect();
    stream::iter(ids)
        .map(|id| async move {
            let sample = poll_one(docker, &id, fallback_cpus).await;
            sample.map(|s| (id, s))
        })
        .buffer_unordered(CONCURRENT_POLLS)
        .filter_map(|s| async move { s })
        .collect()
        .await
}

async fn poll_one(docker: &Docker, id: &str, fallback_cpus: u32) -> Option<Sample> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stats = docker.stats(id, Some(options));
    let response = match tokio::time::timeout(DOCKER_TIMEOUT, stats.next()).await {
        Ok(Some(Ok(r))) => r,
        Ok(Some(Err(e))) => {
            tracing::debug!(container = %id, error = %e, "docker stats failed");
            return None;
        }
        Ok(None) | Err(_) => {
            tracing::debug!(container = %id, "docker stats gave no answer");
            return None;
        }
    };
    // Docker answers a one-shot request right after reading the cgroup (waiting up to a second
    // for its collector's next cycle first), so the arrival time stands for the reading time.
    Sample::from_docker(&response, Instant::now(), fallback_cpus)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const ARN: &str = "arn:aws:ecs:us-west-2:123456789012:task/test/1111";

    fn meta() -> Meta {
        Meta {
            cluster: "test".into(),
            instance_arn: "arn:aws:ecs:us-west-2:123456789012:container-instance/test/abc".into(),
        }
    }

    fn container(task: &str, name: &str, id: &str, health: Option<Health>) -> Running {
        Running {
            task_arn: task.into(),
            family: "web".into(),
            version: "3".into(),
            name: name.into(),
            docker_id: id.into(),
            bridge: true,
            restart_count: None,
            health,
        }
    }

    fn sample(at: Instant, cpu_ns: u64) -> Sample {
        Sample {
            at,
            cpu_total_ns: cpu_ns,
            cpus: 1,
            memory_bytes: 0,
            storage_read_bytes: 0,
            storage_write_bytes: 0,
            network: None,
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_695_000 + seconds)
    }

    #[test]
    fn nothing_running_is_one_idle_cycle() {
        let mut g = Gathered::new(at(0));
        let cycle = g
            .metrics_cycle(&[], &meta(), false, "m-1".into(), at(1))
            .unwrap();
        assert!(cycle.task_metrics.is_empty());
        let requests = crate::control::tcs::metrics_requests(cycle);
        let value = serde_json::to_value(&requests).unwrap();
        assert_eq!(
            value,
            json!([{"metadata": {"cluster": "test", "containerInstance": meta().instance_arn,
                "fin": true, "idle": true, "messageId": "m-1"}, "timestamp": 1795695001}])
        );
    }

    #[test]
    fn running_containers_without_figures_publish_nothing_yet() {
        let mut g = Gathered::new(at(0));
        let c = [container(ARN, "app", "d1", None)];
        g.record(&c, vec![("d1".into(), sample(Instant::now(), 0))]);
        assert!(g
            .metrics_cycle(&c, &meta(), false, "m".into(), at(1))
            .is_none());
    }

    #[test]
    fn disabled_metrics_are_always_idle() {
        let mut g = Gathered::new(at(0));
        let c = [container(ARN, "app", "d1", None)];
        let cycle = g
            .metrics_cycle(&c, &meta(), true, "m".into(), at(1))
            .unwrap();
        assert!(cycle.task_metrics.is_empty());
    }

    #[test]
    fn container_metrics_are_grouped_per_task() {
        let t0 = Instant::now();
        let other = "arn:aws:ecs:us-west-2:123456789012:task/test/2222";
        let c = [
            container(ARN, "app", "d1", None),
            container(other, "db", "d2", None),
            container(ARN, "side", "d3", None),
        ];
        let mut g = Gathered::new(at(0));
        for (i, secs) in [0u64, 1].iter().enumerate() {
            let samples = ["d1", "d2", "d3"]
                .iter()
                .map(|id| {
                    (
                        id.to_string(),
                        sample(t0 + Duration::from_secs(*secs), i as u64 * 500_000_000),
                    )
                })
                .collect();
            g.record(&c, samples);
        }
        let cycle = g
            .metrics_cycle(&c, &meta(), false, "m".into(), at(2))
            .unwrap();
        let tasks: Vec<(Option<&str>, Vec<Option<&str>>)> = cycle
            .task_metrics
            .iter()
            .map(|t| {
                let names = t
                    .container_metrics
                    .iter()
                    .map(|m| m.container_name.as_deref())
                    .collect();
                (t.task_arn.as_deref(), names)
            })
            .collect();
        assert_eq!(
            tasks,
            [
                (Some(ARN), vec![Some("app"), Some("side")]),
                (Some(other), vec![Some("db")])
            ]
        );
        let app = serde_json::to_value(&cycle.task_metrics[0].container_metrics[0]).unwrap();
        assert_eq!(
            app["cpuStatsSet"],
            json!({"max": 50, "min": 50, "sampleCount": 1, "sum": 50})
        );
        assert_eq!(
            cycle.task_metrics[0].task_definition_family.as_deref(),
            Some("web")
        );
        assert_eq!(
            cycle.task_metrics[0].task_definition_version.as_deref(),
            Some("3")
        );
    }

    #[test]
    fn stopped_containers_are_forgotten() {
        let t0 = Instant::now();
        let mut g = Gathered::new(at(0));
        let c = [container(ARN, "app", "d1", None)];
        g.record(&c, vec![("d1".into(), sample(t0, 0))]);
        g.record(
            &[],
            vec![("d1".into(), sample(t0 + Duration::from_secs(1), 10))],
        );
        g.record(
            &c,
            vec![("d1".into(), sample(t0 + Duration::from_secs(2), 20))],
        );
        assert!(
            g.metrics_cycle(&c, &meta(), false, "m".into(), at(3))
                .is_none(),
            "restarted series"
        );
    }

    #[test]
    fn health_is_sent_for_checked_containers_with_the_time_of_the_last_change() {
        let mut g = Gathered::new(at(0));
        let unchecked = container(ARN, "side", "d0", None);
        let mut db = container(ARN, "db", "d1", Some(Health::Unknown));
        assert!(g
            .health_cycle(std::slice::from_ref(&unchecked), &meta(), "h".into(), at(1))
            .is_none());
        g.note_health(&[db.clone()], at(2));
        db.health = Some(Health::Healthy);
        g.note_health(&[db.clone()], at(5));
        let cycle = g
            .health_cycle(&[unchecked, db], &meta(), "h-1".into(), at(9))
            .unwrap();
        let value: Value = serde_json::to_value(&cycle.tasks).unwrap();
        assert_eq!(
            value,
            json!([{"containers": [{"containerName": "db", "healthStatus": "HEALTHY", "statusSince": 1795695005}],
                "taskArn": ARN, "taskDefinitionFamily": "web", "taskDefinitionVersion": "3"}])
        );
    }
}
