//! Task start latency: the time from handing a one-container task (cached image) to the engine
//! until the engine reports the task RUNNING, one task at a time and 20 at once, printed next to
//! a bare Docker create + start of the same image measured in the same run.
//!
//! Run it against the test dockerd (`scripts/test-env up`) with `cargo bench --bench task_start`.
//! It prints figures and says whether the issue's targets are met; it asserts nothing. Every
//! container it makes carries a run-unique `com.amazonaws.ecs.cluster` label and is removed at
//! the end, also after an error, a panic or Ctrl-C. It never pulls: the image must be local.
//!
//! Known limits: ten samples per sequential figure (p90 is the 9th of 10), three rounds per
//! concurrent figure; the phase split relies on Docker's own `Created`/`StartedAt` timestamps,
//! read against this host's clock, so the daemon must run on this host.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::Docker;
use ecs_agent::config::ImagePullBehavior;
use ecs_agent::engine::{Change, Engine, EngineConfig, HostCapacity, Input};
use ecs_agent::model::{task_from_definition, LocalRunOptions, Status, Task};
use ecs_agent::runtime::{names, DockerRuntime, DockerSettings, Driver, DriverHandle};
use ecs_agent::runtime::{DriverSettings, Snapshot};
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};

const RUNS: usize = 10;
const CONCURRENT: usize = 20;
const ROUNDS: usize = 3;
const WAIT: Duration = Duration::from_secs(60);
const TARGET_OVERHEAD_MS: f64 = 20.0;
const TARGET_RATIO: f64 = 1.5;

/// The busybox image `scripts/test-env` imports offline (as the integration tests use it).
fn image() -> String {
    std::env::var("ECS_TEST_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "ecs-agent-test/busybox:latest".into())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("task_start: measures only under `cargo bench --bench task_start`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

/// Measures, then removes every labelled container whatever happened.
async fn bench() -> Result<()> {
    let docker = Docker::connect_with_unix_defaults()?
        .negotiate_version()
        .await
        .context("dockerd does not answer; start it with `sudo scripts/test-env up`")?;
    let mut rig = Rig::new(docker);
    let measured = AssertUnwindSafe(measure(&mut rig)).catch_unwind();
    let outcome = tokio::select! {
        o = measured => o,
        _ = tokio::signal::ctrl_c() => Ok(Err(anyhow!("interrupted"))),
    };
    rig.handle.shutdown();
    for _ in 0..2 {
        // A second pass catches a create that was still under way when the first one listed.
        common::remove_labelled("task_start", &rig.docker, &rig.label).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    match outcome {
        Ok(report) => report.map(|r| r.print()),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// One start: how long it took, and Docker's own view of its phases.
#[derive(Debug, Clone, Copy)]
struct Sample {
    total: Duration,
    /// Hand-over until Docker recorded the container as created.
    before_create: Duration,
    /// Docker's `Created` until its `StartedAt`.
    docker_start: Duration,
    /// Docker's `StartedAt` until the caller learnt of it (start returned / RUNNING received).
    after_start: Duration,
}

/// One round of starts at once: its wall time and, from Docker's timestamps, when the last
/// container was created and the last one started, counted from the hand-over.
#[derive(Debug, Clone, Copy)]
struct Round {
    wall: Duration,
    last_created: Duration,
    last_started: Duration,
}

struct Report {
    host: String,
    /// Samples per kind, in the order of [`KINDS`].
    sequential: [Vec<Sample>; 3],
    bare_20: Vec<Round>,
    engine_20: Vec<Round>,
}

/// The sequential kinds take turns, so load from elsewhere on the host hits all alike.
async fn measure(rig: &mut Rig) -> Result<Report> {
    let host = host_facts(&rig.docker).await?;
    let mut sequential: [Vec<Sample>; 3] = Default::default();
    for run in 0..=RUNS {
        for (samples, kind) in sequential.iter_mut().zip(KINDS) {
            let sample = rig.sample(kind).await?;
            if run > 0 {
                samples.push(sample); // run 0 is the warm-up
            }
        }
    }
    let mut bare_20 = Vec::new();
    let mut engine_20 = Vec::new();
    for _ in 0..ROUNDS {
        bare_20.push(rig.bare_concurrent().await?);
        engine_20.push(rig.engine_concurrent().await?);
    }
    Ok(Report {
        host,
        sequential,
        bare_20,
        engine_20,
    })
}

/// The first line of `/proc/loadavg` (1, 5 and 15 minutes), or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn host_facts(docker: &Docker) -> Result<String> {
    if docker.inspect_image(&image()).await.is_err() {
        bail!(
            "{} is not local; `sudo scripts/test-env up` imports it",
            image()
        );
    }
    let info = docker.info().await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    Ok(format!(
        "{cores} cores, {} MiB RAM, load average {}; docker {} ({} storage, {} cgroup driver)",
        info.mem_total.unwrap_or(0) >> 20,
        load_average(),
        info.server_version.unwrap_or_default(),
        info.driver.unwrap_or_default(),
        info.cgroup_driver
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ))
}

/// The Docker client, the driver under test and the run's label.
struct Rig {
    docker: Docker,
    label: String,
    handle: DriverHandle,
    changes: mpsc::UnboundedReceiver<Change>,
    /// Kept so the driver's snapshot channel stays open.
    _snapshots: watch::Receiver<Snapshot>,
    tasks_made: u32,
}

/// What one sequential sample starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `docker create` + `docker start`.
    Bare,
    /// The Docker calls the engine makes: image inspect (its pull step), create, start.
    BareInspect,
    /// A task handed to the engine.
    Engine,
}

const KINDS: [Kind; 3] = [Kind::Bare, Kind::BareInspect, Kind::Engine];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Bare => "docker create+start (bare)",
            Kind::BareInspect => "docker inspect image+create+start",
            Kind::Engine => "engine: AddTask sent -> RUNNING received",
        }
    }
}

impl Rig {
    fn new(docker: Docker) -> Self {
        let label = format!(
            "ecs-bench-task-start-{}-{}",
            std::process::id(),
            unix_nanos()
        );
        let runtime = DockerRuntime::new(docker.clone(), docker_settings());
        let settings = DriverSettings {
            cluster: label.clone(),
            disable_privileged: false,
            remove_unknown: false,
        };
        let engine = Engine::new(engine_config(), 1234);
        let (driver, handle, changes, snapshots) = Driver::new(engine, runtime, settings);
        tokio::spawn(driver.run());
        Rig {
            docker,
            label,
            handle,
            changes,
            _snapshots: snapshots,
            tasks_made: 0,
        }
    }

    /// One start of `kind`, split at Docker's timestamps; then its container is removed.
    async fn sample(&mut self, kind: Kind) -> Result<Sample> {
        let task = (kind == Kind::Engine).then(|| self.task()).transpose()?;
        let began = SystemTime::now();
        let (total, id) = match task {
            Some(task) => {
                let (total, ids) = self.engine_start(vec![task]).await?;
                let id = ids.into_iter().next();
                (total, id.ok_or_else(|| anyhow!("no container id"))?)
            }
            None => bare_start(&self.docker, &self.label, kind == Kind::BareInspect).await?,
        };
        let sample = phases(&self.docker, &id, began, total).await;
        common::remove_labelled("task_start", &self.docker, &self.label).await;
        sample
    }

    async fn bare_concurrent(&mut self) -> Result<Round> {
        let began = (SystemTime::now(), Instant::now());
        let runs: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (docker, label) = (self.docker.clone(), self.label.clone());
                tokio::spawn(async move { bare_start(&docker, &label, false).await })
            })
            .collect();
        let mut ids = Vec::with_capacity(CONCURRENT);
        for run in runs {
            ids.push(run.await??.1);
        }
        let wall = began.1.elapsed();
        let round = round(&self.docker, &ids, began.0, wall).await;
        common::remove_labelled("task_start", &self.docker, &self.label).await;
        round
    }

    async fn engine_concurrent(&mut self) -> Result<Round> {
        let tasks = (0..CONCURRENT)
            .map(|_| self.task())
            .collect::<Result<Vec<_>>>()?;
        let began = SystemTime::now();
        let (wall, ids) = self.engine_start(tasks).await?;
        let round = round(&self.docker, &ids, began, wall).await;
        common::remove_labelled("task_start", &self.docker, &self.label).await;
        round
    }

    /// Hands the tasks over at once; the time until all are RUNNING and their container ids.
    /// Then stops them and waits for STOPPED.
    async fn engine_start(&mut self, tasks: Vec<Task>) -> Result<(Duration, Vec<String>)> {
        let arns: Vec<String> = tasks.iter().map(|t| t.arn.clone()).collect();
        let began = Instant::now();
        for task in tasks {
            self.send(Input::AddTask(Box::new(task)))?;
        }
        let ids = self.await_status(&arns, Status::Running).await?;
        let took = began.elapsed();
        for task_arn in &arns {
            let status = Status::Stopped;
            let task_arn = task_arn.clone();
            self.send(Input::Desired { task_arn, status })?;
        }
        self.await_status(&arns, Status::Stopped).await?;
        Ok((took, ids))
    }

    fn send(&self, input: Input) -> Result<()> {
        match self.handle.send(input) {
            true => Ok(()),
            false => bail!("the driver has stopped"),
        }
    }

    /// Waits until every task in `arns` reports `status`; returns the container ids reported
    /// with it. A task that stops while RUNNING is awaited is an error.
    async fn await_status(&mut self, arns: &[String], status: Status) -> Result<Vec<String>> {
        let mut pending: HashSet<&str> = arns.iter().map(String::as_str).collect();
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pending.is_empty() {
            let change = tokio::time::timeout_at(deadline, self.changes.recv())
                .await
                .map_err(|_| anyhow!("{} task(s) not {} in time", pending.len(), status.as_str()))?
                .ok_or_else(|| anyhow!("the driver has stopped"))?;
            match change {
                Change::Container(c) if c.status == status && pending.contains(&*c.task_arn) => {
                    ids.extend(c.runtime_id);
                }
                Change::Task(t) if t.status == status => {
                    pending.remove(t.task_arn.as_str());
                }
                Change::Task(t)
                    if t.status == Status::Stopped && pending.contains(&*t.task_arn) =>
                {
                    bail!("task {} stopped: {:?}", t.task_arn, t.reason);
                }
                _ => {}
            }
        }
        Ok(ids)
    }

    /// A one-container task running `sleep 300`, in this run's cluster.
    fn task(&mut self) -> Result<Task> {
        self.tasks_made += 1;
        let json = format!(
            r#"{{"family":"bench-task-start","containerDefinitions":[{{"name":"app","image":"{}",
            "memory":32,"stopTimeout":1,"command":["sleep","300"]}}]}}"#,
            image()
        );
        let opts = LocalRunOptions {
            cluster: self.label.clone(),
            task_id: format!("{}-{}", self.label, self.tasks_made),
            region: "us-west-2".into(),
            account_id: "123456789012".into(),
        };
        task_from_definition(&json, &opts).map_err(|e| anyhow!("bench task definition: {e}"))
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        stop_timeout: Duration::from_secs(10),
        pull_upfront: false,
        // The bench removes the containers itself; the engine keeps its tasks, as the agent
        // keeps stopped tasks for hours.
        cleanup_wait: Duration::from_secs(3600),
        cleanup_jitter: Duration::ZERO,
        stop_retry: Duration::from_secs(1),
        capacity: HostCapacity {
            cpu: 4096,
            memory_mib: 8192,
            reserved_tcp: [22].into(),
            reserved_udp: BTreeSet::new(),
            dynamic_ports: (41000, 41999),
            port_in_use: None,
        },
    }
}

fn docker_settings() -> DockerSettings {
    DockerSettings {
        pull_behavior: ImagePullBehavior::PreferCached,
        pull_timeout: Duration::from_secs(60),
        create_timeout: Duration::from_secs(60),
        start_timeout: Duration::from_secs(60),
        max_concurrent_pulls: 2,
    }
}

/// `docker create` + `docker start` with what the task asks for (command, 32 MiB), timed from
/// before the create (or the image inspect the engine's pull step makes) until start returns.
async fn bare_start(
    docker: &Docker,
    label: &str,
    inspect_image: bool,
) -> Result<(Duration, String)> {
    let body = ContainerCreateBody {
        image: Some(image()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(HashMap::from([(names::LABEL_CLUSTER.into(), label.into())])),
        host_config: Some(HostConfig {
            memory: Some(32 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    let began = Instant::now();
    if inspect_image {
        docker.inspect_image(&image()).await?;
    }
    let id = docker.create_container(None, body).await?.id;
    docker.start_container(&id, None).await?;
    Ok((began.elapsed(), id))
}

/// When Docker created and when it started the container, counted from `began`.
async fn docker_times(
    docker: &Docker,
    id: &str,
    began: SystemTime,
) -> Result<(Duration, Duration)> {
    let inspect = docker.inspect_container(id, None).await?;
    let at = |t: Option<&str>| -> Result<Duration> {
        let t = t.ok_or_else(|| anyhow!("container {id} lacks a timestamp"))?;
        let since = parse_rfc3339(t).context("docker timestamp")?;
        Ok(since.duration_since(began).unwrap_or_default())
    };
    let created = at(inspect.created.as_deref())?;
    let started = at(inspect.state.as_ref().and_then(|s| s.started_at.as_deref()))?;
    Ok((created, started))
}

/// Splits a start at Docker's `Created` and `StartedAt` timestamps.
async fn phases(docker: &Docker, id: &str, began: SystemTime, total: Duration) -> Result<Sample> {
    let (created, started) = docker_times(docker, id, began).await?;
    Ok(Sample {
        total,
        before_create: created,
        docker_start: started.saturating_sub(created),
        after_start: total.saturating_sub(started),
    })
}

/// The round's wall time with its last create and last start, from Docker's timestamps.
async fn round(
    docker: &Docker,
    ids: &[String],
    began: SystemTime,
    wall: Duration,
) -> Result<Round> {
    if ids.len() != CONCURRENT {
        bail!(
            "{} containers reported running, not {CONCURRENT}",
            ids.len()
        );
    }
    let (mut last_created, mut last_started) = (Duration::ZERO, Duration::ZERO);
    for id in ids {
        let (created, started) = docker_times(docker, id, began).await?;
        last_created = last_created.max(created);
        last_started = last_started.max(started);
    }
    Ok(Round {
        wall,
        last_created,
        last_started,
    })
}

/// `2024-05-01T12:34:56.123456789Z` (UTC, as dockerd writes it) as a system time.
fn parse_rfc3339(t: &str) -> Option<SystemTime> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|p| p.parse::<i64>().ok());
    let secs = h.next()?? * 3600 + h.next()?? * 60 + h.next()??;
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let unix = days_from_civil(y, m, day) * 86400 + secs;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(unix).ok()?, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Force-removes every container carrying this run's cluster label; errors are only printed.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median (mean of the middle two for an even count) and nearest-rank p90, in ms.
fn median_p90(values: &[Duration]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().map(ms).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = (v[(n - 1) / 2] + v[n / 2]) / 2.0;
    let p90 = v[(n * 9).div_ceil(10) - 1];
    (median, p90)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "NOT MET"
    }
}

impl Report {
    fn print(&self) {
        let profile = if cfg!(debug_assertions) {
            "debug (unoptimized)"
        } else {
            "release (optimized)"
        };
        println!(
            "\ntask_start: one-container task, cached image {}, `sleep 300`, memory 32",
            image()
        );
        println!("host: {}", self.host);
        println!(
            "build: {profile}; load average at the end {}",
            load_average()
        );
        println!("sequential: {RUNS} runs of each kind, taking turns, after 1 discarded warm-up");
        println!(
            "concurrent: {ROUNDS} rounds of {CONCURRENT} at once, docker and engine taking turns\n"
        );
        self.print_sequential();
        self.print_concurrent();
    }

    fn samples(&self, kind: Kind) -> &[Sample] {
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        &self.sequential[i]
    }

    fn median(&self, kind: Kind) -> f64 {
        median_p90(&totals(self.samples(kind))).0
    }

    /// Median time outside Docker's create-to-start span: what the caller itself adds.
    fn outside_docker(&self, kind: Kind) -> f64 {
        let outside = self.samples(kind).iter();
        median_p90(
            &outside
                .map(|s| s.before_create + s.after_start)
                .collect::<Vec<_>>(),
        )
        .0
    }

    fn print_sequential(&self) {
        println!(
            "{:<46}{:>9}{:>9}{:>15}{:>14}{:>13}",
            "one task at a time (ms)",
            "median",
            "p90",
            "before create",
            "docker start",
            "after start"
        );
        for (kind, samples) in KINDS.iter().zip(&self.sequential) {
            print_row(kind.label(), samples);
        }
        let engine = self.median(Kind::Engine);
        let overhead = engine - self.median(Kind::Bare);
        println!(
            "{:<46}{overhead:>9.1}   target <= {TARGET_OVERHEAD_MS} ms: {}",
            "overhead per task (engine - bare median)",
            verdict(overhead <= TARGET_OVERHEAD_MS)
        );
        let same_calls = engine - self.median(Kind::BareInspect);
        println!(
            "{:<46}{same_calls:>9.1}",
            "engine - docker inspect+create+start median"
        );
        // Paired per sample, so immune to Docker's own run-to-run spread.
        let outside = self.outside_docker(Kind::Engine) - self.outside_docker(Kind::Bare);
        println!(
            "{:<46}{outside:>9.1}   target <= {TARGET_OVERHEAD_MS} ms: {}\n",
            "same, outside Docker's created..started span",
            verdict(outside <= TARGET_OVERHEAD_MS)
        );
    }

    fn print_concurrent(&self) {
        println!(
            "{:<46}{:>9}{:>15}{:>14}   wall per round",
            format!("{CONCURRENT} at once (ms, median of rounds)"),
            "wall",
            "last created",
            "last started"
        );
        let docker_20 = print_round_row(Kind::Bare.label(), &self.bare_20);
        let engine_20 =
            print_round_row("engine: all sent -> all RUNNING received", &self.engine_20);
        let ratio = engine_20 / self.median(Kind::Engine);
        println!(
            "{:<46}{ratio:>9.2}   target <= {TARGET_RATIO}: {}",
            "engine-20 / engine-1",
            verdict(ratio <= TARGET_RATIO)
        );
        println!(
            "{:<46}{:>9.2}",
            "engine-20 / docker-20",
            engine_20 / docker_20
        );
        println!(
            "{:<46}{:>9.2}",
            "docker-20 / docker-1 (for reference)",
            docker_20 / self.median(Kind::Bare)
        );
    }
}

/// Prints a row of concurrent rounds; returns the median wall time in ms.
fn print_round_row(name: &str, rounds: &[Round]) -> f64 {
    let median =
        |f: fn(&Round) -> Duration| median_p90(&rounds.iter().map(f).collect::<Vec<_>>()).0;
    let wall = median(|r| r.wall);
    let walls: Vec<Duration> = rounds.iter().map(|r| r.wall).collect();
    println!(
        "{name:<46}{wall:>9.1}{:>15.1}{:>14.1}   {}",
        median(|r| r.last_created),
        median(|r| r.last_started),
        list(&walls)
    );
    wall
}

fn totals(samples: &[Sample]) -> Vec<Duration> {
    samples.iter().map(|s| s.total).collect()
}

fn print_row(name: &str, samples: &[Sample]) {
    let (median, p90) = median_p90(&totals(samples));
    let phase =
        |f: fn(&Sample) -> Duration| median_p90(&samples.iter().map(f).collect::<Vec<_>>()).0;
    println!(
        "{name:<46}{median:>9.1}{p90:>9.1}{:>15.1}{:>14.1}{:>13.1}",
        phase(|s| s.before_create),
        phase(|s| s.docker_start),
        phase(|s| s.after_start)
    );
    println!("{:<46}{}", "  samples", list(&totals(samples)));
}

fn list(values: &[Duration]) -> String {
    let v: Vec<String> = values.iter().map(|d| format!("{:.1}", ms(*d))).collect();
    v.join(" ")
}
