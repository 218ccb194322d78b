//! Restart cost: with 50 tasks running on the test dockerd, the time from a restarted agent
//! reading its state file until its engine is reconciled with Docker (every saved container
//! inspected and applied), next to the floor of the same 50 `docker inspect` calls alone,
//! measured in the same run; and the cost of one state write (render + temp file + fsync +
//! rename + directory fsync) with those 50 tasks, next to render alone.
//!
//! Run it against the test dockerd (`scripts/test-env up`) with `cargo bench --bench recovery`.
//! It prints figures and whether the target (reconciled in ≤ 1 s) is met; it asserts
//! nothing. Its containers carry a run-unique cluster label and are removed at the end.
//!
//! Known limits: "reconciled" is the driver's own recovery (load, restore, inspect, apply,
//! save); registration and the ACS connection that follow in `ecs-agent run` are not in it.

use std::time::{Duration, Instant};

mod common;

use anyhow::{bail, Context, Result};
use bollard::Docker;
use ecs_agent::config::ImagePullBehavior;
use ecs_agent::engine::{Engine, EngineConfig, HostCapacity, Input};
use ecs_agent::model::{Container, Status, Task};
use ecs_agent::runtime::{DockerRuntime, DockerSettings, Driver, DriverSettings};
use ecs_agent::state::{self, Metadata, Writer};

const TASKS: usize = 50;
const ROUNDS: usize = 5;
const WRITES: usize = 200;
const TARGET: Duration = Duration::from_secs(1);

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recovery: measures only under `cargo bench --bench recovery`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = Docker::connect_with_unix_defaults()?
            .negotiate_version()
            .await
            .context("dockerd does not answer; run scripts/test-env up")?;
        let cluster = format!("bench-recovery-{}", std::process::id());
        let result = bench(&docker, &cluster).await;
        common::remove_labelled("recovery", &docker, &cluster).await;
        result
    })
}

fn image() -> String {
    std::env::var("ECS_TEST_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "ecs-agent-test/busybox:latest".into())
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        stop_timeout: Duration::from_secs(10),
        pull_upfront: false,
        cleanup_wait: Duration::from_secs(3600),
        cleanup_jitter: Duration::ZERO,
        stop_retry: Duration::from_secs(1),
        capacity: HostCapacity {
            cpu: 1 << 20,
            memory_mib: 1 << 20,
            reserved_tcp: Default::default(),
            reserved_udp: Default::default(),
            dynamic_ports: (42000, 42999),
            port_in_use: None,
        },
    }
}

fn runtime(docker: &Docker) -> DockerRuntime {
    DockerRuntime::new(
        docker.clone(),
        DockerSettings {
            pull_behavior: ImagePullBehavior::PreferCached,
            pull_timeout: Duration::from_secs(60),
            create_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(60),
            max_concurrent_pulls: 4,
        },
    )
}

fn settings(cluster: &str) -> DriverSettings {
    DriverSettings {
        cluster: cluster.to_owned(),
        disable_privileged: false,
        remove_unknown: false,
    }
}

fn metadata(cluster: &str) -> Metadata {
    Metadata {
        cluster: cluster.to_owned(),
        container_instance_arn: format!("arn:aws:ecs:us-west-2:1:container-instance/{cluster}/x"),
        ec2_instance_id: "i-bench".into(),
        availability_zone: None,
    }
}

fn task(cluster: &str, i: usize) -> Task {
    Task {
        arn: format!("arn:aws:ecs:us-west-2:123456789012:task/{cluster}/t{i}"),
        family: "bench".into(),
        version: "1".into(),
        desired_status: Some("RUNNING".into()),
        containers: vec![Container {
            name: "app".into(),
            image: image(),
            memory: Some(16),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM; while true; do sleep 1; done".into(),
            ]),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn bench(docker: &Docker, cluster: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    start_tasks(docker, cluster, dir.path()).await?;
    let saved = state::load(dir.path())?.state.context("no saved state")?;
    let containers: Vec<String> = saved
        .tasks
        .iter()
        .flat_map(|t| &t.containers)
        .filter_map(|c| c.docker_id.clone())
        .collect();
    println!(
        "recovery: {TASKS} running tasks, {} containers, state file {} bytes",
        containers.len(),
        std::fs::metadata(dir.path().join(state::FILE))?.len()
    );

    let mut reconciled = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..ROUNDS {
        reconciled.push(restart(docker, cluster, dir.path()).await?);
        floor.push(inspect_all(docker, &containers).await);
    }
    print_row("restart to reconciled", &reconciled);
    print_row(
        &format!("{} docker inspects alone", containers.len()),
        &floor,
    );
    let worst = reconciled.iter().max().copied().unwrap_or_default();
    println!(
        "recovery: target reconciled <= {} ms with {TASKS} tasks: {} (worst {:.1} ms)",
        TARGET.as_millis(),
        if worst <= TARGET { "met" } else { "NOT met" },
        ms(worst)
    );
    write_cost(dir.path(), saved.tasks, cluster)
}

/// Runs 50 one-container tasks to RUNNING through a driver that saves its state in `dir`.
async fn start_tasks(docker: &Docker, cluster: &str, dir: &std::path::Path) -> Result<()> {
    let engine = Engine::new(engine_config(), 11);
    let (driver, handle, _changes, mut snapshots) =
        Driver::new(engine, runtime(docker), settings(cluster));
    let driver = driver.with_state(Writer::new(dir.to_owned(), metadata(cluster)));
    let run = tokio::spawn(driver.run());
    for i in 0..TASKS {
        handle.send(Input::AddTask(Box::new(task(cluster, i))));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let running = snapshots
            .borrow()
            .iter()
            .filter(|t| t.known == Status::Running)
            .count();
        if running == TASKS {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {running} of {TASKS} tasks running after 300 s");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), snapshots.changed()).await;
    }
    handle.flush().await;
    handle.shutdown();
    run.await?;
    Ok(())
}

/// A restarted driver: load, restore, reconcile (the driver answers a flush once it is done).
async fn restart(docker: &Docker, cluster: &str, dir: &std::path::Path) -> Result<Duration> {
    let began = Instant::now();
    let saved = state::load(dir)?.state.context("no saved state")?;
    let (engine, redo) = Engine::restore(engine_config(), 12, saved.tasks);
    let (driver, handle, _changes, snapshots) =
        Driver::new(engine, runtime(docker), settings(cluster));
    let driver = driver
        .with_state(Writer::new(dir.to_owned(), saved.metadata))
        .with_restored(redo);
    let run = tokio::spawn(driver.run());
    handle.flush().await;
    let took = began.elapsed();
    let running = snapshots
        .borrow()
        .iter()
        .filter(|t| t.known == Status::Running)
        .count();
    if running != TASKS {
        bail!("after the restart {running} of {TASKS} tasks are running");
    }
    handle.shutdown();
    run.await?;
    Ok(took)
}

async fn inspect_all(docker: &Docker, ids: &[String]) -> Duration {
    let began = Instant::now();
    futures_util::future::join_all(ids.iter().map(|id| docker.inspect_container(id, None))).await;
    began.elapsed()
}

/// One state write with the 50 tasks: render alone, and render + the crash-safe write.
fn write_cost(
    dir: &std::path::Path,
    tasks: Vec<ecs_agent::engine::TaskState>,
    cluster: &str,
) -> Result<()> {
    let writer = Writer::new(dir.to_owned(), metadata(cluster));
    let mut render = Vec::new();
    let mut full = Vec::new();
    for i in 0..WRITES {
        let mut tasks = tasks.clone();
        // A change each time, as in the agent (otherwise the writer skips the write).
        tasks[0].containers[0].restart_count = i as u32;
        let began = Instant::now();
        let bytes = writer
            .render(tasks, Default::default())
            .context("no change")?;
        render.push(began.elapsed());
        state::write(dir, &bytes)?;
        full.push(began.elapsed());
    }
    print_row("state render (50 tasks)", &render);
    print_row("state render + write + fsyncs", &full);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_row(name: &str, values: &[Duration]) {
    let mut v: Vec<f64> = values.iter().copied().map(ms).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = (v[(n - 1) / 2] + v[n / 2]) / 2.0;
    let p90 = v[(n * 9).div_ceil(10) - 1];
    println!("recovery: {name:<34} median {median:>8.2} ms  p90 {p90:>8.2} ms  ({n} samples)");
}
