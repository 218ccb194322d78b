//! Log shipping: one container writing numbered 100-byte lines, shipped by the agent (the
//! `ecs-agent` binary of this build, run against the control-plane simulator) to a minimal
//! CloudWatch Logs endpoint (`tests/support/cwl_sink.rs`), and — in the same run, to the same
//! endpoint — by Docker's own awslogs driver in its blocking and non-blocking modes, next to a
//! container with a plain json-file log as the baseline for the writer's speed.
//!
//! Prints: lines/s and MB/s shipped at full speed, lines delivered and lost, how long the
//! writing container took and its slowdown against json-file alone; for a container asked to
//! write 2 MB/s for 15 s (the first run, from the idle agent): the rate it actually wrote, the
//! agent's CPU (share of one core) over the writer's span only (sampled every 50 ms), and the
//! agent's VmHWM and VmRSS growth over its idle RSS. Asserts nothing. Run with `cargo bench --bench logs` after
//! `scripts/test-env up`. Everything talks to 127.0.0.1 only; the run's containers are removed
//! at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use ecs_agent::logs::shipper::parse_timestamp;
use serde_json::{json, Value};
use support::agent::{payload, Agent};
use support::cwl_sink::CwlSink;
use support::ecs_sim::{EcsSim, WsKind};
use support::imds::{ImdsConfig, ImdsStub};

const LINES: u64 = 500_000;
const LINE_BYTES: u64 = 100;
const RATE_SECONDS: u64 = 15;
/// Lines the 2 MB/s writer writes every 100 ms.
const RATE_LINES: u64 = 2000;
const WAIT: Duration = Duration::from_secs(300);

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("logs: measures only under `cargo bench --bench logs`");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

/// Writes `LINES` numbered lines of `LINE_BYTES` bytes as fast as it can.
fn full_speed_script() -> String {
    format!(
        "awk 'BEGIN {{ pad = sprintf(\"%0{}d\", 0); for (i = 1; i <= {LINES}; i++) printf \"%09d %s\\n\", i, pad }}'",
        LINE_BYTES - 11
    )
}

/// Asks for 2 MB/s for `RATE_SECONDS`: the numbered lines are generated once into a file,
/// then written in chunks of `RATE_LINES` lines (one `dd` each) every 100 ms, the sleep
/// computed from `/proc/uptime` (centiseconds) so the pace does not drift; the rate actually
/// written over the container's whole life (generation included) is measured and printed.
fn rate_script() -> String {
    let total = RATE_SECONDS * 10 * RATE_LINES;
    let chunk = RATE_LINES * LINE_BYTES;
    let ticks = RATE_SECONDS * 10;
    let pad = LINE_BYTES - 11;
    format!("mkdir -p /tmp; awk 'BEGIN {{ pad = sprintf(\"%0{pad}d\", 0); for (i = 1; i <= {total}; i++) printf \"%09d %s\\n\", i, pad }}' > /tmp/l; ")
        + "read u r < /proc/uptime; s=${u%.*}${u#*.}; t=0; "
        + &format!("while [ $t -lt {ticks} ]; do dd if=/tmp/l bs={chunk} skip=$t count=1 2>/dev/null; t=$((t+1)); ")
        + "read u r < /proc/uptime; n=${u%.*}${u#*.}; d=$(( (s + t * 10 - n) * 10000 )); if [ $d -gt 0 ]; then usleep $d; fi; done; true"
}

struct Stand {
    sim: EcsSim,
    _imds: ImdsStub,
    _dir: tempfile::TempDir,
    agent: Agent,
    cluster: String,
    sink: CwlSink,
    docker: Docker,
}

async fn bench() -> Result<()> {
    let docker = support::env::docker().await;
    let sink = CwlSink::start().await;
    let cluster = support::env::unique_name("bench-logs");
    let sim = EcsSim::for_cluster(&cluster).await;
    let imds = ImdsStub::start(ImdsConfig::default()).await;
    let dir = tempfile::tempdir()?;
    let env = [("ECS_LOGLEVEL", "info")];
    let agent = Agent::start_in(&sim, &imds, &env, dir.path());
    if !sim.wait_connected(WsKind::Acs, 1, WAIT).await {
        bail!("the agent did not connect:\n{}", agent.log());
    }
    let stand = Stand {
        sim,
        _imds: imds,
        _dir: dir,
        agent,
        cluster,
        sink,
        docker,
    };
    let result = measure(&stand).await;
    let log = stand.agent.log();
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("retrying") || l.contains("level=error"))
        .collect();
    println!(
        "logs: agent log: {} retry/error lines; first: {:?}",
        retries.len(),
        retries.first()
    );
    remove_run_containers(&stand).await;
    result
}

/// The delivery path alone, in this process: PutLogEvents of 1 MB batches to the sink.
async fn delivery_alone(stand: &Stand) -> Result<()> {
    use ecs_agent::logs::batch::Event;
    use ecs_agent::logs::cloudwatch::{CloudWatch, Counters, Destination};
    let sdk = support::aws::moto_config().await;
    let cw = CloudWatch::new(sdk, ecs_agent::credentials::Store::default());
    let dest = Destination {
        region: "us-west-2".into(),
        endpoint: Some(stand.sink.url.clone()),
        group: "/bench".into(),
        stream: "alone".into(),
        create_group: true,
        execution_credentials_id: None,
    };
    let batch: Vec<Event> = (0..8000)
        .map(|i| Event {
            timestamp_ms: 1_700_000_000_000,
            message: format!("{i:09} {}", "0".repeat(89)),
        })
        .collect();
    let counters = Counters::default();
    let began = Instant::now();
    for _ in 0..20 {
        cw.deliver(&dest, &batch, &counters).await;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "logs: delivery alone: 20 batches of 8000 events in {:.2} s = {:.1} MB/s",
        secs,
        20.0 * 8000.0 * 100.0 / secs / 1e6
    );
    Ok(())
}

async fn measure(stand: &Stand) -> Result<()> {
    let pid = stand.agent.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = proc_status(pid)?;
    // First, from the idle agent: memory growth is measured against its idle RSS.
    let rate = agent_rate(stand, idle.rss_kb).await?;
    delivery_alone(stand).await?;
    let (before, began) = (proc_sample(pid)?, Instant::now());
    let agent_full = agent_run(stand, 1, &full_speed_script()).await?;
    let full_cpu = (proc_sample(pid)?.0 - before.0) as f64 / 100.0 / began.elapsed().as_secs_f64();
    let backlog = agent_backlog(stand).await?;
    let baseline = docker_run(stand, "baseline", &full_speed_script(), None).await?;
    let blocking = docker_run(
        stand,
        "docker-blocking",
        &full_speed_script(),
        Some("blocking"),
    )
    .await?;
    let non_blocking = docker_run(
        stand,
        "docker-non-blocking",
        &full_speed_script(),
        Some("non-blocking"),
    )
    .await?;
    println!("logs: {LINES} lines of {LINE_BYTES} bytes from one container, to a minimal CloudWatch Logs endpoint");
    println!(
        "logs: {:<30} {:>10} {:>10} {:>10} {:>9} {:>12} {:>10}",
        "shipper", "delivered", "lost", "lines/s", "MB/s", "writer ms", "slowdown"
    );
    println!(
        "logs: {:<30} {:>10} {:>10} {:>10} {:>9} {:>12.0} {:>10}",
        "json-file only (baseline)", "-", "-", "-", "-", baseline.writer_ms, "-"
    );
    for (name, r) in [
        ("ecs-agent", &agent_full),
        ("docker awslogs (blocking)", &blocking),
        ("docker awslogs (non-blocking 1m)", &non_blocking),
    ] {
        println!(
            "logs: {:<30} {:>10} {:>10} {:>10.0} {:>9.1} {:>12.0} {:>+9.0}%",
            name,
            r.delivered,
            LINES - r.delivered.min(LINES),
            r.delivered as f64 / r.ship_secs,
            (r.delivered * LINE_BYTES) as f64 / r.ship_secs / 1e6,
            r.writer_ms,
            (r.writer_ms / baseline.writer_ms - 1.0) * 100.0
        );
    }
    println!(
        "logs: writer slowdown: ecs-agent {:+.0} % vs json-file alone, {:+.0} % vs Docker's awslogs blocking (negative: faster)",
        (agent_full.writer_ms / baseline.writer_ms - 1.0) * 100.0,
        (agent_full.writer_ms / blocking.writer_ms - 1.0) * 100.0
    );
    println!(
        "logs: agent CPU over the full-speed run (container start to last line shipped): {:.0} % of one core",
        full_cpu * 100.0
    );
    println!(
        "logs: agent shipping a backlog of {} lines (endpoint down while the container wrote): {:.0} lines/s, {:.1} MB/s",
        backlog.0, backlog.1, backlog.2
    );
    println!(
        "logs: 2 MB/s asked for {RATE_SECONDS} s: written at {:.2} MB/s ({:.1} s); agent {:.1} % of one core over the writer's span; idle RSS {:.1} MB, VmHWM growth {:.1} MB, VmRSS growth {:.1} MB; {} of {} lines delivered",
        rate.write_mb_s,
        rate.writer_secs,
        rate.cpu * 100.0,
        idle.rss_kb as f64 / 1024.0,
        rate.hwm_growth_kb as f64 / 1024.0,
        rate.rss_growth_kb as f64 / 1024.0,
        rate.delivered,
        rate.lines
    );
    println!(
        "logs: targets: >= 20 MB/s shipped with zero loss: {} (backlog rate; live shipping is bounded by the writer); <= 10 % of a core at 2 MB/s: {} (written at {:.2} MB/s; below 1.9 MB/s counts as not met); RSS growth <= 20 MB: {} (VmHWM)",
        verdict(backlog.2 >= 20.0 && backlog.0 == LINES && agent_full.delivered == LINES),
        verdict(rate.cpu <= 0.10 && rate.write_mb_s >= 1.9),
        rate.write_mb_s,
        verdict(rate.hwm_growth_kb <= 20 * 1024)
    );
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// One shipper's figures.
struct Run {
    delivered: u64,
    /// From the container's start until the last line arrived.
    ship_secs: f64,
    /// How long the container took to write everything.
    writer_ms: f64,
}

fn task(stand: &Stand, n: u32, script: &str) -> Value {
    let opts = json!({"awslogs-group": "/bench", "awslogs-region": "us-west-2",
        "awslogs-endpoint": stand.sink.url, "awslogs-create-group": "true", "awslogs-stream-prefix": "bench"});
    let host_config = json!({"LogConfig": {"Type": "awslogs", "Config": opts}}).to_string();
    json!({
        "arn": format!("arn:aws:ecs:us-west-2:123456789012:task/{}/b{n}", stand.cluster),
        "family": "bench", "version": "1", "desiredStatus": "RUNNING", "launchType": "EC2",
        "networkMode": "bridge",
        "containers": [{"name": "app", "image": support::env::image(), "essential": true,
            "cpu": 10, "memory": 64, "command": ["sh", "-c", script],
            "dockerConfig": {"hostConfig": host_config}}]
    })
}

/// Runs the script as awslogs task `n` of the agent and waits for its STOPPED report.
async fn run_until_stopped(stand: &Stand, n: u32, script: &str) -> Result<Value> {
    let t = task(stand, n, script);
    stand
        .sim
        .acs_send(payload(
            &stand.sim,
            &format!("bench-{n}"),
            n.into(),
            vec![t.clone()],
        ))
        .map_err(anyhow::Error::msg)?;
    let arn = t["arn"].clone();
    let stopped = stand
        .sim
        .wait_task_state_change(move |b| b["task"] == arn && b["status"] == "STOPPED", WAIT)
        .await
        .with_context(|| format!("task {n} did not stop:\n{}", stand.agent.log()))?;
    Ok(stopped.body)
}

/// Runs the script as an awslogs task of the agent; waits for every line at the sink.
async fn agent_run(stand: &Stand, n: u32, script: &str) -> Result<Run> {
    let stopped = run_until_stopped(stand, n, script).await?;
    let id = stopped["containers"][0]["runtimeId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (started, writer_ms) = times(&stand.docker, &id).await?;
    let stream = format!("bench/app/b{n}");
    let (delivered, last) = wait_settled(&stand.sink, &stream, LINES).await;
    let numbers = stand.sink.stream(&stream).numbers;
    if let Some(missing) = (1..=LINES).find(|n| !numbers.contains(n)) {
        println!("logs: the agent's first missing line: {missing}");
    }
    Ok(Run {
        delivered,
        ship_secs: last
            .saturating_duration_since(started)
            .as_secs_f64()
            .max(1e-3),
        writer_ms,
    })
}

/// The agent's own shipping rate: the endpoint refuses everything while the container
/// writes, then accepts; the rate is measured from the first to the last accepted batch.
async fn agent_backlog(stand: &Stand) -> Result<(u64, f64, f64)> {
    stand.sink.set_accepting(false);
    run_until_stopped(stand, 3, &full_speed_script()).await?;
    stand.sink.set_accepting(true);
    let (delivered, _) = wait_settled(&stand.sink, "bench/app/b3", LINES).await;
    let count = stand.sink.stream("bench/app/b3");
    let secs = match (count.first_at, count.last_at) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(1e-3),
        _ => 1.0,
    };
    Ok((
        delivered,
        delivered as f64 / secs,
        (delivered * LINE_BYTES) as f64 / secs / 1e6,
    ))
}

/// The 2 MB/s run's figures.
struct RateRun {
    /// What the container actually wrote, MB/s, and for how long.
    write_mb_s: f64,
    writer_secs: f64,
    /// The agent's share of one core over the writer's span.
    cpu: f64,
    hwm_growth_kb: u64,
    rss_growth_kb: u64,
    delivered: u64,
    lines: u64,
}

/// A container asked to write 2 MB/s: what it wrote, and the agent's CPU over its span and
/// memory growth over `idle_rss_kb`.
async fn agent_rate(stand: &Stand, idle_rss_kb: u64) -> Result<RateRun> {
    let pid = stand.agent.child.id();
    let sampler = Sampler::start(pid);
    let stopped = run_until_stopped(stand, 2, &rate_script()).await?;
    let id = stopped["containers"][0]["runtimeId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (started, writer_ms) = times(&stand.docker, &id).await?;
    let lines = RATE_SECONDS * 10 * RATE_LINES;
    let (delivered, _) = wait_settled(&stand.sink, "bench/app/b2", lines).await;
    let samples = sampler.stop();
    let writer_secs = writer_ms / 1000.0;
    let cpu = cpu_share(
        &samples,
        started,
        started + Duration::from_secs_f64(writer_secs),
    );
    let status = proc_status(pid)?;
    Ok(RateRun {
        write_mb_s: (lines * LINE_BYTES) as f64 / writer_secs.max(1e-3) / 1e6,
        writer_secs,
        cpu,
        hwm_growth_kb: status.hwm_kb.saturating_sub(idle_rss_kb),
        rss_growth_kb: status.rss_kb.saturating_sub(idle_rss_kb),
        delivered,
        lines,
    })
}

/// The agent's CPU ticks sampled every 50 ms in the background.
struct Sampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    running: Arc<AtomicBool>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let running = Arc::new(AtomicBool::new(true));
        let (out, on) = (samples.clone(), running.clone());
        tokio::spawn(async move {
            while on.load(Ordering::SeqCst) {
                if let Ok((ticks, _)) = proc_sample(pid) {
                    out.lock().unwrap().push((Instant::now(), ticks));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Sampler { samples, running }
    }

    fn stop(self) -> Vec<(Instant, u64)> {
        self.running.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// Share of one core between the last sample at or before `from` and the first at or after
/// `to` (10 ms ticks).
fn cpu_share(samples: &[(Instant, u64)], from: Instant, to: Instant) -> f64 {
    let first = samples
        .iter()
        .rev()
        .find(|s| s.0 <= from)
        .or(samples.first());
    let last = samples.iter().find(|s| s.0 >= to).or(samples.last());
    match (first, last) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            (b.1 - a.1) as f64 / 100.0 / b.0.duration_since(a.0).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// VmRSS and VmHWM of a process, kB.
struct ProcStatus {
    rss_kb: u64,
    hwm_kb: u64,
}

fn proc_status(pid: u32) -> Result<ProcStatus> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStatus {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    })
}

/// `(utime + stime ticks, VmRSS kB)` of a process.
fn proc_sample(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((ticks, proc_status(pid)?.rss_kb))
}

/// Runs the script in a container Docker logs itself: awslogs in `mode`, or json-file.
async fn docker_run(stand: &Stand, name: &str, script: &str, mode: Option<&str>) -> Result<Run> {
    let log_config = match mode {
        Some(mode) => {
            let mut config = HashMap::from([
                ("awslogs-region".to_owned(), "us-west-2".to_owned()),
                ("awslogs-endpoint".to_owned(), stand.sink.url.clone()),
                ("awslogs-group".to_owned(), "/bench".to_owned()),
                ("awslogs-create-group".to_owned(), "true".to_owned()),
                ("awslogs-stream".to_owned(), name.to_owned()),
                ("mode".to_owned(), mode.to_owned()),
            ]);
            if mode == "non-blocking" {
                config.insert("max-buffer-size".to_owned(), "1m".to_owned());
            }
            HostConfigLogConfig {
                typ: Some("awslogs".into()),
                config: Some(config),
            }
        }
        None => HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: None,
        },
    };
    let body = ContainerCreateBody {
        image: Some(support::env::image()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(HashMap::from([(
            "com.amazonaws.ecs.cluster".to_owned(),
            stand.cluster.clone(),
        )])),
        host_config: Some(HostConfig {
            log_config: Some(log_config),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&format!("{}-{name}", stand.cluster))
        .build();
    let id = stand.docker.create_container(Some(options), body).await?.id;
    stand.docker.start_container(&id, None).await?;
    let mut wait = stand.docker.wait_container(&id, None);
    while let Some(r) = futures_util::StreamExt::next(&mut wait).await {
        r?;
    }
    let (started, writer_ms) = times(&stand.docker, &id).await?;
    if mode.is_none() {
        return Ok(Run {
            delivered: 0,
            ship_secs: 1.0,
            writer_ms,
        });
    }
    let (delivered, last) = wait_settled(&stand.sink, name, LINES).await;
    Ok(Run {
        delivered,
        ship_secs: last
            .saturating_duration_since(started)
            .as_secs_f64()
            .max(1e-3),
        writer_ms,
    })
}

/// The container's start as an `Instant` of this process, and its run time in ms.
async fn times(docker: &Docker, id: &str) -> Result<(Instant, f64)> {
    let state = docker
        .inspect_container(id, None)
        .await?
        .state
        .unwrap_or_default();
    let start = state
        .started_at
        .as_deref()
        .and_then(parse_timestamp)
        .unwrap_or(0);
    let end = state
        .finished_at
        .as_deref()
        .and_then(parse_timestamp)
        .unwrap_or(start);
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    let ago = Duration::from_nanos((now_unix - start).max(0) as u64);
    let started = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
    Ok((started, (end - start) as f64 / 1e6))
}

/// Waits until the stream has `want` distinct lines or stops growing for 10 s; returns the
/// distinct lines and when the last of them arrived.
async fn wait_settled(sink: &CwlSink, stream: &str, want: u64) -> (u64, Instant) {
    let deadline = Instant::now() + WAIT;
    let mut seen = 0;
    let mut last_change = Instant::now();
    loop {
        let now = sink.stream(stream).numbers.len() as u64;
        if now != seen {
            seen = now;
            last_change = Instant::now();
        }
        if seen >= want
            || last_change.elapsed() > Duration::from_secs(10)
            || Instant::now() > deadline
        {
            return (seen, last_change);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn remove_run_containers(stand: &Stand) {
    let docker = &stand.docker;
    support::env::remove_cluster_containers(docker, &stand.cluster).await;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    for name in ["baseline", "docker-blocking", "docker-non-blocking"] {
        let _ = docker
            .remove_container(&format!("{}-{name}", stand.cluster), Some(rm.clone()))
            .await;
    }
}
