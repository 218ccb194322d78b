//! `ecs-agent local run TASKDEF.json`: runs a task definition on the local Docker through the
//! same engine and runtime as ACS tasks, with no AWS. Shows each container's progress, streams
//! their logs with name prefixes, stops the task on Ctrl-C (with its stop timeouts) and exits
//! with the essential container's exit code.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::{host, Exit};
use crate::config::{Config, EngineAuthType};
use crate::engine::{ContainerState, Engine, EngineConfig, Input, TaskState};
use crate::images::EngineAuth;
use crate::model::{task_from_definition, Health, LocalRunOptions, Status, Task};
use crate::runtime::cgroup::CgroupSettings;
use crate::runtime::{names, DockerRuntime, DockerSettings, Driver, DriverSettings, Snapshot};

/// Options of `local run`.
#[derive(Debug, Clone)]
pub struct LocalRunArgs {
    pub task_definition: std::path::PathBuf,
    /// Leave the containers in place after the task stops.
    pub keep: bool,
    pub cluster: String,
}

/// Reads and converts the task definition, printing every problem.
fn load_task(path: &Path, cluster: &str) -> Result<Task, Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("ecs-agent: cannot read {}: {e}", path.display());
        Exit::Usage
    })?;
    let opts = LocalRunOptions {
        cluster: cluster.to_owned(),
        task_id: uuid::Uuid::new_v4().simple().to_string(),
        region: "local".to_owned(),
        account_id: "000000000000".to_owned(),
    };
    task_from_definition(&text, &opts).map_err(|errors| {
        eprintln!(
            "ecs-agent: {} is not a valid task definition:\n{errors}",
            path.display()
        );
        Exit::Usage
    })
}

fn engine_config(config: &Config, keep: bool) -> EngineConfig {
    EngineConfig {
        stop_timeout: config.container_stop_timeout,
        pull_upfront: config.pull_dependent_containers_upfront,
        // A short wait lets the log streams drain before the containers go.
        cleanup_wait: if keep {
            Duration::from_secs(365 * 24 * 3600)
        } else {
            Duration::from_secs(2)
        },
        cleanup_jitter: Duration::ZERO,
        stop_retry: Duration::from_secs(5),
        capacity: host::capacity(config),
    }
}

/// Docker settings from the configuration (pull behaviour, timeouts, pull bound).
pub fn docker_settings(config: &Config) -> DockerSettings {
    DockerSettings {
        pull_behavior: config.image_pull_behavior,
        pull_timeout: config.image_pull_timeout,
        create_timeout: config.container_create_timeout,
        start_timeout: config.container_start_timeout,
        max_concurrent_pulls: 4,
    }
}

/// Task cgroup settings from the configuration.
pub fn cgroup_settings(config: &Config) -> CgroupSettings {
    CgroupSettings {
        root: config.cgroup_path.clone().into(),
        cpu_period: config.cgroup_cpu_period,
        pids_limit: config.task_pids_limit,
    }
}

/// `ECS_ENGINE_AUTH_TYPE` / `ECS_ENGINE_AUTH_DATA` as registry credentials, if configured.
pub fn engine_auth(config: &Config) -> Result<Option<EngineAuth>, String> {
    match (&config.engine_auth_type, &config.engine_auth_data) {
        (Some(kind), Some(data)) => {
            EngineAuth::parse(*kind == EngineAuthType::Dockercfg, data.expose()).map(Some)
        }
        _ => Ok(None),
    }
}

/// Connects to Docker at `DOCKER_HOST` and negotiates the API version.
pub async fn connect_docker(config: &Config) -> Result<bollard::Docker, String> {
    let path = config
        .docker_host
        .strip_prefix("unix://")
        .unwrap_or(&config.docker_host);
    let docker = bollard::Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)
        .map_err(|e| format!("cannot connect to Docker at {}: {e}", config.docker_host))?;
    docker
        .negotiate_version()
        .await
        .map(|d| d.with_request_modifier(url_safe_registry_auth))
        .map_err(|e| format!("Docker at {} does not answer: {e}", config.docker_host))
}

/// bollard 0.21 encodes `X-Registry-Auth` in standard base64, but dockerd 20.10 decodes it as
/// URL-safe base64 and silently drops credentials that do not decode (a real ECR token almost
/// always has a `+` or `/`): rewrite the header into the URL-safe alphabet.
fn url_safe_registry_auth(mut request: bollard::BollardRequest) -> bollard::BollardRequest {
    if let Some(value) = request.headers().get("X-Registry-Auth") {
        let safe = value
            .to_str()
            .unwrap_or_default()
            .replace('+', "-")
            .replace('/', "_");
        if let Ok(v) = safe.parse() {
            request.headers_mut().insert("X-Registry-Auth", v);
        }
    }
    request
}

/// Runs the task; returns the exit code.
pub async fn run(config: &Config, args: &LocalRunArgs) -> Exit {
    let task = match load_task(&args.task_definition, &args.cluster) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    let docker = match connect_docker(config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ecs-agent: {e}");
            return Exit::Failure;
        }
    };
    let seed = crate::runtime::driver::now_millis() ^ u64::from(std::process::id()) << 32;
    let engine = Engine::new(engine_config(config, args.keep), seed);
    let runtime = DockerRuntime::new(docker.clone(), docker_settings(config));
    let settings = DriverSettings {
        cluster: args.cluster.clone(),
        disable_privileged: config.disable_privileged,
        remove_unknown: false,
    };
    let (driver, handle, _changes, mut snapshots) = Driver::new(engine, runtime, settings);
    let driver = match engine_auth(config) {
        Ok(Some(auth)) => driver.with_engine_auth(auth),
        Ok(None) => driver,
        Err(e) => {
            eprintln!("ecs-agent: {e}");
            return Exit::Terminal;
        }
    };
    let driver = if config.task_cpu_mem_limit {
        driver.with_task_cgroups(cgroup_settings(config))
    } else {
        driver
    };
    let driver_task = tokio::spawn(driver.run());
    let arn = task.arn.clone();
    println!(
        "ecs-agent local run: task {} revision {} ({})",
        task.family,
        task.version,
        task.id()
    );
    handle.send(Input::AddTask(Box::new(task.clone())));

    let mut view = View::new(docker, task);
    let mut stop_requested = false;
    let mut signals = Signals::new();
    loop {
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() { break; }
                let snapshot: Snapshot = snapshots.borrow_and_update().clone();
                match snapshot.iter().find(|t| t.arn() == arn) {
                    Some(t) => {
                        view.update(t);
                        if t.known == Status::Stopped && (args.keep || view.removed_all(t)) { break; }
                    }
                    None if view.seen_stopped => break, // Cleaned up.
                    None => {}
                }
            }
            _ = signals.next() => {
                if !stop_requested {
                    println!("stopping the task (Ctrl-C again does not hurry it: containers get their stop timeouts)");
                    stop_requested = true;
                    handle.send(Input::Desired { task_arn: arn.clone(), status: Status::Stopped });
                }
            }
        }
    }
    view.finish_logs().await;
    handle.shutdown();
    let _ = driver_task.await;
    view.exit()
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// The listeners live as long as the command, so a signal that arrives while the view is
    /// busy is not lost.
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
        }
    }
}

/// What was last shown for a container.
#[derive(Default, Clone, PartialEq)]
struct Shown {
    known: Status,
    in_flight: Option<Status>,
    health: Health,
}

/// The progress view: one line per container change, plus the containers' logs.
struct View {
    docker: bollard::Docker,
    task: Task,
    shown: BTreeMap<String, Shown>,
    logs: Vec<JoinHandle<()>>,
    following: BTreeMap<String, bool>,
    /// Exit code of the essential container that stopped the task, once known.
    cause: Option<(String, Option<i64>)>,
    reason: Option<String>,
    seen_stopped: bool,
}

impl View {
    fn new(docker: bollard::Docker, task: Task) -> Self {
        View {
            docker,
            task,
            shown: BTreeMap::new(),
            logs: Vec::new(),
            following: BTreeMap::new(),
            cause: None,
            reason: None,
            seen_stopped: false,
        }
    }

    fn update(&mut self, t: &TaskState) {
        for c in &t.containers {
            self.show_container(c);
            if c.ever_started && !self.following.contains_key(&c.name) {
                self.follow_logs(c);
            }
            if c.known == Status::Stopped && c.essential && c.ever_started && self.cause.is_none() {
                self.cause = Some((c.name.clone(), c.exit_code));
            }
        }
        if let Some(w) = &t.waiting_for {
            if self.reason.as_deref() != Some(w) {
                println!("task waiting: {w}");
                self.reason = Some(w.clone());
            }
        }
        if t.known == Status::Stopped && !self.seen_stopped {
            self.seen_stopped = true;
            self.reason = t.reason.clone();
            println!(
                "task stopped{}",
                t.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
    }

    fn show_container(&mut self, c: &ContainerState) {
        let now = Shown {
            known: c.known,
            in_flight: c.in_flight,
            health: c.health,
        };
        let before = self
            .shown
            .insert(c.name.clone(), now.clone())
            .unwrap_or_default();
        if before == now {
            return;
        }
        let line = match (now.in_flight, now.known) {
            (_, Status::Stopped) if before.known != Status::Stopped => {
                Some(match (c.exit_code, &c.reason) {
                    (Some(code), _) if c.ever_started => format!("exited with code {code}"),
                    (_, Some(r)) => format!("stopped: {r}"),
                    (_, None) => "stopped".to_owned(),
                })
            }
            (Some(Status::Pulled), _) if before.in_flight != now.in_flight => {
                Some(format!("pulling {}", c.image))
            }
            (Some(Status::Stopped), known)
                if known < Status::Stopped && before.in_flight != now.in_flight =>
            {
                Some("stopping".to_owned())
            }
            (_, Status::Created) if before.known < Status::Created => {
                let name = names::docker_container_name(
                    &self.task.family,
                    &self.task.version,
                    &c.name,
                    &c.name_suffix,
                );
                Some(format!("created {name}"))
            }
            (_, Status::Running) if before.known < Status::Running => Some(running_line(c)),
            _ if before.health != now.health && now.health != Health::Unknown => Some(
                if now.health == Health::Healthy {
                    "healthy"
                } else {
                    "unhealthy"
                }
                .to_owned(),
            ),
            _ => None,
        };
        if let Some(line) = line {
            println!("[{}] {line}", c.name);
        }
    }

    fn follow_logs(&mut self, c: &ContainerState) {
        let Some(id) = c.docker_id.clone() else {
            return;
        };
        self.following.insert(c.name.clone(), true);
        let docker = self.docker.clone();
        let name = c.name.clone();
        self.logs.push(tokio::spawn(async move {
            let options = LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build();
            let mut stream = docker.logs(&id, Some(options));
            while let Some(Ok(item)) = stream.next().await {
                let (LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message }) = item
                else {
                    continue;
                };
                for line in String::from_utf8_lossy(&message).lines() {
                    println!("{name} | {line}");
                }
            }
        }));
    }

    fn removed_all(&self, t: &TaskState) -> bool {
        t.containers
            .iter()
            .all(|c| c.docker_id.is_none() || c.removed)
    }

    /// Lets the log streams print what is left (they end when their container does).
    async fn finish_logs(&mut self) {
        for h in self.logs.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
    }

    fn exit(&self) -> Exit {
        match &self.cause {
            Some((name, Some(code))) => {
                println!("essential container {name} exited with code {code}");
                Exit::Code(u8::try_from(*code).unwrap_or(1))
            }
            _ if self.reason.is_some() => Exit::Failure,
            _ => Exit::Success,
        }
    }
}

fn running_line(c: &ContainerState) -> String {
    if c.bindings.is_empty() {
        return "running".to_owned();
    }
    let ports: Vec<String> = c
        .bindings
        .iter()
        .map(|b| {
            let side = |(a, z): (u16, u16)| {
                if a == z {
                    a.to_string()
                } else {
                    format!("{a}-{z}")
                }
            };
            format!("{}->{}/{}", side(b.host), side(b.container), b.protocol)
        })
        .collect();
    format!("running, ports {}", ports.join(", "))
}
