//! The loop that drives the engine: one task owns it (the single writer), feeds it inputs
//! (requests, command results, Docker events, timer ticks) and carries out its commands
//! concurrently against Docker. Observers read snapshots through a `watch` channel; state
//! changes for ECS go out on a channel of [`Change`]s.
//!
//! The Docker event stream is filtered by dockerd, reopened when it drops (a Docker restart
//! included), and every known container is re-inspected then, at start and every five
//! minutes, to catch what was missed.
//!
//! With a state writer, the engine's state is saved after each batch of inputs and before
//! the commands they led to are carried out; a restored engine's interrupted commands are
//! carried out again first (see `engine::restore` and `recovery`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cgroup::{self, CgroupSettings};
use super::container_inputs::{agent_env, container_secrets, log_plan, redact, PullAuth};
use super::create::{create_body, CreateContext, ResolvedPort};
use super::docker::DockerRuntime;
use super::names;
use super::volumes::{prepare_volume, task_scoped_volumes};
use crate::credentials;
use crate::engine::{Binding, Change, Command, Engine, Input, Millis, Outcome, TaskState};
use crate::images::cleanup::ImageRecords;
use crate::images::{EcrAuth, EngineAuth};
use crate::logs::checkpoint::Record;
use crate::logs::cloudwatch::Destination;
use crate::logs::options::AwsLogsOptions;
use crate::logs::shipper::Shipper;
use crate::model::{Status, Task};
use crate::secrets::cache::SecretsCache;
use crate::volumes::efs_mounts::EfsMounts;

/// How often every known container is re-inspected in steady state.
const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// Settings of the driver beyond Docker's.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    pub cluster: String,
    pub disable_privileged: bool,
    /// Remove containers of this cluster that the state does not know (at start).
    pub remove_unknown: bool,
}

/// What reaches the driver's loop.
enum Msg {
    Input(Input),
    Resync,
    /// Answered once every earlier input is saved (and its commands dispatched).
    Flush(tokio::sync::oneshot::Sender<()>),
    Shutdown,
}

/// A handle to send inputs to a running driver.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl DriverHandle {
    /// Hands an input to the engine; false if the driver has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(Msg::Input(input)).is_ok()
    }

    /// Returns once every input sent before is in the saved state: what is acknowledged to
    /// ACS after this survives a crash.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Ends the driver's loop; commands under way finish on their own.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }
}

/// Snapshot of every task, published after each input.
pub type Snapshot = Arc<Vec<TaskState>>;

/// The driver: owns the engine and the Docker runtime.
pub struct Driver {
    engine: Engine,
    docker: DockerRuntime,
    settings: DriverSettings,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    changes: mpsc::UnboundedSender<Change>,
    snapshot: watch::Sender<Snapshot>,
    wake: Option<Instant>,
    cgroups: Option<CgroupSettings>,
    task_iam_role: bool,
    registry_auth: Option<(Arc<EcrAuth>, credentials::Store)>,
    secrets: Option<aws_config::SdkConfig>,
    engine_auth: Option<EngineAuth>,
    state: Option<crate::state::Writer>,
    /// Images pulled and used for tasks (image cleanup reads them; the state saves them).
    images: Arc<std::sync::Mutex<ImageRecords>>,
    /// Commands that were under way when a restored engine was saved.
    redo: Vec<Command>,
    /// Ships awslogs containers' logs from the agent (unless Docker's driver is kept).
    logs: Option<Arc<LogShipping>>,
    /// Mounts tasks' EFS volumes (without it, EFS volumes stop their tasks).
    efs: Option<Arc<EfsMounts>>,
    /// Tasks' secrets, resolved once per task before its first container is created.
    secret_values: Arc<SecretsCache>,
}

/// Inputs handled together before the state is saved once.
const BATCH: usize = 256;

/// Current Unix time in milliseconds.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Driver {
    /// A driver plus the receiving ends: state changes and snapshots.
    pub fn new(
        engine: Engine,
        docker: DockerRuntime,
        settings: DriverSettings,
    ) -> (
        Self,
        DriverHandle,
        mpsc::UnboundedReceiver<Change>,
        watch::Receiver<Snapshot>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (changes, changes_rx) = mpsc::unbounded_channel();
        let (snapshot, snapshot_rx) = watch::channel(Arc::new(Vec::new()));
        let handle = DriverHandle { tx: tx.clone() };
        let driver = Driver {
            engine,
            docker,
            settings,
            tx,
            rx,
            changes,
            snapshot,
            wake: None,
            cgroups: None,
            task_iam_role: false,
            registry_auth: None,
            secrets: None,
            engine_auth: None,
            state: None,
            images: Default::default(),
            redo: Vec::new(),
            logs: None,
            efs: None,
            secret_values: Default::default(),
        };
        (driver, handle, changes_rx, snapshot_rx)
    }

    /// Puts every task's containers under a task cgroup with the task-level limits
    /// (`ECS_ENABLE_TASK_CPU_MEM_LIMIT`).
    pub fn with_task_cgroups(mut self, settings: CgroupSettings) -> Self {
        self.cgroups = Some(settings);
        self
    }

    /// Gives the containers of tasks with a task role `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
    /// (`ECS_ENABLE_TASK_IAM_ROLE`), so the SDKs inside find the credentials endpoint.
    pub fn with_task_iam_role(mut self) -> Self {
        self.task_iam_role = true;
        self
    }

    /// Authenticates ECR pulls (`registryAuthentication` type `ecr`), with the execution role
    /// credentials from `store` when the task asks for them.
    pub fn with_registry_auth(mut self, ecr: Arc<EcrAuth>, store: credentials::Store) -> Self {
        self.registry_auth = Some((ecr, store));
        self
    }

    /// Resolves container secrets (SSM, Secrets Manager) with `sdk`'s HTTP client and endpoints
    /// and the task's execution role.
    pub fn with_secrets(mut self, sdk: aws_config::SdkConfig) -> Self {
        self.secrets = Some(sdk);
        self
    }

    /// Private registry credentials for containers without `registryAuthentication`
    /// (`ECS_ENGINE_AUTH_TYPE` / `ECS_ENGINE_AUTH_DATA`).
    pub fn with_engine_auth(mut self, auth: EngineAuth) -> Self {
        self.engine_auth = Some(auth);
        self
    }

    /// Saves the engine's state with `writer` before carrying out any command.
    pub fn with_state(mut self, writer: crate::state::Writer) -> Self {
        self.state = Some(writer);
        self
    }

    /// Records pulled and used images in `images` (shared with image cleanup).
    pub fn with_image_records(mut self, images: Arc<std::sync::Mutex<ImageRecords>>) -> Self {
        self.images = images;
        self
    }

    /// Ships the logs of awslogs containers from the agent with `shipper` (their Docker log
    /// driver becomes a local one); `region` when `awslogs-region` is not set.
    pub fn with_log_shipping(mut self, shipper: Arc<Shipper>, region: String) -> Self {
        self.logs = Some(Arc::new(LogShipping { shipper, region }));
        self
    }

    /// Mounts EFS volumes with `mounts`.
    pub fn with_efs(mut self, mounts: Arc<EfsMounts>) -> Self {
        self.efs = Some(mounts);
        self
    }

    /// Carries out again, first, the commands a restored engine had under way
    /// (`Engine::restore`).
    pub fn with_restored(mut self, redo: Vec<Command>) -> Self {
        self.redo = redo;
        self
    }

    /// The task's execution role credentials, refreshed from the store when ACS sent newer ones.
    fn execution_credentials(&self, task: &Task) -> Option<crate::model::RoleCredentials> {
        let execution = task.execution_role_credentials.clone()?;
        let fresher = self
            .registry_auth
            .as_ref()
            .and_then(|(_, store)| store.get(&execution.credentials_id))
            .map(|e| e.credentials);
        Some(fresher.unwrap_or(execution))
    }

    /// Runs until [`DriverHandle::shutdown`].
    pub async fn run(mut self) {
        // Events from now on queue up while the saved state is reconciled: none is missed.
        let watcher = tokio::spawn(watch_events(self.docker.clone(), self.tx.clone()));
        self.recover().await;
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.tick().await;
        loop {
            let wake = self.wake;
            let first = tokio::select! {
                m = self.rx.recv() => match m { Some(m) => m, None => break },
                _ = sleep_until(wake) => { self.wake = None; Msg::Input(Input::Tick) }
                _ = resync.tick() => Msg::Resync,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if !self.handle(batch).await {
                break;
            }
        }
        watcher.abort();
    }

    /// After a restore: reads every saved container's state from Docker and applies it (the
    /// engine is reconciled when this returns), saves, carries out the interrupted commands
    /// and deals with the cluster's containers the state does not know.
    async fn recover(&mut self) {
        let redo = std::mem::take(&mut self.redo);
        let tasks = self.engine.saved_tasks();
        let ids: Vec<String> = tasks
            .iter()
            .flat_map(|t| &t.containers)
            .filter(|c| !c.removed)
            .filter_map(|c| c.docker_id.clone())
            .collect();
        let docker = &self.docker;
        let seen = futures_util::future::join_all(ids.into_iter().map(|id| async move {
            let event = docker.inspect_event(&id).await;
            (id, event)
        }))
        .await;
        let now = now_millis();
        let mut cmds = Vec::new();
        for (docker_id, event) in seen {
            if let Some(event) = event {
                cmds.extend(self.engine.handle(now, Input::Docker { docker_id, event }));
            }
        }
        tracing::info!(
            tasks = tasks.len(),
            redone = redo.len(),
            "saved tasks reconciled with docker"
        );
        if let Some(writer) = &mut self.state {
            let images = lock(&self.images).clone();
            super::recovery::persist(writer, self.engine.saved_tasks(), images).await;
        }
        for cmd in redo {
            self.redo(now, cmd);
        }
        for cmd in cmds {
            self.dispatch(now, cmd);
        }
        self.publish();
        if let Some(logs) = &self.logs {
            let known = tasks
                .iter()
                .flat_map(|t| &t.containers)
                .filter(|c| !c.removed)
                .filter_map(|c| c.docker_id.clone())
                .collect();
            logs.shipper.resume(&known);
        }
        super::recovery::handle_unknown(
            &self.docker,
            &self.settings.cluster,
            &tasks,
            self.settings.remove_unknown,
        )
        .await;
        let _ = self.tx.send(Msg::Input(Input::Tick));
    }

    /// Carries out a command that was under way before the restart. A start is only repeated
    /// when Docker says the container never started: one that started (and maybe exited since)
    /// must not run a second time.
    fn redo(&mut self, now: Millis, cmd: Command) {
        let Command::Start {
            task_arn,
            container,
            docker_id,
        } = cmd
        else {
            return self.dispatch(now, cmd);
        };
        let docker = self.docker.clone();
        self.spawn_result(task_arn, container, async move {
            match docker.inspect_event(&docker_id).await {
                Some(_) => Outcome::Started,
                None => docker.start(&docker_id).await,
            }
        });
    }

    /// Handles a batch of messages: every input goes to the engine, the state is saved once,
    /// then the commands are carried out. False when the driver must stop.
    async fn handle(&mut self, batch: Vec<Msg>) -> bool {
        let mut cmds = Vec::new();
        let mut go_on = true;
        let mut flushed = Vec::new();
        for msg in batch {
            match msg {
                Msg::Flush(done) => flushed.push(done),
                Msg::Input(input) => {
                    let now = now_millis();
                    cmds.extend(self.engine.handle(now, input).into_iter().map(|c| (now, c)));
                }
                Msg::Resync => self.resync(),
                Msg::Shutdown => go_on = false,
            }
        }
        if let Some(writer) = &mut self.state {
            let images = lock(&self.images).clone();
            super::recovery::persist(writer, self.engine.saved_tasks(), images).await;
        }
        for (now, cmd) in cmds {
            self.dispatch(now, cmd);
        }
        self.publish();
        for done in flushed {
            let _ = done.send(());
        }
        go_on
    }

    /// Publishes a snapshot of every task for observers.
    fn publish(&self) {
        let tasks: Vec<TaskState> = self.engine.tasks().cloned().collect();
        self.snapshot.send_replace(Arc::new(tasks));
    }

    /// Re-inspects every container the engine believes created or running.
    fn resync(&self) {
        for t in self.engine.tasks() {
            for c in &t.containers {
                let (Some(id), Status::Created | Status::Running) = (&c.docker_id, c.known) else {
                    continue;
                };
                let (docker, tx, id) = (self.docker.clone(), self.tx.clone(), id.clone());
                tokio::spawn(async move {
                    if let Some(event) = docker.inspect_event(&id).await {
                        let _ = tx.send(Msg::Input(Input::Docker {
                            docker_id: id,
                            event,
                        }));
                    }
                });
            }
        }
    }

    fn dispatch(&mut self, now: Millis, cmd: Command) {
        match cmd {
            Command::Report(change) => {
                let _ = self.changes.send(change);
            }
            Command::WakeAt(at) => {
                self.wake = Some(Instant::now() + Duration::from_millis(at.saturating_sub(now)));
            }
            Command::TaskRemoved { task_arn, task } => {
                self.forget_credentials(&task_arn);
                tracing::info!(task = %task_arn, "task cleaned up");
                self.remove_cgroup(&task_arn);
                self.secret_values.release(&task_arn);
                let docker = self.docker.clone();
                let efs = self.efs.clone();
                tokio::spawn(async move {
                    for v in task_scoped_volumes(&task) {
                        docker.remove_volume(&v).await;
                    }
                    // Every container of the task is removed: nothing uses its mounts any more.
                    if let Some(efs) = efs {
                        let id = task.id().to_owned();
                        let _ = tokio::task::spawn_blocking(move || efs.release(&id)).await;
                    }
                });
            }
            Command::Pull {
                task_arn,
                container,
                image,
            } => self.pull(task_arn, container, image),
            Command::Create {
                task_arn,
                container,
                ..
            } => self.create(task_arn, container),
            Command::Start {
                task_arn,
                container,
                docker_id,
            } => {
                let docker = self.docker.clone();
                self.spawn_result(task_arn, container, async move {
                    let outcome = docker.start(&docker_id).await;
                    crate::failpoint::hit("started");
                    outcome
                });
            }
            Command::Stop {
                task_arn,
                container,
                docker_id,
                timeout,
            } => {
                let docker = self.docker.clone();
                self.spawn_result(task_arn, container, async move {
                    crate::failpoint::hit("stopping");
                    let outcome = docker.stop(&docker_id, timeout).await;
                    crate::failpoint::hit("stopped");
                    outcome
                });
            }
            Command::Remove {
                task_arn,
                container,
                docker_id,
            } => {
                let docker = self.docker.clone();
                let logs = self.logs.clone();
                self.spawn_result(task_arn, container, async move {
                    if let Some(logs) = logs {
                        logs.shipper.drain(&docker_id).await;
                    }
                    let outcome = docker.remove(&docker_id).await;
                    crate::failpoint::hit("removed");
                    outcome
                });
            }
        }
    }

    /// At cleanup the execution role's credentials go (they were kept after the stop for the
    /// log drivers), and the task role's too in case its stop was never seen.
    fn forget_credentials(&self, task_arn: &str) {
        if let Some((_, store)) = &self.registry_auth {
            store.remove_task(task_arn, credentials::RoleType::Execution);
            store.remove_task(task_arn, credentials::RoleType::Task);
        }
    }

    /// Pulls a container's image with the registry credentials it needs.
    fn pull(&self, task_arn: String, container: String, image: String) {
        let found = self.engine.task(&task_arn).and_then(|t| {
            let model = t.task.containers.iter().find(|c| c.name == container)?;
            Some((
                model.registry_authentication.clone(),
                self.execution_credentials(&t.task),
            ))
        });
        let (registry_authentication, execution) = found.unwrap_or_default();
        let auth = PullAuth {
            ecr: self.registry_auth.as_ref().map(|(ecr, _)| ecr.clone()),
            sdk: self.secrets.clone(),
            engine: self.engine_auth.clone(),
        };
        let docker = self.docker.clone();
        let images = self.images.clone();
        self.spawn_result(task_arn, container, async move {
            match auth
                .credentials(registry_authentication.as_ref(), &image, execution.as_ref())
                .await
            {
                Ok(credentials) => {
                    crate::failpoint::hit("pulling");
                    let outcome = docker.pull(&image, credentials).await;
                    if let Outcome::Pulled { .. } = outcome {
                        lock(&images).pulled(&image, None, now_millis());
                    }
                    outcome
                }
                Err(e) => Outcome::PullFailed {
                    reason: format!("CannotPullContainerError: registry authentication: {e}"),
                },
            }
        });
    }

    fn spawn_result<F>(&self, task_arn: String, container: String, work: F)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let outcome = work.await;
            let _ = tx.send(Msg::Input(Input::Result {
                task_arn,
                container,
                outcome,
            }));
        });
    }

    fn create(&self, task_arn: String, container: String) {
        let Some(t) = self.engine.task(&task_arn) else {
            return;
        };
        let Some(i) = t.container_by_name(&container) else {
            return;
        };
        let task = t.task.clone();
        let state = t.containers[i].clone();
        let peer_names: BTreeMap<String, String> = t
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    names::docker_container_name(
                        &task.family,
                        &task.version,
                        &c.name,
                        &c.name_suffix,
                    ),
                )
            })
            .collect();
        let docker = self.docker.clone();
        let settings = self.settings.clone();
        let cgroups = self.cgroups.clone();
        let mut env = agent_env(&task, self.task_iam_role);
        let secrets = self.secrets.clone();
        let secret_values = self.secret_values.clone();
        let execution = self.execution_credentials(&task);
        let images = self.images.clone();
        let logs = self.logs.clone();
        let efs = self.efs.clone();
        self.spawn_result(task_arn, container, async move {
            let model = &task.containers[i];
            let found = container_secrets(
                &secret_values,
                secrets.as_ref(),
                execution.as_ref(),
                &task,
                &model.name,
            )
            .await;
            let log_options = match found {
                Ok(values) => {
                    env.extend(values.env);
                    values.log_options
                }
                Err(reason) => return Outcome::CreateFailed { reason },
            };
            let cgroup_parent = match &cgroups {
                Some(cg) => match prepare_cgroup(&task, cg) {
                    Ok(parent) => Some(parent),
                    Err(reason) => return Outcome::CreateFailed { reason },
                },
                None => None,
            };
            let mut volumes = BTreeMap::new();
            for v in &task.volumes {
                match prepare_volume(&docker, efs.as_deref(), &task, v).await {
                    Ok(source) => {
                        volumes.insert(v.name.clone(), source);
                    }
                    Err(reason) => return Outcome::CreateFailed { reason },
                }
            }
            let ports: Vec<ResolvedPort> = state
                .bindings
                .iter()
                .zip(model.port_mappings.iter().flatten())
                .map(|(b, pm)| resolved(b, pm.container_port_range.is_some()))
                .collect();
            let plan = match log_plan(model, &log_options, logs.is_some()) {
                Ok(plan) => plan,
                Err(reason) => return Outcome::CreateFailed { reason },
            };
            let ctx = CreateContext {
                cluster: &settings.cluster,
                host_ports: &ports,
                peer_names: &peer_names,
                volumes: &volumes,
                cgroup_parent: cgroup_parent.as_deref(),
                disable_privileged: settings.disable_privileged,
                extra_env: &env,
                log_config_override: plan.docker,
            };
            match create_body(&task, model, &ctx) {
                Ok(body) => {
                    let outcome = docker.create(&peer_names[&model.name], body).await;
                    // Docker may quote a bad log option, and that may be a secret's value.
                    let outcome = match outcome {
                        Outcome::CreateFailed { reason } => Outcome::CreateFailed {
                            reason: redact(reason, log_options.values()),
                        },
                        other => other,
                    };
                    if let Outcome::Created { docker_id } = &outcome {
                        lock(&images).used(&model.image, now_millis());
                        if let (Some(logs), Some(options)) = (&logs, plan.ship) {
                            logs.ship(&task, model, docker_id, options);
                        }
                    }
                    crate::failpoint::hit("created");
                    outcome
                }
                Err(e) => Outcome::CreateFailed {
                    reason: e.to_string(),
                },
            }
        });
    }
}

impl Driver {
    /// Removes the task cgroup of a task that was cleaned up.
    fn remove_cgroup(&self, task_arn: &str) {
        let Some(cg) = &self.cgroups else { return };
        let id = task_arn.rsplit('/').next().unwrap_or(task_arn);
        let parent = format!("/ecs/{id}");
        if let Err(e) = cgroup::remove(&cg.root, &parent) {
            tracing::warn!(task = task_arn, error = %e, "task cgroup removal failed");
        }
    }
}

/// Creates the task cgroup with its limits; returns the containers' cgroup parent.
fn prepare_cgroup(task: &Task, cg: &CgroupSettings) -> Result<String, String> {
    let fail = |e: String| format!("ResourceInitializationError: task cgroup: {e}");
    let spec = cgroup::spec(task, cg).map_err(fail)?;
    let parent = cgroup::parent(task);
    cgroup::create(&cg.root, &parent, &spec)
        .map_err(|e| fail(format!("cannot create {parent}: {e}")))?;
    Ok(parent)
}

/// The log shipper and the region for containers without `awslogs-region`.
struct LogShipping {
    shipper: Arc<Shipper>,
    region: String,
}

impl LogShipping {
    /// Starts shipping a created container's logs.
    fn ship(
        &self,
        task: &Task,
        model: &crate::model::Container,
        docker_id: &str,
        options: AwsLogsOptions,
    ) {
        // awslogs-credentials-endpoint names credentials of the agent's own store (checked
        // when the options were parsed); else the execution role.
        let explicit = options.credentials_id().ok().flatten().map(str::to_owned);
        let execution = task
            .execution_role_credentials
            .as_ref()
            .filter(|_| model.logs_auth_strategy.as_deref() == Some("ExecutionRole"))
            .map(|c| c.credentials_id.clone());
        let start_pattern = options
            .start_pattern()
            .ok()
            .flatten()
            .map(|r| r.as_str().to_owned());
        let record = Record {
            docker_id: docker_id.to_owned(),
            destination: Destination {
                region: options
                    .region
                    .clone()
                    .unwrap_or_else(|| self.region.clone()),
                endpoint: options.endpoint.clone(),
                group: options.group.clone(),
                stream: options.stream_name(&model.name, task.id(), docker_id),
                create_group: options.create_group,
                execution_credentials_id: explicit.or(execution),
            },
            start_pattern,
            shipped: None,
        };
        self.shipper.ship(record);
    }
}

fn lock(images: &std::sync::Mutex<ImageRecords>) -> std::sync::MutexGuard<'_, ImageRecords> {
    images.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Follows Docker's event stream. When it drops (dockerd restarted or killed), waits until
/// Docker answers a ping again, reopens the stream and asks for a resync: every known container
/// is re-inspected, since events were missed meanwhile. Each stream is opened with `since` set
/// to a moment taken before the resync is asked for, so Docker replays whatever happened
/// between that moment and its subscription: no event falls between the resync and the stream.
async fn watch_events(docker: DockerRuntime, tx: mpsc::UnboundedSender<Msg>) {
    let mut since = SystemTime::now();
    loop {
        {
            let mut events = Box::pin(docker.events(since));
            while let Some(item) = events.next().await {
                match item {
                    Ok((docker_id, event)) => {
                        if tx
                            .send(Msg::Input(Input::Docker { docker_id, event }))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "docker event stream failed");
                        break;
                    }
                }
            }
        }
        wait_for_docker(&docker).await;
        since = SystemTime::now();
        if tx.send(Msg::Resync).is_err() {
            return;
        }
    }
}

/// Waits until Docker answers a ping: 250 ms first, doubling to 30 s while it does not (the
/// backoff starts over at each call, that is after every success).
async fn wait_for_docker(docker: &DockerRuntime) {
    let mut backoff = Duration::from_millis(250);
    let mut failed = false;
    loop {
        tokio::time::sleep(backoff).await;
        if docker.ping().await {
            if failed {
                tracing::info!("docker answers again; reconciling");
            }
            return;
        }
        if !failed {
            tracing::warn!("docker does not answer; waiting for it");
            failed = true;
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn resolved(b: &Binding, is_range: bool) -> ResolvedPort {
    if is_range {
        ResolvedPort {
            container_port: None,
            container_port_range: Some(b.container),
            host_port: None,
            host_port_range: Some(b.host),
            protocol: b.protocol,
        }
    } else {
        ResolvedPort {
            container_port: Some(b.container.0),
            container_port_range: None,
            host_port: Some(b.host.0),
            host_port_range: None,
            protocol: b.protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::config::ImagePullBehavior;
    use crate::engine::DockerEvent;
    use crate::runtime::DockerSettings;

    /// What the fake dockerd saw.
    #[derive(Default)]
    struct Seen {
        /// Event streams opened, with their `since`.
        events: std::sync::Mutex<Vec<Option<String>>>,
        /// Pings, answered or not.
        pings: AtomicUsize,
    }

    /// A fake dockerd on a unix socket whose event stream sends one `die` event, then ends.
    async fn fake_docker(dir: &std::path::Path) -> (DockerRuntime, Arc<Seen>) {
        fake_docker_down_for(dir, 0).await
    }

    /// [`fake_docker`] that fails its first `failed_pings` pings, as a restarting dockerd does.
    async fn fake_docker_down_for(
        dir: &std::path::Path,
        failed_pings: usize,
    ) -> (DockerRuntime, Arc<Seen>) {
        let sock = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let seen = Arc::new(Seen::default());
        let recorder = seen.clone();
        let pulls = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let seen = recorder.clone();
            let pulls = pulls.clone();
            async move {
                if uri.path().ends_with("/_ping") {
                    let n = seen.pings.fetch_add(1, Ordering::SeqCst);
                    return if n < failed_pings {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                    } else {
                        (axum::http::StatusCode::OK, "OK".to_owned())
                    };
                }
                if uri.path().ends_with("/images/create") {
                    // Records the most pulls in flight at once, in the second counter.
                    let now = pulls.0.fetch_add(1, Ordering::SeqCst) + 1;
                    pulls.1.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    pulls.0.fetch_sub(1, Ordering::SeqCst);
                    let most = pulls.1.load(Ordering::SeqCst);
                    return (
                        axum::http::StatusCode::OK,
                        format!("{{\"status\":\"most in flight {most}\"}}\n"),
                    );
                }
                if !uri.path().ends_with("/events") {
                    return (axum::http::StatusCode::NOT_FOUND, String::new());
                }
                let since = uri
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("since=").map(str::to_owned));
                let n = {
                    let mut events = seen.events.lock().unwrap();
                    events.push(since);
                    events.len()
                };
                let event = serde_json::json!({"Type": "container", "Action": "die", "time": 1,
                    "Actor": {"ID": format!("c{n}"), "Attributes": {"exitCode": "3"}}});
                (axum::http::StatusCode::OK, format!("{event}\n"))
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let docker = bollard::Docker::connect_with_unix(
            sock.to_str().unwrap(),
            5,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        let settings = DockerSettings {
            pull_behavior: ImagePullBehavior::PreferCached,
            pull_timeout: Duration::from_secs(5),
            create_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(5),
            max_concurrent_pulls: 2,
        };
        (DockerRuntime::new(docker, settings), seen)
    }

    /// What the watcher sends, in words, until `n` messages; with the pings answered so far
    /// at each resync.
    async fn watched(runtime: DockerRuntime, seen: &Seen, n: usize) -> Vec<String> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_events(runtime, tx));
        let mut out = Vec::new();
        while out.len() < n {
            let msg = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a message")
                .unwrap();
            out.push(match msg {
                Msg::Input(Input::Docker {
                    docker_id,
                    event: DockerEvent::Died { exit_code },
                }) => format!("{docker_id} died {exit_code:?}"),
                Msg::Resync => format!("resync after {} pings", seen.pings.load(Ordering::SeqCst)),
                _ => "other".to_owned(),
            });
        }
        watcher.abort();
        out
    }

    #[tokio::test]
    async fn a_dropped_event_stream_is_reopened_and_then_a_resync_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, seen) = fake_docker(dir.path()).await;
        let out = watched(runtime, &seen, 3).await;
        assert_eq!(
            out,
            ["c1 died Some(3)", "resync after 1 pings", "c2 died Some(3)"]
        );
        let events = seen.events.lock().unwrap().clone();
        assert!(events.len() >= 2, "the stream was opened again");
        let since: Vec<f64> = events
            .iter()
            .map(|s| {
                s.as_deref()
                    .expect("since on every stream")
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            since[1] >= since[0],
            "a later since on the reopened stream: {since:?}"
        );
    }

    #[tokio::test]
    async fn the_resync_waits_until_docker_answers_again() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, seen) = fake_docker_down_for(dir.path(), 2).await;
        let out = watched(runtime, &seen, 5).await;
        assert_eq!(
            out,
            [
                "c1 died Some(3)",
                "resync after 3 pings",
                "c2 died Some(3)",
                "resync after 4 pings",
                "c3 died Some(3)"
            ],
            "no resync before Docker answers; then one ping is enough again"
        );
    }

    #[tokio::test]
    async fn no_more_pulls_run_at_once_than_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, _) = fake_docker(dir.path()).await;
        let pulls: Vec<_> = (0..6)
            .map(|i| {
                let r = runtime.clone();
                tokio::spawn(
                    async move { r.pull(&format!("127.0.0.1:1/img{i}:latest"), None).await },
                )
            })
            .collect();
        for p in pulls {
            assert!(matches!(p.await.unwrap(), Outcome::Pulled { .. }));
        }
        let seen = runtime.docker.create_image(
            Some(
                bollard::query_parameters::CreateImageOptionsBuilder::default()
                    .from_image("x")
                    .tag("y")
                    .build(),
            ),
            None,
            None,
        );
        let status: Vec<String> = futures_util::StreamExt::collect::<Vec<_>>(seen)
            .await
            .into_iter()
            .filter_map(|r| r.ok().and_then(|i| i.status))
            .collect();
        assert_eq!(
            status,
            ["most in flight 2"],
            "six pulls, never more than two at once"
        );
    }
}
